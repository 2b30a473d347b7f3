"""Command line for CI/CD and operators outside Airflow: ``python -m feedbackloop.cli``.

Subcommands:
    migrate         apply pending ``ml`` migrations to a database
    validate-golden check taxonomy.yaml and golden_set.jsonl against their schema
    golden-readme   regenerate (or ``--check``) the counts in golden_set/README.md
    gate            evaluate a model on the golden set and apply the release gate
"""

from __future__ import annotations

import argparse
import sys

from feedbackloop.paths import golden_dir


def _migrate(args: argparse.Namespace) -> int:
    from feedbackloop import db

    with db.connect(args.dsn) as conn:
        if args.with_app_tables:
            db.create_app_tables(conn)
        applied = db.migrate(conn)
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0


def _validate_golden(args: argparse.Namespace) -> int:
    from feedbackloop.golden import GoldenSetError, category_counts, load_golden_set, load_taxonomy

    try:
        taxonomy = load_taxonomy(args.taxonomy)
        emails = load_golden_set(args.golden, taxonomy)
    except GoldenSetError as exc:
        print(f"invalid: {exc}", file=sys.stderr)
        return 1
    print(f"ok: {len(emails)} emails, {len(category_counts(emails))} categories, taxonomy v{taxonomy.version}")
    return 0


def _golden_readme(args: argparse.Namespace) -> int:
    from feedbackloop.golden import default_taxonomy, load_golden_set
    from feedbackloop.golden_readme import update

    readme = golden_dir() / "README.md"
    current = update(readme, load_golden_set(), default_taxonomy(), check=args.check)
    if args.check and not current:
        print(f"{readme} is stale: run python -m feedbackloop.cli golden-readme", file=sys.stderr)
        return 1
    print(f"{readme}: {'up to date' if current else 'regenerated'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="feedbackloop", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("migrate", help="apply pending ml migrations")
    p.add_argument("--dsn", required=True, help="PostgreSQL DSN of the feedback DB")
    p.add_argument("--with-app-tables", action="store_true", help="also create the app tables (demo/tests)")
    p.set_defaults(func=_migrate)

    p = sub.add_parser("validate-golden", help="validate the taxonomy and the golden set")
    p.add_argument("--taxonomy", default=None)
    p.add_argument("--golden", default=None)
    p.set_defaults(func=_validate_golden)

    p = sub.add_parser("golden-readme", help="regenerate the counts in golden_set/README.md")
    p.add_argument("--check", action="store_true", help="only check, exit 1 when stale")
    p.set_defaults(func=_golden_readme)

    from feedbackloop.gate_cli import add_gate_parser

    add_gate_parser(sub)

    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
