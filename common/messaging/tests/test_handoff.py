"""LoopHandoff: every item posted from any thread reaches the consumer once, in each thread's order."""

from __future__ import annotations

import asyncio
import threading

from common.messaging.handoff import LoopHandoff

THREADS = 4
PER_THREAD = 2000


def test_items_from_many_threads_arrive_once_and_in_order() -> None:
    async def scenario() -> list[tuple[int, int]]:
        loop = asyncio.get_running_loop()
        handoff: LoopHandoff[tuple[int, int]] = LoopHandoff(loop)
        received: list[tuple[int, int]] = []
        done = asyncio.Event()

        async def consume() -> None:
            async for item in handoff.items():
                received.append(item)
                if len(received) == THREADS * PER_THREAD:
                    done.set()

        consumer = asyncio.create_task(consume())

        def produce(thread: int) -> None:
            for number in range(PER_THREAD):
                handoff.post((thread, number))

        producers = [threading.Thread(target=produce, args=(index,)) for index in range(THREADS)]
        for producer in producers:
            producer.start()
        await asyncio.wait_for(done.wait(), timeout=10)
        for producer in producers:
            producer.join()
        consumer.cancel()
        return received

    received = asyncio.run(scenario())
    assert len(received) == THREADS * PER_THREAD
    for thread in range(THREADS):
        assert [number for origin, number in received if origin == thread] == list(range(PER_THREAD))


def test_one_wake_up_serves_every_item_posted_before_the_consumer_runs() -> None:
    async def scenario() -> tuple[list[int], int]:
        loop = asyncio.get_running_loop()
        wake_ups = 0
        original = loop.call_soon_threadsafe

        def counting(*args: object, **kwargs: object) -> object:
            nonlocal wake_ups
            wake_ups += 1
            return original(*args, **kwargs)  # type: ignore[arg-type]

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        handoff: LoopHandoff[int] = LoopHandoff(loop)
        # Posted while the loop is busy here: nothing consumes them until this coroutine yields.
        worker = threading.Thread(target=lambda: [handoff.post(n) for n in range(50)])
        worker.start()
        worker.join()
        received: list[int] = []

        async def consume() -> None:
            async for item in handoff.items():
                received.append(item)

        consumer = asyncio.create_task(consume())
        for _ in range(100):
            if len(received) == 50:
                break
            await asyncio.sleep(0.01)
        # A post after the drain wakes the consumer again.
        handoff.post(50)
        for _ in range(100):
            if len(received) == 51:
                break
            await asyncio.sleep(0.01)
        consumer.cancel()
        return received, wake_ups

    received, wake_ups = asyncio.run(scenario())
    assert received == list(range(51))
    assert wake_ups == 2
