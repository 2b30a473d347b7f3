"""Benchmark: extract + validate N feedback rows, against the raw COPY floor and a pandas peer.

Starts its own embedded PostgreSQL (127.0.0.1, stopped at the end), loads N generated
feedback rows for day 1 and (for the memory check) N more for day 2, then measures, each in
a fresh child process so that peak RSS values are separate:

=============  =================================================================================
floor          ``COPY (<the extraction query>) TO STDOUT`` into /dev/null (psycopg, text format)
peer           naive ``pandas.read_sql`` of the whole interval (SQLAlchemy + psycopg)
ours           ``extract_feedback`` (ADBC) to staged Parquet, then ``validate_feedback`` on the table
ours-stream    ``extract_feedback``, then the chunked ``StreamingValidator`` (bounded memory; the
               path of the retraining DAG's validate stage and of the daily export)
before         ``extract_feedback(arrow=False)``: the psycopg cursor path (same bytes)
=============  =================================================================================

and prints rows/s, seconds and peak RSS of each, validation time, and the peak RSS of ours at
N vs 2N rows. Targets (issue 4): extract within 2x the COPY floor; validation of 1M rows
under 10 s; peak RSS at 2N within 10 % of N. The one-off ``import great_expectations`` is
timed separately: a worker pays it once per process.

    PYTHONPATH=include python benchmarks/extract.py                  # N = 1,000,000
    PYTHONPATH=include python benchmarks/extract.py --rows 100000
    PYTHONPATH=include python benchmarks/extract.py --rows 200000 --no-double

Data: ``--malformed-fraction`` (default 0.2 %) of rows carry one generator defect, so the
gate passes; ``body_too_large`` bodies are just above the 1 MB limit to bound disk use.
Loading 2 x 1M rows takes a few minutes (two loader processes); it is reported apart.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from feedbackloop.contracts import MAX_BODY_BYTES

DAY1 = datetime(2026, 3, 1, tzinfo=UTC)
DAY = timedelta(days=1)
DB_NAME = "bench_extract"


# ------------------------------------------------------------------------- children


def _peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


def _interval(days: int) -> tuple[datetime, datetime]:
    return DAY1, DAY1 + days * DAY


def child_load(dsn: str, rows: int, seed: int, day: int, malformed: float) -> dict[str, Any]:
    import psycopg

    from feedbackloop.synth import iter_app_data, load_app_data

    start = DAY1 + day * DAY
    t0 = time.perf_counter()
    with psycopg.connect(dsn) as conn:
        counts = load_app_data(
            conn,
            iter_app_data(
                rows,
                seed,
                start,
                start + DAY,
                malformed_fraction=malformed,
                oversize_body_bytes=MAX_BODY_BYTES + 4096,
            ),
        )
    return {"seconds": time.perf_counter() - t0, "tables": counts}


def _literal_query(conn: Any, start: datetime, end: datetime) -> str:
    import psycopg

    from feedbackloop.extract import feedback_query

    with psycopg.ClientCursor(conn) as cur:
        return cur.mogrify(feedback_query(), {"start": start, "end": end})


def child_floor(dsn: str, days: int) -> dict[str, Any]:
    import psycopg

    start, end = _interval(days)
    with psycopg.connect(dsn) as conn:
        query = _literal_query(conn, start, end)
        t0 = time.perf_counter()
        rows = 0
        with (
            conn.cursor() as cur,
            cur.copy(f"COPY ({query}) TO STDOUT") as copy,
            open(os.devnull, "wb") as sink,
        ):
            for block in copy:
                sink.write(block)
                rows += bytes(block).count(b"\n")  # COPY text escapes newlines inside values
        seconds = time.perf_counter() - t0
    return {"rows": rows, "seconds": seconds, "peak_rss_mib": _peak_rss_mib()}


def child_peer(dsn: str, days: int) -> dict[str, Any]:
    import pandas as pd
    import psycopg
    import sqlalchemy as sa

    start, end = _interval(days)
    with psycopg.connect(dsn) as conn:
        query = _literal_query(conn, start, end)
    engine = sa.create_engine(dsn.replace("postgresql://", "postgresql+psycopg://", 1))
    t0 = time.perf_counter()
    frame = pd.read_sql(sa.text(query), engine)
    seconds = time.perf_counter() - t0
    rows = len(frame)
    engine.dispose()
    return {"rows": rows, "seconds": seconds, "peak_rss_mib": _peak_rss_mib()}


def child_ours(
    dsn: str, days: int, chunk_rows: int, stream: bool, validate_chunk_rows: int
) -> dict[str, Any]:
    import psycopg

    from feedbackloop.extract import extract_feedback
    from feedbackloop.staging import LocalStaging

    start, end = _interval(days)
    work = Path(tempfile.mkdtemp(prefix="bench-extract-stage-"))
    try:
        staging = LocalStaging(work)
        with psycopg.connect(dsn) as conn:
            t0 = time.perf_counter()
            summary = extract_feedback(
                conn, staging, "feedback_raw.parquet", start, end, chunk_rows=chunk_rows
            )
            extract_s = time.perf_counter() - t0
        extract_rss = _peak_rss_mib()
        raw_sha256 = _sha256(work / "feedback_raw.parquet")

        t0 = time.perf_counter()
        import great_expectations  # noqa: F401 - timed apart: paid once per worker process

        gx_import_s = time.perf_counter() - t0
        # GX's first validation in a process also builds registries and caches: timed apart.
        import pyarrow.parquet as pq

        from feedbackloop.quality import validate_feedback
        from feedbackloop.staging import read_parquet

        t0 = time.perf_counter()
        first_group = pq.ParquetFile(work / "feedback_raw.parquet").read_row_group(0)  # not the whole file
        validate_feedback(first_group.slice(0, 100), start, end, min_rows=0)
        del first_group
        gx_warmup_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        if stream:
            from feedbackloop.quality_stream import BatchLimits, StreamingValidator, iter_raw_chunks

            validator = StreamingValidator(start, end, BatchLimits())
            for chunk in iter_raw_chunks(work / "feedback_raw.parquet", validate_chunk_rows):
                validator.validate(chunk)  # the valid / quarantine tables are dropped chunk by chunk
            result = validator.finish()
        else:
            result = validate_feedback(read_parquet(staging, "feedback_raw.parquet"), start, end).summary
        validate_s = time.perf_counter() - t0
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "rows": summary.rows,
        "parquet_bytes": summary.bytes,
        "parquet_sha256": raw_sha256,
        "extract_s": extract_s,
        "extract_peak_rss_mib": extract_rss,
        "gx_import_s": gx_import_s,
        "gx_warmup_s": gx_warmup_s,
        "validate_s": validate_s,
        "seconds": extract_s + validate_s,
        "peak_rss_mib": _peak_rss_mib(),
        "rows_quarantined": result["rows_quarantined"],
        "passed": result["passed"],
        "chunks": result.get("chunks", 1),
    }


def child_cursor(dsn: str, days: int, chunk_rows: int) -> dict[str, Any]:
    """The psycopg path of ``extract_feedback`` (``arrow=False``: a server-side cursor and
    Python row tuples), the implementation the ADBC reader replaced; same Parquet bytes."""
    import psycopg

    from feedbackloop.extract import extract_feedback
    from feedbackloop.staging import LocalStaging

    start, end = _interval(days)
    work = Path(tempfile.mkdtemp(prefix="bench-extract-cursor-"))
    try:
        with psycopg.connect(dsn) as conn:
            t0 = time.perf_counter()
            summary = extract_feedback(
                conn,
                LocalStaging(work),
                "feedback_raw.parquet",
                start,
                end,
                chunk_rows=chunk_rows,
                arrow=False,
            )
            seconds = time.perf_counter() - t0
        digest = _sha256(work / "feedback_raw.parquet")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "rows": summary.rows,
        "seconds": seconds,
        "peak_rss_mib": _peak_rss_mib(),
        "parquet_sha256": digest,
    }


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------- parent


def spawn(mode: str, dsn: str, **kwargs: Any) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", mode, "--dsn", dsn]
    for key, value in kwargs.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, env=dict(os.environ))
    if done.returncode != 0:
        raise RuntimeError(f"child {mode} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _prepare(pg: Any, args: argparse.Namespace, days: int) -> tuple[str, dict[str, Any]]:
    import psycopg

    from feedbackloop import db

    with psycopg.connect(pg.dsn(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{DB_NAME}"')
    dsn = pg.dsn(DB_NAME)
    with psycopg.connect(dsn) as conn:
        db.create_app_tables(conn)
        db.migrate(conn)
    t0 = time.perf_counter()
    loaders = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--child",
                "load",
                "--dsn",
                dsn,
                "--rows",
                str(args.rows),
                "--seed",
                str(args.seed + day),
                "--day",
                str(day),
                "--malformed-fraction",
                str(args.malformed_fraction),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
        )
        for day in range(days)
    ]
    loads = []
    for proc in loaders:
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"loader failed:\n{err[-4000:]}")
        loads.append(json.loads(out.strip().splitlines()[-1]))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return dsn, {"seconds": time.perf_counter() - t0, "per_day": loads}


def _line(name: str, r: dict[str, Any]) -> str:
    rate = r["rows"] / r["seconds"] if r["seconds"] else float("inf")
    return f"  {name:<24} {r['rows']:>10,} rows {r['seconds']:8.2f} s {rate:>11,.0f} rows/s   peak RSS {r['peak_rss_mib']:8.1f} MiB"


def _verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000, help="feedback rows per day (N)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--malformed-fraction", type=float, default=0.002)
    p.add_argument("--chunk-rows", type=int, default=50_000, help="extract_feedback chunk_rows")
    p.add_argument("--validate-chunk-rows", type=int, default=250_000, help="StreamingValidator chunk size")
    p.add_argument("--no-double", action="store_true", help="skip the 2N memory check")
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--dsn", help=argparse.SUPPRESS)
    p.add_argument("--days", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--day", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--stream", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.child:
        if args.child == "load":
            result = child_load(args.dsn, args.rows, args.seed, args.day, args.malformed_fraction)
        elif args.child == "floor":
            result = child_floor(args.dsn, args.days)
        elif args.child == "peer":
            result = child_peer(args.dsn, args.days)
        elif args.child == "cursor":
            result = child_cursor(args.dsn, args.days, args.chunk_rows)
        else:
            result = child_ours(
                args.dsn, args.days, args.chunk_rows, bool(args.stream), args.validate_chunk_rows
            )
        print(json.dumps(result))
        return 0

    from feedbackloop import embedded_pg

    days = 1 if args.no_double else 2
    work = Path(tempfile.mkdtemp(prefix="bench-extract-"))
    pgdata = work / "pg"
    results: dict[str, Any] = {"rows_per_day": args.rows, "cpus": os.cpu_count()}
    try:
        pg = embedded_pg.start(pgdata, port=0)
        print(
            f"embedded PostgreSQL on 127.0.0.1:{pg.port}; loading {days} x {args.rows:,} feedback rows ...",
            flush=True,
        )
        dsn, results["load"] = _prepare(pg, args, days)
        print(
            f"  loaded in {results['load']['seconds']:.0f} s (the app's work, not measured below)", flush=True
        )
        spawn("floor", dsn, days=1)  # warm-up: the OS page cache holds the tables for every mode

        opts = {"chunk_rows": args.chunk_rows, "validate_chunk_rows": args.validate_chunk_rows}
        results["n"] = n = {
            "floor": spawn("floor", dsn, days=1),
            "peer": spawn("peer", dsn, days=1),
            "ours": spawn("ours", dsn, days=1, stream=0, **opts),
            "ours_stream": spawn("ours", dsn, days=1, stream=1, **opts),
        }
        n["cursor"] = spawn("cursor", dsn, days=1, chunk_rows=args.chunk_rows)
        if days == 2:
            results["2n"] = {
                "floor": spawn("floor", dsn, days=2),
                "ours": spawn("ours", dsn, days=2, stream=0, **opts),
                "ours_stream": spawn("ours", dsn, days=2, stream=1, **opts),
            }
    finally:
        embedded_pg.stop(pgdata)
        shutil.rmtree(work, ignore_errors=True)

    rows = n["floor"]["rows"]
    print(f"\n{rows:,} feedback rows (one day), {os.cpu_count()} CPUs")
    print(_line("floor: COPY -> /dev/null", n["floor"]))
    print(_line("peer: pandas.read_sql", n["peer"]))
    for key, label in (("ours", "ours"), ("ours_stream", "ours-stream")):
        r = n[key]
        print(_line(f"{label}: extract+validate", r))
        print(
            f"      extract {r['extract_s']:7.2f} s ({r['rows'] / r['extract_s']:,.0f} rows/s, peak RSS "
            f"{r['extract_peak_rss_mib']:.0f} MiB)  validate {r['validate_s']:6.2f} s "
            f"({r['chunks']} chunk(s); one-off per process: GX import {r['gx_import_s']:.1f} s, "
            f"first call {r['gx_warmup_s']:.1f} s)  "
            f"quarantined {r['rows_quarantined']:,}  passed {r['passed']}"
        )
    c = n["cursor"]
    print(_line("before: psycopg cursor path", c))
    same = c["parquet_sha256"] == n["ours"]["parquet_sha256"]
    results["cursor_vs_floor"] = c["seconds"] / n["floor"]["seconds"]
    results["cursor_bytes_identical"] = same
    print(
        f"      extract only: {results['cursor_vs_floor']:.2f}x the floor; Parquet identical to the ADBC path's: {same}"
    )
    ratio = n["ours"]["extract_s"] / n["floor"]["seconds"]
    results["extract_vs_floor"] = ratio
    print(
        f"\nextract / COPY floor: {ratio:.2f}x (target <= 2x: {_verdict(ratio <= 2)}); "
        f"peer / floor: {n['peer']['seconds'] / n['floor']['seconds']:.2f}x"
    )
    for key, label in (("ours", "validate_feedback"), ("ours_stream", "StreamingValidator")):
        secs = n[key]["validate_s"]
        verdict = _verdict(secs < 10) if rows >= 1_000_000 else "n/a below 1M rows"
        print(f"validation ({label}) of {rows:,} rows: {secs:.1f} s (target < 10 s at 1M: {verdict})")
    if "2n" in results:
        big = results["2n"]
        print(f"\n{big['floor']['rows']:,} feedback rows (two days)")
        print(_line("floor: COPY -> /dev/null", big["floor"]))
        for key, label in (("ours", "ours"), ("ours_stream", "ours-stream")):
            print(_line(f"{label}: extract+validate", big[key]))
        for key, label in (("ours", "ours (validate_feedback)"), ("ours_stream", "ours-stream")):
            r2 = big[key]["peak_rss_mib"] / n[key]["peak_rss_mib"]
            e2 = big[key]["extract_peak_rss_mib"] / n[key]["extract_peak_rss_mib"]
            results[f"rss_ratio_{key}"] = r2
            print(
                f"peak RSS 2N/N {label}: {r2:.3f} overall, {e2:.3f} extract only "
                f"(target <= 1.10: {_verdict(r2 <= 1.10)})"
            )
    print(json.dumps(results, sort_keys=True))
    if args.json:
        Path(args.json).write_text(json.dumps(results, sort_keys=True, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
