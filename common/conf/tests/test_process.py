"""Start-up tuning of the server processes."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from common.conf.process import freeze_startup_objects


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def _unfreeze() -> Iterator[None]:
    yield
    gc.unfreeze()


@pytest.mark.usefixtures("_unfreeze")
def test_startup_garbage_is_collected_and_the_rest_frozen() -> None:
    gc.disable()  # the cycle below must still be garbage, uncollected, when the freeze comes
    try:
        a, b = Node(), Node()
        a.other, b.other = b, a
        survivor = Node()
        cycle = weakref.ref(a)
        del a, b
        assert cycle() is not None
        freeze_startup_objects()
    finally:
        gc.enable()
    assert cycle() is None  # collected first, not frozen for the process's lifetime
    assert gc.get_freeze_count() > 0
    assert not any(obj is survivor for obj in gc.get_objects())  # out of the collector's reach
