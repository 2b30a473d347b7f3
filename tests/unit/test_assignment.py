"""Deterministic user assignment: the published test vectors and the properties the
experiment relies on (sticky, monotone ramps, the configured split)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from feedbackloop.assignment import BUCKETS, assign, bucket, threshold

VECTORS = Path(__file__).resolve().parents[1] / "data" / "assignment_vectors.json"


def _vectors() -> list[dict]:
    return json.loads(VECTORS.read_text(encoding="utf-8"))["vectors"]


@pytest.mark.parametrize("vector", _vectors(), ids=lambda v: f"{v['experiment_id']}:{v['user_id']}")
def test_published_vectors_are_reproduced(vector):
    import hashlib

    digest = hashlib.sha256(f"{vector['experiment_id']}:{vector['user_id']}".encode()).digest()
    assert digest[:8].hex() == vector["first_8_bytes_hex"]
    assert bucket(vector["experiment_id"], vector["user_id"]) == vector["bucket"]
    shares = json.loads(VECTORS.read_text(encoding="utf-8"))["shares"]
    for label, share in shares.items():
        assert assign(vector["experiment_id"], vector["user_id"], share) == vector["variant"][label], label


def test_vectors_cover_the_ramp_boundaries_and_non_ascii_ids():
    vectors = _vectors()
    buckets = {v["bucket"] for v in vectors}
    # Buckets right at each threshold catch an off-by-one (< vs <=) in another implementation.
    assert {0, 499, 500, 2499, 2500, 4999, 5000, 9999} <= buckets
    assert any(not v["user_id"].isascii() for v in vectors)
    assert len({v["experiment_id"] for v in vectors}) >= 2


def test_assignment_is_sticky_and_ramps_are_monotone():
    users = [f"user-{i}" for i in range(5000)]
    previous = {u: "champion" for u in users}
    for share in (0.05, 0.25, 0.5, 1.0):
        current = {u: assign("ab-v1-1", u, share) for u in users}
        assert current == {u: assign("ab-v1-1", u, share) for u in users}  # same answer every time
        # Raising the share only moves champion users to the challenger, never back.
        assert all(current[u] == "challenger" for u in users if previous[u] == "challenger")
        previous = current


@pytest.mark.parametrize("share", [0.05, 0.25, 0.5])
def test_the_split_matches_the_share(share):
    n = 40_000
    on_challenger = sum(assign("ab-v1-1", f"u{i}", share) == "challenger" for i in range(n))
    sd = (n * share * (1 - share)) ** 0.5
    assert abs(on_challenger - n * share) < 4 * sd


def test_experiments_reshuffle_users():
    users = [f"user-{i}" for i in range(4000)]
    first = {u for u in users if assign("ab-v1-1", u, 0.25) == "challenger"}
    second = {u for u in users if assign("ab-v2-1", u, 0.25) == "challenger"}
    overlap = len(first & second) / len(first)
    assert 0.18 < overlap < 0.32  # independent: about a quarter, not all of them


@pytest.mark.parametrize(
    ("share", "expected"),
    [
        pytest.param(0.0, 0, id="zero"),
        pytest.param(0.05, 500, id="5pct"),
        pytest.param(0.25, 2500, id="25pct"),
        pytest.param(1.0, BUCKETS, id="all"),
        pytest.param(0.00005, 1, id="half-bucket-rounds-up"),
        pytest.param(0.123456, 1235, id="between-buckets"),
    ],
)
def test_threshold_rounds_half_up(share, expected):
    assert threshold(share) == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(("", "u1", 0.05), "experiment_id", id="empty-experiment"),
        pytest.param(("ab-v1-1", "", 0.05), "user_id", id="empty-user"),
        pytest.param(("ab-v1-1", "u1", 1.5), "share", id="share-above-one"),
        pytest.param(("ab-v1-1", "u1", -0.1), "share", id="negative-share"),
        pytest.param(("ab-v1-1", "u1", float("nan")), "share", id="nan-share"),
        pytest.param(("ab-v1-1", "u1", "0.05"), "share", id="string-share"),
    ],
)
def test_bad_input_is_rejected(args, message):
    with pytest.raises(ValueError, match=message):
        assign(*args)
