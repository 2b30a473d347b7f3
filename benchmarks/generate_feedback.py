"""Benchmark: stream synthetic feedback rows to CSV and show that peak memory is flat.

Runs the generator twice, for N and 2N feedback rows (default N = 1,000,000), each in its
own child process writing CSV to a temporary folder (deleted afterwards), and prints rows/s
and peak RSS of both runs and the RSS ratio. A streaming generator keeps the ratio near 1.0;
one that held rows in memory would roughly double.

    PYTHONPATH=include python benchmarks/generate_feedback.py              # 1M and 2M rows
    PYTHONPATH=include python benchmarks/generate_feedback.py --rows 100000

Disk: ``malformed_fraction`` rows are 10 % ``body_too_large`` (bodies just above
``MAX_BODY_BYTES``, written as hex), so 1M rows at 2 % write about 4-5 GB of CSV.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from feedbackloop.contracts import MAX_BODY_BYTES

START = datetime(2025, 3, 1, tzinfo=UTC)
END = datetime(2025, 3, 8, tzinfo=UTC)


def run_child(rows: int, seed: int, out: Path, malformed_fraction: float, oversize: int) -> dict:
    """Generate ``rows`` feedback rows to CSV in this process and measure it."""
    from feedbackloop.synth import iter_app_data, write_app_data_csv

    t0 = time.perf_counter()
    counts = write_app_data_csv(
        out,
        iter_app_data(
            rows, seed, START, END, malformed_fraction=malformed_fraction, oversize_body_bytes=oversize
        ),
    )
    seconds = time.perf_counter() - t0
    bytes_written = sum(p.stat().st_size for p in out.glob("*.csv"))
    return {
        "rows": rows,
        "seconds": round(seconds, 2),
        "rows_per_s": round(rows / seconds),
        "table_rows": counts,
        "csv_bytes": bytes_written,
        # ru_maxrss is in KiB on Linux.
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def spawn(rows: int, args: argparse.Namespace) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench_feedback_"))
    try:
        cmd = [
            sys.executable,
            __file__,
            "--child",
            "--rows",
            str(rows),
            "--seed",
            str(args.seed),
            "--out",
            str(tmp),
            "--malformed-fraction",
            str(args.malformed_fraction),
            "--oversize-body-bytes",
            str(args.oversize_body_bytes),
        ]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        result = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    # Cross-check with the kernel's view of finished children (max over children so far).
    result["children_max_rss_mib"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--rows", type=int, default=1_000_000, help="feedback rows of the first run (the second runs 2x)"
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--malformed-fraction", type=float, default=0.02)
    p.add_argument(
        "--oversize-body-bytes",
        type=int,
        default=MAX_BODY_BYTES + 4096,
        help="size of body_too_large bodies (the generator default is ~5 MB; kept small here to bound disk use)",
    )
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(
            json.dumps(
                run_child(
                    args.rows, args.seed, Path(args.out), args.malformed_fraction, args.oversize_body_bytes
                )
            )
        )
        return 0
    small = spawn(args.rows, args)
    large = spawn(2 * args.rows, args)
    for r in (small, large):
        print(
            f"{r['rows']:>10,} feedback rows: {r['seconds']:8.1f} s  {r['rows_per_s']:>8,} rows/s  "
            f"peak RSS {r['peak_rss_mib']:7.1f} MiB  CSV {r['csv_bytes'] / 2**30:6.2f} GiB  tables {r['table_rows']}"
        )
    ratio = large["peak_rss_mib"] / small["peak_rss_mib"]
    print(
        f"peak RSS ratio ({large['rows']:,} / {small['rows']:,} rows): {ratio:.3f}"
        f"  (RUSAGE_CHILDREN max after both: {large['children_max_rss_mib']} MiB)"
    )
    print(json.dumps({"small": small, "large": large, "rss_ratio": round(ratio, 3)}, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
