"""A steady, bounded load for a minute: no errors at all, and no process's memory keeps growing."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable

from verify.consistency import Checker
from verify.load import Load, Tally
from verify.procs import Memory
from verify.report import Row, say
from verify.system import System

RATE = 50.0  # requests/s
CLIENTS = 8
WARM_UP = 15.0
SECONDS = 60.0
SAMPLE_EVERY = 2.0
# Compared: the mean over the first and over the last window of the measured minute, so one sample caught
# mid-GC (or a backend forking) does not decide the verdict.
WINDOW = 10.0
MAX_GROWTH = 0.10
# ...and by more than this. A small server's private memory moves in steps of a megabyte or two with no trend at
# all (NATS, ~8 MB: a Go heap growing toward its GC target; Redis, ~3 MB: pages shared with its AOF-rewrite
# fork), where 10% is under one step. Every process of ours is over 40 MB, where the 10% bound is the stricter.
NOISE_FLOOR = 4 * 1024 * 1024
# Judged on the tree's private dirty memory (what the processes wrote and no other process maps): RSS summed over
# PostgreSQL's backends counts its shared buffers once per backend, so it grows as each backend touches pages
# another already holds, which is no leak; a single process's RSS moves with shared pages as other programs come
# and go; and USS grows when another process running the same binary exits (NATS: 12 -> 23 MB with another stack
# stopping beside it). All three are reported.
JUDGED = "dirty"
SOAK_MIX = {"read": 0.6, "refresh": 0.25, "login": 0.15}
MB = 1024 * 1024


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _sample(
    system: System, names: list[str], samples: dict[str, list[tuple[float, Memory]]], stop: threading.Event
) -> None:
    started = time.monotonic()
    while True:
        at = time.monotonic() - started
        for name in names:
            samples[name].append((at, system.target(name).memory()))
        if stop.wait(SAMPLE_EVERY):
            return


def _growth(points: list[tuple[float, int]]) -> tuple[float, float]:
    """Mean of the first and of the last WINDOW seconds of samples."""
    end = points[-1][0]
    first = [value for at, value in points if at <= WINDOW]
    last = [value for at, value in points if at >= end - WINDOW]
    return statistics.mean(first), statistics.mean(last)


def run(system: System, checker: Checker, selected: Callable[[str], bool]) -> list[Row]:
    name = f"{SECONDS:.0f} s at {RATE:.0f} req/s"
    if not selected(name):
        return []
    say(
        f"soak: {WARM_UP:.0f} s warm-up, then {name} (reads, refreshes, logins); memory (RSS, USS) sampled every {SAMPLE_EVERY:.0f} s"
    )
    started = time.monotonic()
    row = Row(section="soak", name=name)
    tally = Tally()
    names = system.process_names()
    samples: dict[str, list[tuple[float, Memory]]] = {process: [] for process in names}
    stop = threading.Event()
    sampler = threading.Thread(target=_sample, args=(system, names, samples, stop), daemon=True)
    load = Load(
        system.gateway,
        mix=SOAK_MIX,
        clients=CLIENTS,
        rate=RATE,
        seconds=WARM_UP + SECONDS,
        limit=int(RATE * (WARM_UP + SECONDS)),
        tally=tally,
        strict=True,
    )
    with load:
        load.phase = "warm-up"
        time.sleep(WARM_UP)
        load.phase = "steady"
        measured = time.monotonic()
        sampler.start()
        load.wait()
    stop.set()
    sampler.join(10)
    elapsed = time.monotonic() - measured
    steady = tally.count(lambda phase, kind, status: phase == "steady")
    errors = tally.count(lambda phase, kind, status: not 200 <= status < 300)
    row.server_errors = tally.server_errors
    if errors:
        row.problems.append(f"{errors} of {tally.total} requests were not 2xx")
        row.problems += tally.examples[:5]
    memory: dict[str, dict[str, float]] = {}
    for process, points in samples.items():
        if len(points) < 2 or not points[0][1].uss:
            row.problems.append(f"no memory samples of {process}")
            continue
        numbers: dict[str, float] = {}
        for kind in ("rss", "uss", "dirty"):
            before, after = _growth([(at, getattr(mem, kind)) for at, mem in points])
            numbers[f"{kind}_start_mb"] = round(before / MB, 1)
            numbers[f"{kind}_end_mb"] = round(after / MB, 1)
            numbers[f"{kind}_growth_pct"] = round((after - before) / before * 100, 1)
        memory[process] = numbers
        # The whole series, for telling a leak (a steady climb) from a step (a cache filling once).
        series = [round(getattr(mem, JUDGED) / MB, 1) for _, mem in points]
        row.details.setdefault("series_mb", {})[process] = series
        growth = numbers[f"{JUDGED}_growth_pct"] / 100
        grown = (numbers[f"{JUDGED}_end_mb"] - numbers[f"{JUDGED}_start_mb"]) * MB
        if growth >= MAX_GROWTH and grown >= NOISE_FLOOR:
            row.problems.append(
                f"{process} {JUDGED.upper()} grew {growth:.0%} "
                f"({numbers[f'{JUDGED}_start_mb']:.0f} → {numbers[f'{JUDGED}_end_mb']:.0f} MB)"
            )
    latencies = tally.latencies
    row.details |= {
        "rate_achieved": round(steady / elapsed, 1) if elapsed else 0.0,
        "requests": tally.total,
        "p50_ms": round(_percentile(latencies, 0.5) * 1000, 1),
        "p99_ms": round(_percentile(latencies, 0.99) * 1000, 1),
        "memory": memory,
        "load": tally.summary(),
    }
    row.seconds = time.monotonic() - started
    say(
        f"  {tally.total} requests, {row.details['rate_achieved']} req/s measured, errors {errors}, "
        f"p50 {row.details['p50_ms']} ms, p99 {row.details['p99_ms']} ms"
    )
    for process, numbers in memory.items():
        say(
            f"    {process:<14} RSS {numbers['rss_start_mb']:7.1f} → {numbers['rss_end_mb']:7.1f} MB "
            f"{numbers['rss_growth_pct']:+5.1f}%   USS {numbers['uss_start_mb']:7.1f} → {numbers['uss_end_mb']:7.1f} MB "
            f"{numbers['uss_growth_pct']:+5.1f}%   dirty {numbers['dirty_start_mb']:7.1f} → "
            f"{numbers['dirty_end_mb']:7.1f} MB {numbers['dirty_growth_pct']:+5.1f}%"
        )
    return [row]
