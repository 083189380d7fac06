"""Benchmark: grooming (``ccvault.storage.thinning.keyframes_only``) of one-minute 1080p15 segments.

What it measures
    Size and cost of rewriting a segment with its keyframes only, by stream copy: input and
    output bytes and their ratio, wall time per segment, ffmpeg's CPU time per segment, and
    the same per minute of footage.

How
    - The clip is bench/ingest.py's, encoded by its recipe once and shared through the same
      cache (``bench/out/clip-1080p15-60s-3M.mp4``): 60 s, 1920x1080, 15 fps, H.264 (libx264
      ultrafast, ~3 Mbit/s capped, GOP 30 = 2 s, no B-frames), lavfi ``testsrc2`` plus
      temporal noise, so P-frames carry real bytes; fragmented MP4 with the recorder's
      movflags.
    - N independent byte copies (default 20, ``--quick`` 3) go to ``bench/out/grooming-run``,
      then ``os.sync()`` writes them back (not timed): groomed footage is old, long on disk.
      They stay in the page cache.
    - Baseline: the bundled ffmpeg's start-up alone (``ffmpeg -version``), N times — the fixed
      part of every segment. It also loads the binary into the page cache before timing.
    - Each ``keyframes_only(ffmpeg, copy, new file)`` call is timed whole with
      ``perf_counter`` (ffmpeg, fsync, probe of the output, link, directory fsync). ffmpeg's
      CPU (user + system) comes from ``getrusage(RUSAGE_CHILDREN)`` deltas around the call;
      this process's own CPU in the call (mostly the probe) is printed apart.
    - Checks: every output holds as many frames as the clip has keyframes, all of them
      keyframes, same codec and size, and all outputs are byte-identical.
    - ``bench/out/grooming-run`` is removed at the end (``--keep`` to keep it).

Run: ``.venv/bin/python bench/grooming.py [--quick] [--segments N] [--keep]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import imageio_ffmpeg
from common import ccvault_version, remove_work  # bench/common.py
from ingest import CLIP, clip_ok, make_clip  # bench/ingest.py: the same cached clip

from ccvault.storage.media import probe, sha256_file
from ccvault.storage.thinning import keyframes_only, thin_argv

OUT = Path(__file__).resolve().parent / "out"
WORK = OUT / "grooming-run"
MB = 1e6


def child_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def startup_ms(ffmpeg: str, n: int) -> tuple[float, float]:
    """Mean wall and CPU ms of ``ffmpeg -version``: what any ffmpeg run costs before work."""
    cpu0, t0 = child_cpu_s(), time.perf_counter()
    for _ in range(n):
        subprocess.run([ffmpeg, "-version"], check=True, stdout=subprocess.DEVNULL)
    return (time.perf_counter() - t0) / n * 1000, (child_cpu_s() - cpu0) / n * 1000


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 segments (smoke run)")
    ap.add_argument("--segments", type=int, default=None, help="segments to thin (default 20)")
    ap.add_argument("--keep", action="store_true", help=f"keep {WORK} afterwards")
    args = ap.parse_args(argv)
    n = args.segments or (3 if args.quick else 20)

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    version = ccvault_version()
    print(f"bench/grooming.py — keyframes_only() on {n} one-minute 1080p15 segments")
    print(
        f"python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.machine()}; "
        f"load average before the run: " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    ff_version = subprocess.run(
        [ffmpeg, "-version"], capture_output=True, text=True, check=True
    ).stdout.splitlines()[0]
    print(f"{ff_version}\nccvault source: {version}")
    print("argv: " + " ".join(thin_argv(Path(ffmpeg).name, Path("SRC"), Path("DST"))))
    if not clip_ok(CLIP):
        print(f"clip encoded in {make_clip(CLIP):.1f} s")
    clip = probe(CLIP)
    clip_bytes = CLIP.stat().st_size
    minutes = clip.duration_ms / 60_000
    print(
        f"clip: {CLIP.name}, {clip_bytes:,} bytes, {clip.codec} {clip.width}x{clip.height}, "
        f"{clip.frames} frames ({clip.keyframes} keyframes), {clip.duration_ms} ms, "
        f"{clip_bytes * 8 / (clip.duration_ms / 1000) / 1e6:.2f} Mbit/s"
    )

    if WORK.exists():
        shutil.rmtree(WORK)
    src_dir, dst_dir = WORK / "src", WORK / "dst"
    try:
        src_dir.mkdir(parents=True)
        dst_dir.mkdir()
        sources = [src_dir / f"{i:06d}.mp4" for i in range(n)]
        for src in sources:
            shutil.copyfile(CLIP, src)
        os.sync()

        base_wall, base_cpu = startup_ms(ffmpeg, n)
        walls, cpus, own_cpus, problems = [], [], [], []
        outputs = []
        for src in sources:
            dst = dst_dir / src.name
            own0, cpu0, t0 = time.process_time(), child_cpu_s(), time.perf_counter()
            media = keyframes_only(ffmpeg, src, dst)
            walls.append((time.perf_counter() - t0) * 1000)
            cpus.append((child_cpu_s() - cpu0) * 1000)
            own_cpus.append((time.process_time() - own0) * 1000)
            outputs.append(dst)
            got = (media.codec, media.width, media.height, media.frames, media.keyframes)
            want = (clip.codec, clip.width, clip.height, clip.keyframes, clip.keyframes)
            if got != want:
                problems.append(f"{dst.name}: {got}, expected {want}")

        out_bytes = outputs[0].stat().st_size
        if len({sha256_file(p) for p in outputs}) != 1:
            problems.append("the outputs differ from each other")
        ratio = out_bytes / clip_bytes
        wall, cpu = statistics.mean(walls), statistics.mean(cpus)
        print(
            f"checks: {n} outputs, {clip.keyframes} frames each, all keyframes, identical: "
            f"{'OK' if not problems else 'PROBLEMS'}"
        )
        for p in problems[:10]:
            print(f"  PROBLEM: {p}")
        print(f"input bytes                    {clip_bytes:12,}")
        print(f"output bytes                   {out_bytes:12,}")
        print(f"size ratio (output/input)      {ratio:12.3f}")
        print(
            f"wall ms per segment            {wall:12.1f}   "
            f"(median {statistics.median(walls):.1f}, max {max(walls):.1f})"
        )
        print(
            f"ffmpeg CPU ms per segment      {cpu:12.1f}   (median {statistics.median(cpus):.1f})"
        )
        print(
            f"this process's CPU ms/segment  {statistics.mean(own_cpus):12.1f}   (probe of the "
            f"output, fsyncs, link)"
        )
        print(f"wall ms per minute of footage  {wall / minutes:12.1f}")
        print(
            f"CPU ms per minute of footage   {cpu / minutes:12.1f}   "
            f"(one core: ~{1000 / (cpu / minutes):.0f} footage minutes per second)"
        )
        print(
            f"baseline: ffmpeg -version      {base_wall:12.1f} ms wall, {base_cpu:.1f} ms CPU "
            f"(start-up, in every figure above)"
        )
        print(
            json.dumps(
                {
                    "bench": "grooming",
                    "ratio": round(ratio, 4),
                    "ms_per_segment": round(wall, 2),
                    "cpu_ms_per_segment": round(cpu, 2),
                    "segments": n,
                    "version": version,
                    "quick": args.quick,
                    "input_bytes": clip_bytes,
                    "output_bytes": out_bytes,
                    "ms_per_footage_minute": round(wall / minutes, 2),
                    "cpu_ms_per_footage_minute": round(cpu / minutes, 2),
                    "ffmpeg_startup_ms": round(base_wall, 2),
                    "ffmpeg_startup_cpu_ms": round(base_cpu, 2),
                    "checks_ok": not problems,
                }
            )
        )
        return 0 if not problems else 1
    finally:
        remove_work(WORK, args.keep)


if __name__ == "__main__":
    sys.exit(main())
