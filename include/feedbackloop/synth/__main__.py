"""Command line for the synthetic data generators.

Examples::

    python -m feedbackloop.synth seed-corpus --out golden_set/seed_corpus.jsonl
    python -m feedbackloop.synth app-data --dsn postgresql://postgres@127.0.0.1:54329/postgres \\
        --rows 100000 --seed 1 --start 2025-03-01T00:00:00Z --end 2025-03-02T00:00:00Z
    python -m feedbackloop.synth app-data-csv --out /tmp/app --rows 1000000 --seed 1 \\
        --start 2025-03-01 --end 2025-03-02 --malformed-fraction 0.02 --unlabeled-ratio 0.5
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from feedbackloop.synth.appdata import (
    DEFAULT_OVERSIZE_BODY_BYTES,
    iter_app_data,
    load_app_data,
    write_app_data_csv,
)
from feedbackloop.synth.corpus import seed_corpus, write_seed_corpus


def _timestamp(text: str) -> datetime:
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 timestamp: {text!r}") from exc
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts


def _generation_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rows", type=int, required=True, help="feedback items to generate (n_feedback)")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument(
        "--start",
        type=_timestamp,
        required=True,
        help="start of the feedback window (ISO 8601, UTC if naive)",
    )
    p.add_argument("--end", type=_timestamp, required=True, help="exclusive end of the feedback window")
    p.add_argument("--malformed-fraction", type=float, default=0.02)
    p.add_argument("--unlabeled-ratio", type=float, default=0.0)
    p.add_argument("--challenger-share", type=float, default=0.05)
    p.add_argument(
        "--oversize-body-bytes",
        type=int,
        default=DEFAULT_OVERSIZE_BODY_BYTES,
        help="size of the bodies injected as body_too_large",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m feedbackloop.synth",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sc = sub.add_parser("seed-corpus", help="write the seed training corpus as JSONL")
    sc.add_argument("--out", required=True)
    sc.add_argument("--n-per-category", type=int, default=150)
    sc.add_argument("--seed", type=int, default=7)
    ad = sub.add_parser("app-data", help="generate app data and COPY it into PostgreSQL")
    ad.add_argument("--dsn", required=True)
    ad.add_argument("--batch-rows", type=int, default=20_000)
    ad.add_argument(
        "--create-tables", action="store_true", help="create the app tables first (demo databases)"
    )
    _generation_args(ad)
    ac = sub.add_parser("app-data-csv", help="generate app data as one CSV per table")
    ac.add_argument("--out", required=True)
    _generation_args(ac)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "seed-corpus":
        n = write_seed_corpus(args.out, seed_corpus(args.n_per_category, args.seed))
        print(json.dumps({"out": args.out, "records": n}))  # noqa: T201
        return 0
    try:
        items = iter_app_data(
            args.rows,
            args.seed,
            args.start,
            args.end,
            args.malformed_fraction,
            args.unlabeled_ratio,
            args.challenger_share,
            oversize_body_bytes=args.oversize_body_bytes,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    if args.command == "app-data":
        from feedbackloop import db

        with db.connect(args.dsn) as conn:
            if args.create_tables:
                db.create_app_tables(conn)
            counts = load_app_data(conn, items, batch_rows=args.batch_rows)
    else:
        counts = write_app_data_csv(args.out, items)
    print(json.dumps(counts, sort_keys=True))  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
