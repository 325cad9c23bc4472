"""Scale-out suite: two instances of every bridge and worker on one stack, and what happens when one freezes."""
