"""Benchmark: rewards (vectorised vs the brief's per-row function) and the dataset build at scale.

1. **Rewards.** ``compute_rewards`` over N feedback records (default 1,000,000) against the
   brief's per-row ``calculate_reward`` (the reference), in the same process on the same
   rows: the maximum absolute difference of the total and of every component (must be
   < 1e-12) and both timings with their ratio. The per-row reference is timed in two
   parts, mapping each record to the brief's objects (``reference_inputs``) and the
   function itself, so both ratios are visible. The vectorised path is timed on the frame
   as ``Table.to_pandas()`` returns it (list cells as NumPy arrays, converted to Arrow
   inside) and with Arrow-backed list columns (``types_mapper=pd.ArrowDtype``); median of
   ``--repeat`` runs.
2. **Dataset build.** ``write_training_sets`` from the rewards Parquet file for
   ``--small-rows`` (default 250,000) and N rows, each in its own child process: seconds,
   rows/s, peak RSS (``VmHWM`` of the child) and the RSS ratio. Memory that grew with
   the input would make the ratio approach N / small; a streaming build keeps it far lower.

Rows come from ``feedbackloop.synth`` (``iter_app_data``; generation is not timed). The
synthetic app renders emails from a bounded pool, so most bodies repeat; each body gets a
unique reference word so that every row is a distinct email (the worst case for the build:
nothing is de-duplicated or cached).

    PYTHONPATH=include python benchmarks/rewards.py                      # 1M rows
    PYTHONPATH=include python benchmarks/rewards.py --rows 100000 --small-rows 25000
    PYTHONPATH=include python benchmarks/rewards.py --data /tmp/bench   # keep / reuse the data
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

START = datetime(2025, 3, 1, tzinfo=UTC)
END = datetime(2025, 3, 8, tzinfo=UTC)
REWARD_INPUT = (
    "predicted_category",
    "confidence",
    "predicted_actions",
    "corrected_category",
    "missed_actions",
    "unnecessary_actions",
    "user_took_action",
)
COMPONENTS = ("reward", "reward_classification", "reward_actions", "reward_calibration", "reward_engagement")


def _word(i: int) -> str:
    """A unique lower-case word for ``i`` (numbers are folded away by text normalisation)."""
    i += 26**3
    out = []
    while i:
        i, r = divmod(i, 26)
        out.append(chr(97 + r))
    return "".join(out)


def feedback_records(n: int, seed: int) -> Iterator[dict[str, Any]]:
    """``n`` valid feedback records (the columns of ``contracts.FEEDBACK_COLUMNS``)."""
    from feedbackloop.synth import iter_app_data

    for item in iter_app_data(n, seed, START, END, malformed_fraction=0.0):
        if item.feedback_id is None:
            continue
        email, prediction = item.emails[0], item.predictions[0]
        correction = item.category_corrections[0] if item.category_corrections else None
        actions = item.action_feedback[0] if item.action_feedback else None
        yield {
            "feedback_id": prediction[0],
            "prediction_id": prediction[0],
            "email_id": email[0],
            "user_id": prediction[2],
            "model_version": prediction[3],
            "variant": prediction[4],
            "sender": email[2],
            "subject": email[3],
            "body": email[4].decode("utf-8") + f"\n\nRef {_word(item.index)}",
            "predicted_category": prediction[5],
            "confidence": prediction[6],
            "predicted_actions": prediction[7],
            "latency_ms": prediction[8],
            "predicted_at": prediction[9],
            "corrected_category": correction[3] if correction else None,
            "missed_actions": actions[3] if actions else None,
            "unnecessary_actions": actions[4] if actions else None,
            "note": actions[5] if actions else None,
            "user_took_action": any(e[3] == "action_taken" for e in item.engagement_events),
            "feedback_at": correction[4] if correction else actions[6] if actions else prediction[9],
        }


def write_feedback(path: Path, n: int, seed: int) -> float:
    """Write ``n`` records as a valid-feedback Parquet file; returns seconds taken."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from feedbackloop.contracts import valid_schema

    t0 = time.perf_counter()
    schema = valid_schema()
    tmp = path.with_suffix(".partial")
    with pq.ParquetWriter(tmp, schema) as writer:
        batch: list[dict[str, Any]] = []
        for record in feedback_records(n, seed):
            batch.append(record)
            if len(batch) == 50_000:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                batch = []
        if batch:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
    tmp.rename(path)
    return time.perf_counter() - t0


def bench_rewards(feedback: Path, repeat: int) -> tuple[dict[str, Any], Any]:
    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq

    from feedbackloop.rewards import calculate_reward, compute_rewards, reference_inputs

    table = pq.read_table(feedback)
    frame = table.to_pandas()
    arrow_frame = table.select(list(REWARD_INPUT)).to_pandas(types_mapper=pd.ArrowDtype)
    records = table.select(list(REWARD_INPUT)).to_pylist()  # not timed: a head start for the reference

    t0 = time.perf_counter()
    inputs = [reference_inputs(r) for r in records]
    t_inputs = time.perf_counter() - t0
    t0 = time.perf_counter()
    reference = [calculate_reward(*args) for args in inputs]
    t_calc = time.perf_counter() - t0
    del inputs, records

    def timed(df: Any) -> tuple[list[float], Any]:
        times, out = [], None
        for _ in range(repeat):
            t = time.perf_counter()
            out = compute_rewards(df)
            times.append(time.perf_counter() - t)
        return times, out

    times_numpy, scored = timed(frame)
    times_arrow, scored_arrow = timed(arrow_frame)
    ref_total = np.fromiter((r[0] for r in reference), dtype=np.float64, count=len(reference))
    diffs = {"reward": float(np.abs(scored["reward"].to_numpy() - ref_total).max())}
    for name in ("classification", "actions", "calibration", "engagement"):
        ref = np.fromiter((r[1][name] for r in reference), dtype=np.float64, count=len(reference))
        diffs[f"reward_{name}"] = float(np.abs(scored[f"reward_{name}"].to_numpy() - ref).max())
    arrow_same = all(np.array_equal(scored[c].to_numpy(), scored_arrow[c].to_numpy()) for c in COMPONENTS)
    t_ref = t_inputs + t_calc
    v_numpy, v_arrow = statistics.median(times_numpy), statistics.median(times_arrow)
    result = {
        "rows": len(frame),
        "reference_seconds": round(t_ref, 3),
        "reference_inputs_seconds": round(t_inputs, 3),
        "reference_calculate_reward_seconds": round(t_calc, 3),
        "vectorised_seconds_numpy_lists": [round(t, 3) for t in times_numpy],
        "vectorised_seconds_arrow_lists": [round(t, 3) for t in times_arrow],
        "speedup_numpy_lists": round(t_ref / v_numpy, 1),
        "speedup_arrow_lists": round(t_ref / v_arrow, 1),
        "speedup_vs_calculate_reward_only_arrow_lists": round(t_calc / v_arrow, 1),
        "max_abs_diff": diffs,
        "identical": max(diffs.values()) < 1e-12 and arrow_same,
    }
    return result, scored


def _high_water_mib() -> float:
    """Peak RSS of this process image (``VmHWM``). Unlike ``ru_maxrss``, which Linux keeps
    across ``exec`` and so would report the parent's size at fork time, it starts afresh
    in a new program."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux


def build_child(source: str, out: str, workers: int) -> dict[str, Any]:
    """Run in a child process: build the training sets from a rewards Parquet file."""
    import pyarrow.parquet as pq

    from feedbackloop.datasets import write_training_sets
    from feedbackloop.golden import default_taxonomy, load_golden_set

    golden, taxonomy = load_golden_set(), default_taxonomy()
    rows = pq.ParquetFile(source).metadata.num_rows
    rss_before = _high_water_mib()
    t0 = time.perf_counter()
    stats = write_training_sets(source, golden, taxonomy, out, workers=workers)
    seconds = time.perf_counter() - t0
    return {
        "rows": rows,
        "seconds": round(seconds, 1),
        "rows_per_s": round(rows / seconds),
        "peak_rss_mib": round(_high_water_mib(), 1),
        # Worker processes (if any) are measured separately: the largest one (they are
        # spawned from this small process, so ru_maxrss is theirs).
        "worker_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        "workers": workers,
        "rss_before_build_mib": round(rss_before, 1),
        "output_rows": stats["rows"],
        "excluded": stats["excluded"],
        "output_bytes": sum(p.stat().st_size for p in Path(out).iterdir()),
    }


def spawn_build(source: Path, workers: int) -> dict[str, Any]:
    out = Path(tempfile.mkdtemp(prefix="bench_datasets_"))
    try:
        cmd = [
            sys.executable,
            __file__,
            "--child-build",
            str(source),
            "--out",
            str(out),
            "--workers",
            str(workers),
        ]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--small-rows", type=int, default=250_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--repeat", type=int, default=3, help="runs of the vectorised path (median reported)")
    p.add_argument("--data", help="folder to keep and reuse the generated Parquet files (default: temporary)")
    p.add_argument("--skip-build", action="store_true", help="only the rewards benchmark")
    p.add_argument("--workers", type=int, default=2, help="processes of the dataset build (default: 2 cores)")
    p.add_argument("--child-build", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child_build:
        print(json.dumps(build_child(args.child_build, args.out, args.workers)))
        return 0

    import pyarrow as pa
    import pyarrow.parquet as pq

    data = Path(args.data) if args.data else Path(tempfile.mkdtemp(prefix="bench_rewards_"))
    data.mkdir(parents=True, exist_ok=True)
    try:
        feedback = data / f"feedback_{args.rows}_{args.seed}.parquet"
        if not feedback.exists():
            print(f"generating {args.rows:,} feedback records ...", flush=True)
            print(
                f"  {write_feedback(feedback, args.rows, args.seed):.1f} s (not part of any timing)",
                flush=True,
            )
        rewards, scored = bench_rewards(feedback, args.repeat)
        print(
            f"rewards, {rewards['rows']:,} rows: per-row reference {rewards['reference_seconds']:.2f} s "
            f"(reference_inputs {rewards['reference_inputs_seconds']:.2f} s + calculate_reward "
            f"{rewards['reference_calculate_reward_seconds']:.2f} s)"
        )
        print(
            f"  vectorised, NumPy list cells: {rewards['vectorised_seconds_numpy_lists']} s -> "
            f"{rewards['speedup_numpy_lists']}x;  Arrow list columns: {rewards['vectorised_seconds_arrow_lists']} s"
            f" -> {rewards['speedup_arrow_lists']}x  (vs calculate_reward alone: "
            f"{rewards['speedup_vs_calculate_reward_only_arrow_lists']}x)"
        )
        print(
            f"  max abs diff {max(rewards['max_abs_diff'].values()):.3g}, identical: {rewards['identical']}"
        )
        result: dict[str, Any] = {"rewards": rewards}
        if not args.skip_build:
            table = pa.Table.from_pandas(scored, preserve_index=False)
            del scored
            sources = {}
            for n in (args.small_rows, args.rows):
                path = data / f"rewards_{n}_{args.seed}.parquet"
                pq.write_table(table.slice(0, n), path, row_group_size=50_000)
                sources[n] = path
            del table
            gc.collect()
            builds = [spawn_build(sources[n], args.workers) for n in (args.small_rows, args.rows)]
            for b in builds:
                print(
                    f"dataset build, {b['rows']:>9,} rows: {b['seconds']:7.1f} s  {b['rows_per_s']:>6,} rows/s  "
                    f"peak RSS {b['peak_rss_mib']:7.1f} MiB (before build {b['rss_before_build_mib']} MiB, "
                    f"largest of {b['workers']} workers {b['worker_peak_rss_mib']} MiB)  "
                    f"output {b['output_bytes'] / 2**30:.2f} GiB  rows {b['output_rows']}"
                )
            ratio = builds[1]["peak_rss_mib"] / builds[0]["peak_rss_mib"]
            print(f"peak RSS ratio ({args.rows:,} / {args.small_rows:,} rows): {ratio:.2f}")
            result.update(builds=builds, rss_ratio=round(ratio, 3))
        print(json.dumps(result, sort_keys=True))
        return 0 if rewards["identical"] else 1
    finally:
        if not args.data:
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
