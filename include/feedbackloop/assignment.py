"""Deterministic assignment of users to the champion or the challenger of an A/B experiment.

The app serves the models, the pipeline analyses the result; both must agree on who saw
which model without sharing state. So assignment is a pure function of the experiment id
and the user id, simple enough to reimplement in any language:

1. ``key = f"{experiment_id}:{user_id}"`` encoded as UTF-8.
2. ``digest = SHA-256(key)``; take its first 8 bytes as an unsigned big-endian integer.
3. ``bucket = that integer % 10000`` (0..9999).
4. ``threshold = floor(share * 10000 + 0.5)`` (the share in basis points, rounded half up),
   computed in IEEE-754 double precision like every mainstream language does, so the
   integer is the same everywhere (the ramp steps 0.05 / 0.25 / 0.5 give exactly 500 /
   2500 / 5000).
5. The user sees the challenger iff ``bucket < threshold``, else the champion.

Properties the experiment relies on:

* **Sticky**: a user keeps the same bucket for the whole experiment.
* **Monotone ramps**: raising the share only moves champion users to the challenger
  (``bucket < 500`` implies ``bucket < 2500``), so nobody flips back and forth when the
  share goes 5% -> 25% -> 50%.
* **Independent experiments**: the experiment id is part of the key, so a new experiment
  reshuffles users and the same users are not always the guinea pigs.

The experiment id comes from ``ml.experiments`` (also exposed by the view
``ml.serving_config``). Published test vectors live in ``tests/data/assignment_vectors.json``;
``docs/ab_assignment.md`` shows a Swift version that reproduces them.
"""

from __future__ import annotations

import hashlib
import math
from typing import Literal

BUCKETS = 10_000

Variant = Literal["champion", "challenger"]


def bucket(experiment_id: str, user_id: str) -> int:
    """The user's bucket (0..9999) in an experiment.

    Args:
        experiment_id: the experiment's id (``ml.experiments.experiment_id``).
        user_id: the app's user id, as the app stores it in ``app.predictions.user_id``.

    Raises:
        ValueError: when either id is empty (an empty user id would put every anonymous
            request in one bucket).
    """
    if not experiment_id:
        raise ValueError("experiment_id must be a non-empty string")
    if not user_id:
        raise ValueError("user_id must be a non-empty string")
    digest = hashlib.sha256(f"{experiment_id}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def threshold(share: float) -> int:
    """The number of buckets (out of 10000) that see the challenger at ``share``.

    Rounds half up (``floor(x + 0.5)``) rather than Python's half-to-even ``round`` so
    every language computes the same integer.

    Raises:
        ValueError: when ``share`` is not a finite number in [0, 1].
    """
    if not isinstance(share, int | float) or not math.isfinite(share) or not 0 <= share <= 1:
        raise ValueError(f"share must be a number in [0, 1], got {share!r}")
    return math.floor(share * BUCKETS + 0.5)


def assign(experiment_id: str, user_id: str, share: float) -> Variant:
    """``"challenger"`` when the user's bucket is below the share's threshold, else ``"champion"``."""
    return "challenger" if bucket(experiment_id, user_id) < threshold(share) else "champion"
