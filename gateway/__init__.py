"""The gateway: the only public HTTP entry; authenticates, authorises coarsely, validates and forwards over NATS."""
