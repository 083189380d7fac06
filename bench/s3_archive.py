"""Issue 17's figures for the s3 archive volume, against a real Ceph RGW micro cluster.

(1) migration throughput: the executor's data path to an s3 volume (`Roots.copy_verified` over
a batch through `run_copies`, ARCHIVE_WORKERS at once: upload in Content-MD5-checked parts,
then the object read back and its SHA-256 compared with the catalog's) vs boto3's plain
managed `upload_file` of the same files (one after another), in the same run, alternating
which goes first; MB/s and the ratio (goal >= 0.8). The catalog switch and the
local unlink that follow in a real migration are not counted (they are the same for a disk).
(2) time to first byte of a ranged GET (`Bucket.open(rel, 0, 65535)`, what playback starts
with), p50 / p99.
(3) purge rate: `Roots.remove` (every version, DeleteObjects batches) vs plain DeleteObjects of
as many other objects, objects/s.

The cluster (tests/peers/s3.py) holds everything in RAM: the default run stays under 1 GiB.
Prints readable lines, then one JSON line {"bench": "s3_archive", ...}. `uptime` is printed
before and after: the 2 cores are shared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import REPO, remove_work
from ccvault.config.model import VolumeConfig
from ccvault.retention.roots import Roots, run_copies
from ccvault.storage.objects import bucket_of
from tests.peers.s3 import S3Server

MIB = 1 << 20


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def make_files(work: Path, count: int, size: int) -> list[Path]:
    work.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(count):
        path = work / f"seg{i:04d}.mp4"
        path.write_bytes(os.urandom(size))
        out.append(path)
    return out


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a short smoke run")
    ap.add_argument("--files", type=int, default=24, help="segments per round")
    ap.add_argument("--mib", type=int, default=20, help="segment size (MiB; >16 = multipart)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--gets", type=int, default=300, help="ranged GETs for time to first byte")
    ap.add_argument("--deletes", type=int, default=1000, help="objects per purge measurement")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.files, args.rounds, args.gets, args.deletes = 4, 1, 40, 100
    work = REPO / "bench" / "out" / "s3_archive"
    remove_work(work, keep=False)
    print("before:", uptime())
    server = S3Server(memstore_bytes=3 << 30)
    began = time.perf_counter()
    server.start(work / "cluster")
    print(f"cluster answered S3 in {time.perf_counter() - began:.2f} s")
    try:
        result = run(server, work, args)
    finally:
        server.stop()
    print("after:", uptime())
    print(json.dumps({"bench": "s3_archive", **result}))
    remove_work(work, args.keep)
    return 0


def run(server: S3Server, work: Path, args: argparse.Namespace) -> dict:
    keys = work / "keys"
    keys.mkdir(parents=True)
    (keys / "a").write_text(server.access_key or "")
    (keys / "s").write_text(server.secret_key or "")
    name = f"bench-{uuid.uuid4().hex[:12]}"
    cfg = VolumeConfig.model_validate(
        {
            "name": "vault",
            "kind": "s3",
            "role": "archive",
            "endpoint": server.endpoint,
            "bucket": name,
            "access_key_file": str(keys / "a"),
            "secret_key_file": str(keys / "s"),
        }
    )
    bucket = bucket_of(cfg)
    bucket.ensure_bucket()
    plain = server.client()
    roots = Roots({}, {"vault": bucket})
    files = make_files(work / "files", args.files, args.mib * MIB)
    import hashlib

    sums = [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]
    total = sum(f.stat().st_size for f in files)
    ours, theirs = [], []
    for r in range(args.rounds):

        def migrate(r: int = r) -> None:
            def one(item: tuple[Path, str]) -> int:
                return roots.copy_verified(item[0], "vault", f"m{r}/{item[0].name}", item[1])

            run_copies(one, list(zip(files, sums, strict=True)), to_bucket=True)

        def upload(r: int = r) -> None:
            for f in files:
                plain.upload_file(str(f), name, f"p{r}/{f.name}")

        order = [(migrate, ours), (upload, theirs)]
        for fn, into in order if r % 2 == 0 else order[::-1]:
            into.append(total / timed(fn) / 1e6)
        roots.remove([("vault", f"m{r}/{f.name}") for f in files])
        plain.delete_objects(
            Bucket=name, Delete={"Objects": [{"Key": f"p{r}/{f.name}"} for f in files]}
        )
    mig, up = statistics.median(ours), statistics.median(theirs)
    print(
        f"migration (upload + read-back SHA-256): {mig:.1f} MB/s; plain upload_file: "
        f"{up:.1f} MB/s; ratio {mig / up:.2f} (goal >= 0.80) — rounds: "
        f"{[round(x, 1) for x in ours]} vs {[round(x, 1) for x in theirs]}"
    )

    bucket.upload(files[0], "ttfb.mp4")
    ttfb = []
    for _ in range(args.gets):
        began = time.perf_counter()
        body = bucket.open("ttfb.mp4", 0, 65535)
        body.read(1)
        ttfb.append((time.perf_counter() - began) * 1000)
        body.close()
    ttfb.sort()
    p50, p99 = ttfb[len(ttfb) // 2], ttfb[min(len(ttfb) - 1, int(len(ttfb) * 0.99))]
    print(f"time to first byte (ranged GET): p50 {p50:.1f} ms, p99 {p99:.1f} ms")

    rates = {}
    for label in ("ours", "plain"):
        names = [f"d-{label}/{i:05d}" for i in range(args.deletes)]
        for key in names:
            plain.put_object(Bucket=name, Key=key, Body=b"x" * 1024)
        if label == "ours":
            took = timed(lambda names=names: roots.remove([("vault", k) for k in names]))
        else:

            def delete(names: list[str] = names) -> None:
                for i in range(0, len(names), 1000):
                    plain.delete_objects(
                        Bucket=name,
                        Delete={"Objects": [{"Key": k} for k in names[i : i + 1000]]},
                    )

            took = timed(delete)
        rates[label] = args.deletes / took
    print(
        f"purge: {rates['ours']:.0f} objects/s (every version listed, then DeleteObjects); "
        f"plain DeleteObjects {rates['plain']:.0f} objects/s; ratio "
        f"{rates['ours'] / rates['plain']:.2f}"
    )
    return {
        "files": args.files,
        "mib": args.mib,
        "migration_mb_s": round(mig, 1),
        "plain_upload_mb_s": round(up, 1),
        "ratio": round(mig / up, 2),
        "ttfb_p50_ms": round(p50, 1),
        "ttfb_p99_ms": round(p99, 1),
        "purge_per_s": round(rates["ours"]),
        "plain_delete_per_s": round(rates["plain"]),
    }


if __name__ == "__main__":
    sys.exit(main())
