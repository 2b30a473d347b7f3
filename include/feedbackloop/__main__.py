"""``python -m feedbackloop``: the project's command line (see :mod:`feedbackloop.cli`)."""

from __future__ import annotations

from feedbackloop.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
