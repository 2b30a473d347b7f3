"""Where the project's data files live.

The package is installed editable from the repository (``pip install -e .``), so the data
folders are found beside it. Deployments that copy the folders elsewhere set
``FEEDBACKLOOP_GOLDEN_DIR`` / ``FEEDBACKLOOP_EXPECTATIONS_DIR``.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def golden_dir() -> Path:
    """Folder holding ``taxonomy.yaml``, ``golden_set.jsonl`` and the seed corpus."""
    return Path(os.environ.get("FEEDBACKLOOP_GOLDEN_DIR", PROJECT_ROOT / "golden_set"))


def expectations_dir() -> Path:
    """Folder holding the Great Expectations suites as JSON."""
    return Path(os.environ.get("FEEDBACKLOOP_EXPECTATIONS_DIR", PROJECT_ROOT / "expectations"))
