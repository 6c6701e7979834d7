"""Agent replay throughput and memory, side by side with a naive scapy loop, in one run.

1. Throughput: a generated capture of >= 200,000 mixed frames is replayed through the full
   pipeline (reader, parse, detectors, incidents, a JSON-lines sink), best of N runs, and
   compared with a naive loop that dissects every frame with scapy (``Ether(bytes)``) on
   the same capture (a timed sample: the whole would take minutes). Targets: >= 500,000
   frames/s and >= 100 times the naive loop.
2. Memory: peak RSS of ``lan-guard-agent replay`` (a separate process, as deployed) on a
   capture with 100,000 distinct source MACs, next to the same command on an empty capture
   (start-up footprint). Target: <= 80 MB.

Usage: python benchmarks/agent_throughput.py [--frames N] [--sources N] [--runs N]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sensor_agent.formats import ip_bytes
from sensor_agent.pipeline import Pipeline, PipelineConfig
from sensor_agent.replay import ReplayStats, read_blocks, replay
from sensor_agent.sinks.jsonl import JsonlSink
from sensor_agent.synth import bench_node, many_sources_frames, mixed_frames, write_pcap

TARGET_FPS = 500_000
TARGET_RATIO = 100
TARGET_RSS_MB = 80


def full_replay(path: Path, events: Path) -> ReplayStats:
    node_ip, _ = bench_node()
    sink = JsonlSink(events)
    pipeline = Pipeline(PipelineConfig(agent_id="bench", node_ip=ip_bytes(node_ip)), [sink])
    try:
        return replay(path, pipeline, show_progress=False)
    finally:
        sink.close()


def naive_rate(path: Path, sample: int, runs: int) -> tuple[float, int, float]:
    """(frames/s, frames, seconds) of ``Ether(frame)`` over the first ``sample`` frames, cut
    into ``runs`` parts: the best part's rate, like the best-of-N of the agent."""
    from scapy.layers.l2 import Ether

    frames: list[bytes] = []
    for _stamps, batch in read_blocks(path):
        frames.extend(batch[: sample - len(frames)])
        if len(frames) >= sample:
            break
    part = max(len(frames) // runs, 1)
    best_rate = 0.0
    total_s = 0.0
    for first in range(0, part * runs, part):
        started = time.perf_counter()
        for frame in frames[first : first + part]:
            Ether(frame)
        seconds = time.perf_counter() - started
        total_s += seconds
        best_rate = max(best_rate, part / seconds)
    return best_rate, part * runs, total_s


def peak_rss_mb(capture: Path) -> tuple[float, str]:
    """Peak RSS (MB) of ``lan-guard-agent replay capture`` in its own process.

    The child reports its own high-water mark (VmHWM of /proc/self/status): the rusage of
    a child forked from this (large) process would include the parent's pages.
    """
    node_ip, _ = bench_node()
    command = [
        sys.executable,
        "-m",
        "sensor_agent.cli",
        "replay",
        str(capture),
        "--no-stdout",
        "--no-progress",
        "--node-ip",
        node_ip,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"replay failed ({done.returncode}): {done.stderr}")
    for line in done.stderr.splitlines():
        if line.startswith("peak memory"):
            return float(line.split()[2]), done.stderr
    raise SystemExit(f"no peak memory in the replay summary: {done.stderr}")


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--sources", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5, help="throughput: best of this many")
    parser.add_argument("--naive-sample", type=int, default=20_000)
    args = parser.parse_args()

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"LAN Guard agent benchmark: Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {platform.machine()}, load average {load}"
    )
    with tempfile.TemporaryDirectory(prefix="lgc-bench-") as tmp:
        mixed = Path(tmp) / "mixed.pcap"
        started = time.perf_counter()
        count = write_pcap(mixed, mixed_frames(args.frames))
        print(
            f"\ncapture: {count:,} mixed frames, {mixed.stat().st_size / 1e6:.1f} MB, "
            f"generated in {time.perf_counter() - started:.1f} s"
        )
        best: ReplayStats | None = None
        for _ in range(args.runs):
            stats = full_replay(mixed, Path(tmp) / "events.jsonl")
            if best is None or stats.seconds < best.seconds:
                best = stats
        assert best is not None
        events = sum(best.events_by_kind.values())
        naive, sampled, naive_s = naive_rate(mixed, args.naive_sample, args.runs)
        ratio = best.frames_per_s / naive
        print("\n                                     frames/s")
        print(
            f"  agent replay, full pipeline    {best.frames_per_s:>12,.0f}   "
            f"(best of {args.runs}: {best.frames:,} frames in {best.seconds:.3f} s, "
            f"{events} events)"
        )
        print(
            f"  naive scapy Ether(bytes) loop  {naive:>12,.0f}   "
            f"(a timed sample: the first {sampled:,} frames in {naive_s:.2f} s, best third)"
        )
        print(f"  ratio                          {ratio:>12,.0f}x")
        print(
            f"  target >= {TARGET_FPS:,} frames/s: {verdict(best.frames_per_s >= TARGET_FPS)}; "
            f"target >= {TARGET_RATIO}x: {verdict(ratio >= TARGET_RATIO)}"
        )

        many = Path(tmp) / "many.pcap"
        write_pcap(many, many_sources_frames(args.sources))
        empty = Path(tmp) / "empty.pcap"
        write_pcap(empty, [])
        base_mb, _ = peak_rss_mb(empty)
        peak_mb, summary = peak_rss_mb(many)
        frames_line = next((ln for ln in summary.splitlines() if ln.startswith("time")), "")
        print(f"\nmemory: replay of {args.sources:,} distinct source MACs (separate process)")
        print(
            f"  peak RSS, {args.sources:,} sources   {peak_mb:>8.1f} MB   ({frames_line.strip()})"
        )
        print(f"  peak RSS, empty capture      {base_mb:>8.1f} MB   (start-up footprint)")
        print(f"  target <= {TARGET_RSS_MB} MB: {verdict(peak_mb <= TARGET_RSS_MB)}")


if __name__ == "__main__":
    main()
