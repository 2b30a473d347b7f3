"""Training sets: formats, determinism, split stability, golden guard, caps, weights, PII."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
import pytest

from feedbackloop.contracts import FEEDBACK_COLUMNS
from feedbackloop.datasets import (
    FRAME_COLUMNS,
    DatasetConfig,
    InsufficientDataError,
    TrainingSets,
    build_training_sets,
    estimate_tokens,
    holdout_bucket,
    system_prompt,
    write_training_sets,
)
from feedbackloop.golden import GoldenEmail, GoldenSetError, default_taxonomy, load_golden_set
from feedbackloop.rewards import RewardWeights, compute_rewards, sample_weight_factor
from feedbackloop.textsim import NearDuplicateIndex

TAXONOMY = default_taxonomy()
WORDS = (
    "invoice statement package delivery meeting agenda team project offer discount weekend account "
    "update reminder schedule travel hotel booking flight review survey newsletter article school "
    "parents form event webinar points reward security device login password payment receipt order "
    "refund coupon garden recipe concert tickets library volunteer budget quarterly draft contract"
).split()


def _golden() -> list[GoldenEmail]:
    try:
        return load_golden_set()
    except (FileNotFoundError, GoldenSetError):
        body = (
            "Hi Sam,\n\nYour electricity bill for March is ready. The amount due is 84.20 EUR and it must be "
            "paid by 15 April to avoid a late fee. You can pay online in your customer area or set up a direct "
            "debit so that future bills are paid automatically on the due date.\n\nThank you for being a "
            "customer of Lumen Energy.\nLumen Energy Billing Team"
        )
        return [
            GoldenEmail(
                "gs-t1",
                "Lumen Energy <billing@lumen-energy.example>",
                "Your March bill",
                body,
                "bill_due",
                "critical",
                ("pay_invoice",),
                (),
                "constructed in tests",
            ),
            GoldenEmail(
                "gs-t2",
                "Parcelly <track@parcelly.example>",
                "Your parcel is on its way",
                "Good news! Your parcel left our depot this morning and will be delivered tomorrow between "
                "9:00 and 13:00. Track it any time in the app or change the delivery day if you are away. "
                "The driver will ring the bell and leave it with a neighbour if nobody answers.",
                "shipping_update",
                "medium",
                ("track_package",),
                (),
                "constructed in tests",
            ),
        ]


GOLDEN = _golden()


def make_rows(
    n: int,
    *,
    seed: int = 0,
    start: int = 0,
    categories: tuple[str, ...] | None = None,
    users: tuple[str, ...] | None = None,
    correction_rate: float = 0.3,
) -> list[dict[str, Any]]:
    """Feedback records with distinct, realistic-enough bodies (and some PII in them)."""
    rng = random.Random(seed)
    categories = categories or TAXONOMY.category_ids
    users = users or tuple(f"user-{k:02d}" for k in range(12))
    rows = []
    for i in range(start, start + n):
        predicted = categories[i % len(categories)]
        corrected = None
        if rng.random() < correction_rate:
            corrected = rng.choice([c for c in TAXONOMY.category_ids if c != predicted])
        allowed = TAXONOMY.category(predicted).actions
        words = " ".join(rng.choice(WORDS) for _ in range(40))
        rows.append(
            {
                "feedback_id": f"fb-{i:05d}",
                "prediction_id": f"pr-{i:05d}",
                "email_id": f"em-{i:05d}",
                "user_id": users[i % len(users)],
                "model_version": "v1",
                "variant": "champion",
                "sender": f"Sender {i} <sender{i}@shop{i % 7}.example>",
                "subject": f"Message {i}: {rng.choice(WORDS)} {rng.choice(WORDS)}",
                "body": f"Hello,\n\n{words}.\n\nReference {i}. Questions? Call +1 (415) 555-{i % 10000:04d}.",
                "predicted_category": predicted,
                "confidence": round(rng.uniform(0.3, 1.0), 4),
                "predicted_actions": list(allowed[:1]),
                "latency_ms": 120.0,
                "predicted_at": pd.Timestamp("2025-01-01", tz="UTC") + pd.Timedelta(minutes=i),
                "corrected_category": corrected,
                "missed_actions": list(allowed[1:2]) if rng.random() < 0.2 else None,
                "unnecessary_actions": [],
                "note": None,
                "user_took_action": rng.choice([True, False, None]),
                "feedback_at": pd.Timestamp("2025-01-02", tz="UTC") + pd.Timedelta(minutes=i),
            }
        )
    return rows


def scored(rows: list[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=[c for c, _ in FEEDBACK_COLUMNS])
    return compute_rewards(df)


def build(rows_or_df, config: DatasetConfig | None = None, golden=GOLDEN) -> TrainingSets:
    df = rows_or_df if isinstance(rows_or_df, pd.DataFrame) else scored(rows_or_df)
    return build_training_sets(df, golden, TAXONOMY, config or DatasetConfig())


@pytest.fixture(scope="module")
def base_sets() -> TrainingSets:
    return build(make_rows(200, seed=7))


# --- a validator written from the OpenAI spec ---------------------------------------------------

_CHAT_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
_ASSISTANT_KEYS = {"role", "content", "name", "weight", "refusal", "tool_calls", "function_call", "audio"}
_PLAIN_KEYS = {"role", "content", "name"}


def _check_message(m: Any, *, allow_weight: bool) -> None:
    assert isinstance(m, dict), f"message must be an object: {m!r}"
    assert m.get("role") in _CHAT_ROLES, f"unknown role {m.get('role')!r}"
    assert isinstance(m.get("content"), str), "content must be a string"
    if m["role"] == "assistant":
        assert set(m) <= _ASSISTANT_KEYS, f"unexpected keys {set(m) - _ASSISTANT_KEYS}"
    else:
        assert set(m) <= _PLAIN_KEYS, f"unexpected keys {set(m) - _PLAIN_KEYS} on a {m['role']} message"
    if "weight" in m:
        assert allow_weight and m["role"] == "assistant", "weight is only allowed on assistant messages"
        assert type(m["weight"]) is int and m["weight"] in (0, 1), (
            f"weight must be 0 or 1, got {m['weight']!r}"
        )


def validate_chat_line(line: bytes) -> dict[str, Any]:
    """FineTuneChatRequestInput: {"messages": [...], optional tools / parallel_tool_calls / functions}."""
    obj = json.loads(line)
    assert isinstance(obj, dict) and "messages" in obj, "a chat example needs 'messages'"
    assert set(obj) <= {"messages", "tools", "parallel_tool_calls", "functions"}, (
        f"unexpected keys {set(obj)}"
    )
    msgs = obj["messages"]
    assert isinstance(msgs, list) and msgs, "messages must be a non-empty list"
    for m in msgs:
        _check_message(m, allow_weight=True)
    assert any(m["role"] == "assistant" and m.get("weight", 1) == 1 for m in msgs), "nothing to train on"
    return obj


def validate_preference_line(line: bytes) -> dict[str, Any]:
    """FineTunePreferenceRequestInput: input.messages, preferred_output, non_preferred_output."""
    obj = json.loads(line)
    assert isinstance(obj, dict) and set(obj) == {"input", "preferred_output", "non_preferred_output"}, set(
        obj
    )
    inp = obj["input"]
    assert (
        isinstance(inp, dict)
        and set(inp) <= {"messages", "tools", "parallel_tool_calls"}
        and "messages" in inp
    )
    assert isinstance(inp["messages"], list) and inp["messages"], "input.messages must be a non-empty list"
    for m in inp["messages"]:
        _check_message(m, allow_weight=False)
    assert inp["messages"][-1]["role"] == "user", "the prompt must end with the user turn"
    for key in ("preferred_output", "non_preferred_output"):
        out = obj[key]
        assert isinstance(out, list) and len(out) == 1, f"{key} must hold exactly one message"
        _check_message(out[0], allow_weight=False)
        assert out[0]["role"] == "assistant", f"{key} must be an assistant message"
    assert obj["preferred_output"] != obj["non_preferred_output"], "identical outputs teach nothing"
    return obj


def check_answer(content: str) -> dict[str, Any]:
    answer = json.loads(content)
    assert list(answer) == ["category", "actions"]
    assert answer["category"] in TAXONOMY.category_ids
    assert answer["actions"] == sorted(set(answer["actions"]))
    return answer


def check_serialisation(data: bytes) -> list[bytes]:
    if not data:
        return []
    assert data.endswith(b"\n") and b"\r" not in data
    lines = data.split(b"\n")[:-1]
    for line in lines:
        canonical = json.dumps(json.loads(line), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        assert line.decode("utf-8") == canonical, "lines must be canonical sorted-key JSON"
    return lines


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(
            {
                "messages": [
                    {"role": "user", "content": "x", "weight": 1},
                    {"role": "assistant", "content": "y"},
                ]
            },
            id="weight-on-user",
        ),
        pytest.param(
            {
                "messages": [
                    {"role": "user", "content": "x"},
                    {"role": "assistant", "content": "y", "weight": 0.5},
                ]
            },
            id="fractional-weight",
        ),
        pytest.param(
            {
                "messages": [
                    {"role": "user", "content": "x"},
                    {"role": "assistant", "content": "y", "weight": True},
                ]
            },
            id="bool-weight",
        ),
        pytest.param(
            {
                "messages": [
                    {"role": "user", "content": "x"},
                    {"role": "assistant", "content": "y", "weight": 0},
                ]
            },
            id="nothing-trained",
        ),
        pytest.param(
            {"messages": [{"role": "user", "content": 3}, {"role": "assistant", "content": "y"}]},
            id="non-string-content",
        ),
        pytest.param({"messages": [{"role": "robot", "content": "x"}]}, id="unknown-role"),
        pytest.param({"examples": []}, id="no-messages"),
    ],
)
def test_chat_validator_rejects_bad_lines(line):
    with pytest.raises(AssertionError):
        validate_chat_line(json.dumps(line).encode())


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(
            {
                "input": {"messages": [{"role": "user", "content": "x"}]},
                "preferred_output": [
                    {"role": "assistant", "content": "a"},
                    {"role": "assistant", "content": "b"},
                ],
                "non_preferred_output": [{"role": "assistant", "content": "c"}],
            },
            id="two-preferred",
        ),
        pytest.param(
            {
                "input": {"messages": [{"role": "user", "content": "x"}]},
                "preferred_output": [{"role": "user", "content": "a"}],
                "non_preferred_output": [{"role": "assistant", "content": "c"}],
            },
            id="user-output",
        ),
        pytest.param(
            {
                "input": {"messages": [{"role": "user", "content": "x"}]},
                "preferred_output": [{"role": "assistant", "content": "a"}],
                "non_preferred_output": [{"role": "assistant", "content": "a"}],
            },
            id="identical",
        ),
        pytest.param(
            {
                "input": {"messages": [{"role": "user", "content": "x"}]},
                "preferred_output": [{"role": "assistant", "content": "a", "weight": 1}],
                "non_preferred_output": [{"role": "assistant", "content": "c"}],
            },
            id="weight-in-dpo",
        ),
        pytest.param(
            {
                "messages": [{"role": "user", "content": "x"}],
                "preferred_output": [{"role": "assistant", "content": "a"}],
                "non_preferred_output": [{"role": "assistant", "content": "c"}],
            },
            id="no-input",
        ),
    ],
)
def test_preference_validator_rejects_bad_lines(line):
    with pytest.raises(AssertionError):
        validate_preference_line(json.dumps(line).encode())


# --- formats --------------------------------------------------------------------------------------


def test_every_chat_line_is_valid(base_sets):
    prompt = system_prompt(TAXONOMY)
    for data, frame in (
        (base_sets.train_jsonl, base_sets.train),
        (base_sets.validation_jsonl, base_sets.validation),
    ):
        lines = check_serialisation(data)
        assert len(lines) == len(frame) > 0
        for line, row in zip(lines, frame.itertuples(index=False), strict=True):
            obj = validate_chat_line(line)
            roles = [m["role"] for m in obj["messages"]]
            assert roles == ["system", "user", "assistant"]
            assert obj["messages"][0]["content"] == prompt
            assert obj["messages"][1]["content"] == row.text
            answer = check_answer(obj["messages"][2]["content"])
            assert answer == {"category": row.category, "actions": list(row.actions)}
            assert set(answer["actions"]) <= set(TAXONOMY.category(answer["category"]).actions)


def test_every_preference_line_is_valid(base_sets):
    for data in (base_sets.preference_jsonl, base_sets.preference_validation_jsonl):
        for line in check_serialisation(data):
            obj = validate_preference_line(line)
            assert [m["role"] for m in obj["input"]["messages"]] == ["system", "user"]
            check_answer(obj["preferred_output"][0]["content"])
            check_answer(obj["non_preferred_output"][0]["content"])
    assert base_sets.preference_jsonl and base_sets.preference_validation_jsonl


def test_system_prompt_lists_the_taxonomy():
    prompt = system_prompt(TAXONOMY)
    for c in TAXONOMY.categories:
        assert f"- {c.id}: {c.name}; {', '.join(c.actions)}" in prompt
    for a in TAXONOMY.actions:
        assert a in prompt


def test_frames_have_the_documented_columns(base_sets):
    for frame in (base_sets.train, base_sets.validation):
        assert tuple(frame.columns) == FRAME_COLUMNS
        assert frame["example_id"].is_monotonic_increasing and frame["example_id"].is_unique
        assert all(isinstance(a, list) for a in frame["actions"])
        assert frame["weight"].dtype == np.float64 and (frame["weight"] > 0).all()
        assert all(t.startswith("From: ") and "\nSubject: " in t and "\n\n" in t for t in frame["text"])


def test_preference_pairs_are_the_changed_rows(base_sets):
    rows = scored(make_rows(200, seed=7)).set_index("feedback_id")
    by_text = {r.text: r for r in base_sets.train.itertuples(index=False)}
    pairs = [json.loads(line) for line in base_sets.preference_jsonl.splitlines()]
    for pair in pairs:
        example = by_text[pair["input"]["messages"][1]["content"]]
        source = rows.loc[example.feedback_id]
        rejected = json.loads(pair["non_preferred_output"][0]["content"])
        assert rejected == {
            "category": source["predicted_category"],
            "actions": sorted(source["predicted_actions"]),
        }
        assert json.loads(pair["preferred_output"][0]["content"]) == {
            "category": example.category,
            "actions": list(example.actions),
        }
    # Every corrected training row (category changed) has a pair; unchanged ones have none.
    changed = {
        r.feedback_id
        for r in base_sets.train.itertuples(index=False)
        if r.category != rows.loc[r.feedback_id, "predicted_category"]
        or list(r.actions) != sorted(rows.loc[r.feedback_id, "predicted_actions"])
    }
    assert base_sets.stats["excluded"]["capped"] == 0
    assert {by_text[p["input"]["messages"][1]["content"]].feedback_id for p in pairs} == changed
    assert len(pairs) == len(changed) > 0


def test_weights_sidecar_maps_lines_to_weights(base_sets):
    side = [json.loads(line) for line in check_serialisation(base_sets.weights_jsonl)]
    train_side = [s for s in side if s["split"] == "train"]
    assert [s["line"] for s in train_side] == list(range(1, len(base_sets.train) + 1))
    assert [s["example_id"] for s in train_side] == base_sets.train["example_id"].tolist()
    assert [s["weight"] for s in train_side] == base_sets.train["weight"].tolist()
    assert len(side) == len(base_sets.train) + len(base_sets.validation)
    assert b'"weight"' not in base_sets.train_jsonl, "OpenAI files carry no real-valued weights"


def test_stats(base_sets):
    stats = base_sets.stats
    json.dumps(stats)  # JSON-safe
    assert stats["rows_in"] == 200
    assert stats["rows"]["train"] == len(base_sets.train) and stats["rows"]["validation"] == len(
        base_sets.validation
    )
    accounted = stats["rows"]["train"] + stats["rows"]["validation"] + sum(stats["excluded"].values())
    assert accounted == stats["rows_in"]
    assert sum(stats["category_counts"]["train"].values()) == stats["rows"]["train"]
    expected_tokens = sum(
        estimate_tokens(json.loads(line)["messages"]) for line in base_sets.train_jsonl.splitlines()
    )
    assert stats["tokens"]["train"] == expected_tokens > 0
    assert stats["cost_usd"]["openai_supervised"] == round(expected_tokens * 3 * 3.0 / 1e6, 4)
    assert stats["cost_usd"]["local"] == 0.0
    assert stats["cost_usd"]["openai_dpo"] > 0
    assert stats["pricing"]["prices_as_of"]
    assert stats["pii_redacted"]["phone"] >= stats["rows"]["train"]


def test_token_estimate():
    assert estimate_tokens([{"role": "user", "content": "abcd" * 10}]) == 3 + 4 + 10
    assert estimate_tokens([{"role": "user", "content": "é"}]) == 3 + 4 + 1


# --- determinism and split stability -----------------------------------------------------------------


def _all_bytes(sets: TrainingSets) -> dict[str, bytes]:
    return sets.artifacts()


def test_same_input_same_bytes():
    rows = make_rows(120, seed=3)
    assert _all_bytes(build(rows)) == _all_bytes(build(rows))


def test_shuffled_input_same_bytes():
    df = scored(make_rows(120, seed=3))
    shuffled = df.sample(frac=1.0, random_state=11)
    shuffled.index = range(len(shuffled))
    a, b = build(df), build(shuffled)
    assert _all_bytes(a) == _all_bytes(b)
    pd.testing.assert_frame_equal(a.train, b.train)


def test_input_frame_is_not_modified():
    df = scored(make_rows(60, seed=4))
    before = df.copy(deep=True)
    build(df)
    pd.testing.assert_frame_equal(df, before)


def test_existing_emails_keep_their_split_when_new_rows_arrive():
    old = make_rows(150, seed=5)
    new = make_rows(80, seed=6, start=5000)
    first, second = build(old), build(old + new)

    def splits(sets: TrainingSets) -> dict[str, str]:
        out = dict.fromkeys(sets.train["email_id"], "train")
        out.update(dict.fromkeys(sets.validation["email_id"], "validation"))
        return out

    s1, s2 = splits(first), splits(second)
    common = set(s1) & set(s2)
    assert len(common) >= 100
    assert all(s1[e] == s2[e] for e in common)
    assert set(first.validation["email_id"]) <= set(second.validation["email_id"])


def test_holdout_hash_is_stable_and_close_to_the_fraction():
    assert holdout_bucket("em-00001") == holdout_bucket("em-00001")
    assert holdout_bucket("em-00001", seed=1) != holdout_bucket("em-00001")
    buckets = [holdout_bucket(f"email-{i}") for i in range(20000)]
    assert all(0.0 <= b < 1.0 for b in buckets)
    assert abs(sum(b < 0.2 for b in buckets) / len(buckets) - 0.2) < 0.01


def test_all_rows_of_an_email_share_a_split():
    rows = make_rows(80, seed=8)
    # Two users gave feedback on the same email with different wording: same email id.
    for k in range(0, 80, 4):
        rows[k + 1]["email_id"] = rows[k]["email_id"]
    sets = build(rows)
    assert not set(sets.train["email_id"]) & set(sets.validation["email_id"])


# --- golden guard -------------------------------------------------------------------------------------


def _lightly_edited(g: GoldenEmail) -> tuple[str, str, str]:
    words = g.body.split(" ")
    for k in range(5, len(words), 15):  # change one word in 15
        words[k] = "really"
    body = "Hi there,\n\n" + " ".join(words) + "\n\nSent from my phone"
    return g.sender, g.subject + " (fwd)", body


@pytest.mark.parametrize(
    "corrected", [pytest.param(False, id="accepted"), pytest.param(True, id="corrected")]
)
def test_golden_near_duplicates_are_in_no_output(corrected):
    rows = make_rows(120, seed=9)
    targets = sorted(GOLDEN, key=lambda g: -len(g.body))[:3]
    planted = []
    for j, g in enumerate(targets):
        sender, subject, body = _lightly_edited(g)
        other = next(c for c in TAXONOMY.category_ids if c != g.category)
        row = dict(
            rows[j],
            feedback_id=f"fb-golden-{j}",
            email_id=f"em-golden-{j}",
            sender=sender,
            subject=subject,
            body=body,
            predicted_category=other if corrected else g.category,
            corrected_category=g.category if corrected else None,
            predicted_actions=[],
        )
        planted.append(row)
    sets = build(rows + planted)
    planted_ids = {r["feedback_id"] for r in planted}
    assert not planted_ids & set(sets.train["feedback_id"]) and not planted_ids & set(
        sets.validation["feedback_id"]
    )
    assert sets.stats["excluded"]["golden_near_duplicate"] == len(planted)
    assert {m["feedback_id"] for m in sets.stats["golden_matches"]} == planted_ids
    index = NearDuplicateIndex(((g.id, g.text) for g in GOLDEN), threshold=0.5)
    user_texts = []
    for data in (sets.train_jsonl, sets.validation_jsonl):
        user_texts += [json.loads(line)["messages"][1]["content"] for line in data.splitlines()]
    for data in (sets.preference_jsonl, sets.preference_validation_jsonl):
        user_texts += [json.loads(line)["input"]["messages"][1]["content"] for line in data.splitlines()]
    assert user_texts
    assert not [t for t in user_texts if index.contains(t)]
    for g in targets:
        assert g.body[:80].encode() not in b"".join(sets.artifacts().values())


def test_golden_guard_counts_before_other_reasons():
    g = sorted(GOLDEN, key=lambda x: -len(x.body))[0]
    rows = make_rows(60, seed=10)
    twins = [
        dict(
            rows[0],
            feedback_id=f"fb-twin-{k}",
            email_id=f"em-twin-{k}",
            sender=g.sender,
            subject=g.subject,
            body=g.body,
        )
        for k in range(2)
    ]
    sets = build(rows + twins)
    assert sets.stats["excluded"]["golden_near_duplicate"] == 2
    assert sets.stats["excluded"]["duplicate_email"] == 0


# --- de-duplication, labels, thresholds -----------------------------------------------------------------


def test_identical_emails_keep_the_highest_reward_row():
    rows = make_rows(60, seed=12)
    a = dict(
        rows[0],
        feedback_id="fb-dup-a",
        email_id="em-dup-a",
        confidence=0.95,
        corrected_category=None,
        user_took_action=True,
    )
    b = dict(
        rows[0],
        feedback_id="fb-dup-b",
        email_id="em-dup-b",
        confidence=0.35,
        corrected_category=None,
        body=rows[0]["body"].upper().replace("\n\n", "\n \n"),
    )
    sets = build(rows[1:] + [b, a], DatasetConfig(holdout_fraction=0.0))
    kept = set(sets.train["feedback_id"])
    assert "fb-dup-a" in kept and "fb-dup-b" not in kept
    assert sets.stats["excluded"]["duplicate_email"] == 1


def test_unknown_label_category_is_excluded():
    rows = make_rows(40, seed=13)
    rows[0]["corrected_category"] = "not_a_category"
    sets = build(rows)
    assert sets.stats["excluded"]["unknown_category"] == 1
    assert "fb-00000" not in set(sets.train["feedback_id"]) | set(sets.validation["feedback_id"])


def test_label_actions_outside_the_label_category_are_dropped():
    rows = make_rows(40, seed=14, correction_rate=0.0)
    rows[0].update(
        predicted_category="bill_due",
        predicted_actions=["pay_invoice"],
        corrected_category="phishing",
        missed_actions=["report_phishing"],
    )
    sets = build(rows, DatasetConfig(holdout_fraction=0.0, max_category_share=1.0))
    row = sets.train.set_index("feedback_id").loc["fb-00000"]
    assert row["category"] == "phishing" and list(row["actions"]) == ["report_phishing"]
    assert sets.stats["label_actions_dropped"] >= 1


@pytest.mark.parametrize(
    "update, category, actions, source",
    [
        pytest.param(
            {
                "predicted_category": "bill_due",
                "predicted_actions": ["pay_invoice"],
                "corrected_category": "phishing",
                "missed_actions": ["report_phishing"],
            },
            "phishing",
            ["report_phishing"],
            "missed",
            id="corrected-with-missed-actions",
        ),
        pytest.param(
            {
                "predicted_category": "bill_due",
                "predicted_actions": ["pay_invoice"],
                "corrected_category": "phishing",
                "missed_actions": None,
            },
            "phishing",
            [TAXONOMY.category("phishing").actions[0]],
            "category_default",
            id="corrected-without-missed-actions",
        ),
        pytest.param(
            {
                "predicted_category": "bill_due",
                "predicted_actions": ["pay_invoice"],
                "corrected_category": "phishing",
                "missed_actions": ["pay_invoice"],
            },
            "phishing",
            [TAXONOMY.category("phishing").actions[0]],
            "category_default",
            id="missed-actions-not-allowed-for-the-new-category",
        ),
        pytest.param(
            {
                "predicted_category": "promotion",
                "predicted_actions": ["unsubscribe", "view_offer"],
                "corrected_category": "newsletter",
                "missed_actions": None,
            },
            "newsletter",
            ["unsubscribe"],
            "observed",
            id="corrected-predicted-action-still-allowed",
        ),
        pytest.param(
            {
                "predicted_category": "receipt",
                "predicted_actions": [],
                "corrected_category": None,
                "missed_actions": None,
            },
            "receipt",
            [],
            "observed",
            id="accepted-with-no-actions",
        ),
        pytest.param(
            {
                "predicted_category": "receipt",
                "predicted_actions": ["save_receipt"],
                "corrected_category": None,
                "missed_actions": ["request_refund"],
            },
            "receipt",
            ["request_refund", "save_receipt"],
            "observed",
            id="accepted-plus-missed",
        ),
    ],
)
def test_label_actions_source(update, category, actions, source):
    rows = make_rows(40, seed=14, correction_rate=0.0)
    rows[0].update(update, unnecessary_actions=[])
    sets = build(rows, DatasetConfig(holdout_fraction=0.0, max_category_share=1.0))
    row = sets.train.set_index("feedback_id").loc["fb-00000"]
    assert (row["category"], list(row["actions"]), row["label_actions_source"]) == (category, actions, source)
    assert set(row["actions"]) <= set(TAXONOMY.category(category).actions)
    counts = sets.stats["label_actions_source"]["train"]
    assert set(counts) == {"observed", "missed", "category_default"}
    assert sum(counts.values()) == len(sets.train)
    assert counts[source] == int((sets.train["label_actions_source"] == source).sum()) >= 1
    if source != "observed":  # the label reaches the fine-tuning file and the preference pair
        line = sets.train_jsonl.splitlines()[list(sets.train["feedback_id"]).index("fb-00000")]
        answer = json.loads(json.loads(line)["messages"][2]["content"])
        assert answer == {"category": category, "actions": actions}


def test_min_reward_is_applied_on_the_label_side():
    rows = make_rows(80, seed=15, correction_rate=0.5)
    default = build(rows, DatasetConfig(holdout_fraction=0.0, max_category_share=1.0))
    assert default.stats["excluded"]["low_reward"] == 0, "0.0 keeps every human-confirmed label"
    # Corrected rows have a negative prediction reward but are kept as training targets.
    assert (default.train["reward"] < 0).any()
    strict = build(rows, DatasetConfig(holdout_fraction=0.0, max_category_share=1.0, min_reward=0.6))
    df = scored(rows)
    c_label = np.where(
        df["label_category"] == df["predicted_category"], df["confidence"], 1 - df["confidence"]
    )
    expected_low = int((0.4 + 0.2 * c_label + 0.1 * df["reward_engagement"] < 0.6).sum())
    assert strict.stats["excluded"]["low_reward"] == expected_low > 0
    assert len(strict.train) == len(default.train) - expected_low


# --- stratified cap and user weighting --------------------------------------------------------------------


def _cap_order(df: pd.DataFrame) -> list[str]:
    """The documented cap priority, computed independently: category corrections, then
    action corrections, then accepted rows; higher label-side reward; example id."""
    out = []
    for r in df.itertuples(index=False):
        predicted_actions = sorted(set(r.predicted_actions or []))
        if r.label_category != r.predicted_category:
            tier = 0
        elif sorted(set(r.label_actions)) != predicted_actions:
            tier = 1
        else:
            tier = 2
        c_label = r.confidence if r.label_category == r.predicted_category else 1 - r.confidence
        label_reward = 0.4 + 0.2 * c_label + 0.1 * float(r.reward_engagement)
        example_id = "ex-" + hashlib.sha256(f"example:{r.feedback_id}".encode()).hexdigest()[:20]
        out.append((tier, -label_reward, example_id, r.feedback_id))
    return [f for *_, f in sorted(out)]


def test_category_cap_keeps_corrections_first_then_label_reward():
    dominant = make_rows(120, seed=16, categories=("receipt",), correction_rate=0.0)
    # Corrections *to* receipt: their prediction reward is the lowest, yet they go first.
    for row in dominant[:15]:
        row.update(
            predicted_category="promotion", predicted_actions=["view_offer"], corrected_category="receipt"
        )
    others = make_rows(80, seed=17, start=1000, categories=TAXONOMY.category_ids[:8], correction_rate=0.0)
    df = scored(dominant + others)
    sets = build(df, DatasetConfig(holdout_fraction=0.0))
    counts = Counter(sets.train["category"])
    total = len(sets.train)
    cap = math.floor(0.25 * total)
    assert max(counts.values()) <= cap and counts["receipt"] == cap
    assert sets.stats["excluded"]["capped"] == 200 - total > 0
    receipts = df[df["label_category"] == "receipt"]
    expected = set(_cap_order(receipts)[:cap])
    kept = set(sets.train.loc[sets.train["category"] == "receipt", "feedback_id"])
    assert kept == expected
    corrected = set(receipts.loc[receipts["predicted_category"] != "receipt", "feedback_id"])
    assert corrected <= kept, "every correction survives the cap"
    # Ranking on the prediction reward instead would have dropped the corrections first.
    by_prediction_reward = set(receipts.sort_values("reward", ascending=False)["feedback_id"][:cap])
    assert not corrected & by_prediction_reward
    # The validation split is not capped (it estimates production accuracy).
    held = build(df, DatasetConfig(holdout_fraction=0.5))
    assert Counter(held.validation["category"])["receipt"] / len(held.validation) > 0.4


def test_cap_ties_break_on_example_id_and_do_not_depend_on_row_order():
    rows = make_rows(90, seed=31, categories=("receipt",), correction_rate=0.0)
    rows += make_rows(30, seed=32, start=500, categories=("work", "travel", "personal"), correction_rate=0.0)
    for row in rows:  # identical label-side rewards everywhere: only the id decides
        row.update(confidence=0.8, user_took_action=True, missed_actions=None)
    df = scored(rows)
    config = DatasetConfig(holdout_fraction=0.0, max_category_share=0.4)
    a = build(df, config)
    b = build(df.iloc[::-1].reset_index(drop=True), config)
    kept = sorted(a.train.loc[a.train["category"] == "receipt", "example_id"])
    all_ids = sorted(
        "ex-" + hashlib.sha256(f"example:{f}".encode()).hexdigest()[:20]
        for f in df.loc[df["label_category"] == "receipt", "feedback_id"]
    )
    assert kept == all_ids[: len(kept)] and 0 < len(kept) < 90
    assert a.artifacts() == b.artifacts()


def test_cap_that_cannot_be_met_uses_one_over_n_categories():
    rows = make_rows(60, seed=18, categories=("receipt", "promotion", "work"), correction_rate=0.0)
    sets = build(rows, DatasetConfig(holdout_fraction=0.0))
    assert sets.stats["effective_max_category_share"] == pytest.approx(1 / 3, abs=1e-6)
    assert any("cannot be met" in w for w in sets.stats["warnings"])
    assert len(sets.train) == 60


def _weighted_rows():
    heavy = make_rows(40, seed=19, users=("heavy",))
    light = make_rows(40, seed=20, start=1000, users=tuple(f"light-{k}" for k in range(20)))
    return heavy + light


def test_user_weights_are_inverse_sqrt_and_mean_one():
    # Reward weighting off: the user weighting alone.
    config = DatasetConfig(holdout_fraction=0.0, max_category_share=1.0, max_reward_factor=1.0)
    sets = build(_weighted_rows(), config)
    train = sets.train
    assert train["weight"].mean() == pytest.approx(1.0)
    heavy = train.loc[train["user_id"] == "heavy", "weight"]
    light = train.loc[train["user_id"] != "heavy", "weight"]
    assert heavy.nunique() == 1 and light.nunique() == 1
    assert heavy.iloc[0] / light.iloc[0] == pytest.approx(math.sqrt(2 / 40))
    share = heavy.sum() / train["weight"].sum()
    assert share == pytest.approx(math.sqrt(40) / (math.sqrt(40) + 20 * math.sqrt(2)))
    assert sets.stats["max_user_weight_share"]["train"] == pytest.approx(share, abs=1e-6)


def test_weight_is_reward_factor_times_user_weight_normalised():
    sets = build(_weighted_rows(), DatasetConfig(holdout_fraction=0.0, max_category_share=1.0))
    for frame in (sets.train,):
        n_user = frame["user_id"].map(frame["user_id"].value_counts())
        factor = sample_weight_factor(frame["reward"].to_numpy(), RewardWeights(), 2.0)
        np.testing.assert_allclose(frame["reward_factor"], factor, rtol=0, atol=1e-12)
        raw = factor / np.sqrt(n_user.to_numpy())
        np.testing.assert_allclose(frame["weight"], raw * len(raw) / raw.sum(), rtol=1e-12)
        assert frame["weight"].mean() == pytest.approx(1.0)


def test_changing_the_reward_changes_the_weights():
    """Fails if rewards were computed and then ignored."""
    df = scored(make_rows(120, seed=33, correction_rate=0.0))
    config = DatasetConfig(holdout_fraction=0.0, max_category_share=1.0)
    base = build(df, config).train.set_index("feedback_id")
    target = base.index[0]
    lowered = df.copy()
    lowered.loc[lowered["feedback_id"] == target, "reward"] = -1.0  # only the reward changes
    changed = build(lowered, config).train.set_index("feedback_id")
    others = base.index.drop(target)
    ratio_before = base.loc[target, "weight"] / base.loc[others, "weight"].mean()
    ratio_after = changed.loc[target, "weight"] / changed.loc[others, "weight"].mean()
    assert changed.loc[target, "reward_factor"] == 2.0
    assert ratio_after > ratio_before * 1.5
    assert (base["text"] == changed["text"]).all(), "the same examples, only the weights moved"
    # With reward weighting off, the same change leaves every weight where it was.
    off = DatasetConfig(holdout_fraction=0.0, max_category_share=1.0, max_reward_factor=1.0)
    np.testing.assert_array_equal(build(df, off).train["weight"], build(lowered, off).train["weight"])


def test_corrections_weigh_more_than_confirmed_predictions():
    sets = build(make_rows(200, seed=34, correction_rate=0.4), DatasetConfig(user_weighting="none"))
    train = sets.train
    corrected = train["reward"] < 0  # classification -1: the user changed the category
    assert corrected.any() and (~corrected).any()
    assert train.loc[corrected, "weight"].min() > train.loc[~corrected, "weight"].median()
    assert 1.0 <= train["reward_factor"].min() and train["reward_factor"].max() <= 2.0
    assert train["weight"].max() / train["weight"].min() <= 2.0 + 1e-9
    rw = sets.stats["reward_weighting"]
    assert rw["mean_weight_corrected"]["train"] > rw["mean_weight_accepted"]["train"]
    # The fine-tuning JSONL stays unweighted (OpenAI accepts only 0/1 per assistant message).
    assert b'"weight"' not in sets.train_jsonl


@pytest.mark.parametrize("cap", [pytest.param(0.1, id="ten-percent"), pytest.param(0.05, id="five-percent")])
def test_user_weight_share_cap(cap):
    sets = build(
        _weighted_rows(),
        DatasetConfig(holdout_fraction=0.0, max_category_share=1.0, max_user_weight_share=cap),
    )
    totals = sets.train.groupby("user_id")["weight"].sum()
    shares = totals / totals.sum()
    assert shares.max() <= cap + 1e-9
    assert shares["heavy"] == pytest.approx(cap)
    assert sets.train["weight"].mean() == pytest.approx(1.0)


def test_no_user_weighting():
    config = DatasetConfig(holdout_fraction=0.0, max_category_share=1.0, user_weighting="none")
    flat = build(_weighted_rows(), dataclasses.replace(config, max_reward_factor=1.0))
    assert (flat.train["weight"] == 1.0).all()
    reward_only = build(_weighted_rows(), config).train
    factor = reward_only["reward_factor"].to_numpy()
    np.testing.assert_allclose(reward_only["weight"], factor * len(factor) / factor.sum(), rtol=1e-12)


def test_local_trainer_gets_the_reward_weights(tmp_path):
    """The datasets stage stages train.parquet with the weights; the local trainer fits
    with them (its artifact changes when only the weights change)."""
    import pyarrow as pa

    from feedbackloop import pipeline
    from feedbackloop.models.local import LocalTrainer
    from feedbackloop.staging import LocalStaging, read_parquet, write_parquet

    df = scored(make_rows(90, seed=35, correction_rate=0.35))
    staging = LocalStaging(tmp_path)
    run = pipeline.RunContext(
        "feedback_retraining",
        "manual__t",
        pd.Timestamp("2025-01-01", tz="UTC"),
        pd.Timestamp("2025-01-02", tz="UTC"),
    )
    write_parquet(staging, run.key(pipeline.REWARDS), pa.Table.from_pandas(df, preserve_index=False))
    pipeline.datasets(staging, run)
    staged = read_parquet(staging, run.key(pipeline.TRAIN_FRAME)).to_pandas()
    expected = build_training_sets(df, load_golden_set(), TAXONOMY).train
    np.testing.assert_array_equal(staged["weight"], expected["weight"])
    assert staged["weight"].nunique() > 10
    corrected = staged["reward"] < 0
    assert staged.loc[corrected, "weight"].mean() > staged.loc[~corrected, "weight"].mean()
    frame = staged[["text", "category", "actions", "weight"]].assign(actions=lambda f: f["actions"].map(list))
    trainer = LocalTrainer(TAXONOMY)
    weighted = trainer.train(frame, None, {"version_id": "w", "created_at": "2025-01-02T00:00:00+00:00"})
    flat = trainer.train(
        frame.assign(weight=1.0), None, {"version_id": "w", "created_at": "2025-01-02T00:00:00+00:00"}
    )
    assert weighted.artifact != flat.artifact


# --- PII ----------------------------------------------------------------------------------------------


def test_no_raw_pii_reaches_any_output():
    rows = make_rows(60, seed=21)
    secrets = {
        "john.smith@gmail.com",
        "jane.doe@example.com",
        "+1 (415) 555-0132",
        "4111 1111 1111 1111",
        "4111111111111111",
        "5555-5555-5555-4444",
        "DE89 3704 0044 0532 0130 00",
        "123-45-6789",
    }
    for k, row in enumerate(rows):
        row["sender"] = "John Smith <john.smith@gmail.com>" if k % 2 else row["sender"]
        row["subject"] = f"Call me on +1 (415) 555-0132 re {k}" if k % 3 == 0 else row["subject"]
        row["body"] += (
            "\nMy card 4111 1111 1111 1111, backup 5555-5555-5555-4444 (or 4111111111111111)."
            "\nIBAN DE89 3704 0044 0532 0130 00, SSN 123-45-6789, mail jane.doe@example.com."
        )
    sets = build(rows)
    blob = b"".join(sets.artifacts().values())
    texts = "\n".join(pd.concat([sets.train["text"], sets.validation["text"]]))
    for secret in secrets:
        assert secret.encode() not in blob, secret
        assert secret not in texts, secret
    for digits in ("41111111", "55555555", "0532013000", "4155550132"):
        assert digits.encode() not in blob.replace(b" ", b"").replace(b"-", b"")
    assert "[EMAIL]@gmail.com" in texts, "the sender domain is kept"
    for placeholder in ("[CARD]", "[IBAN]", "[SSN]", "[PHONE]", "[EMAIL]"):
        assert placeholder in texts


# --- streaming writer ---------------------------------------------------------------------------------


def test_write_training_sets_matches_the_in_memory_build(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = make_rows(150, seed=36, correction_rate=0.35)
    rows[3].update(
        sender=rows[40]["sender"], subject=rows[40]["subject"], body=rows[40]["body"]
    )  # a duplicate
    rows[5].update(sender=GOLDEN[0].sender, subject=GOLDEN[0].subject, body=GOLDEN[0].body)
    df = scored(rows)
    config = DatasetConfig(max_category_share=0.2)
    expected = build(df, config)
    source = tmp_path / "rewards.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), source, row_group_size=40)
    for k, src in enumerate((df, source)):
        out = tmp_path / f"out{k}"
        stats = write_training_sets(src, GOLDEN, TAXONOMY, out, config, batch_rows=17)
        assert stats == json.loads(expected.artifacts()["dataset_stats.json"])
        for name, data in expected.artifacts().items():
            assert (out / name).read_bytes() == data, name
        for split, frame in (("train", expected.train), ("validation", expected.validation)):
            staged = pq.read_table(out / f"{split}.parquet").to_pandas()
            assert list(staged.columns) == list(FRAME_COLUMNS)
            pd.testing.assert_frame_equal(
                staged.assign(actions=staged["actions"].map(list)), frame, check_dtype=False
            )
        assert not (out / "_spill").exists()
    assert expected.stats["excluded"]["duplicate_email"] == 1
    assert expected.stats["excluded"]["golden_near_duplicate"] == 1


def test_worker_processes_give_the_same_bytes(tmp_path):
    df = scored(make_rows(150, seed=38, correction_rate=0.3))
    expected = build(df).artifacts()
    stats = write_training_sets(df, GOLDEN, TAXONOMY, tmp_path, batch_rows=100, workers=2)
    assert stats == json.loads(expected["dataset_stats.json"])
    for name, data in expected.items():
        assert (tmp_path / name).read_bytes() == data, name


def test_write_training_sets_rejects_bad_input(tmp_path):
    df = scored(make_rows(20, seed=37))
    with pytest.raises(ValueError, match="batch_rows"):
        write_training_sets(df, GOLDEN, TAXONOMY, tmp_path, batch_rows=0)
    with pytest.raises(ValueError, match="compute_rewards"):
        write_training_sets(df.drop(columns=["reward"]), GOLDEN, TAXONOMY, tmp_path)
    with pytest.raises(ValueError, match="workers"):
        write_training_sets(df, GOLDEN, TAXONOMY, tmp_path, workers=0)


# --- errors and configuration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n, config",
    [
        pytest.param(5, DatasetConfig(), id="too-few-rows"),
        pytest.param(14, DatasetConfig(min_examples=20, warn_examples=50), id="custom-minimum"),
    ],
)
def test_too_few_examples_raise_a_clear_error(n, config):
    with pytest.raises(
        InsufficientDataError, match=r"only \d+ training example\(s\) remain, at least \d+ are needed"
    ) as info:
        build(make_rows(n, seed=22), config)
    message = str(info.value)
    assert (
        "feedback row(s) in" in message and "golden_near_duplicate=" in message and "min_examples" in message
    )


def test_golden_only_input_is_insufficient():
    rows = []
    for k, g in enumerate(GOLDEN[:12]):
        rows.append(dict(make_rows(1, seed=k, start=k)[0], sender=g.sender, subject=g.subject, body=g.body))
    with pytest.raises(InsufficientDataError, match=f"golden_near_duplicate={len(rows)}"):
        build(rows)


def test_few_examples_warn():
    sets = build(make_rows(30, seed=23), DatasetConfig(holdout_fraction=0.0, max_category_share=1.0))
    assert any("fewer than 50" in w for w in sets.stats["warnings"])


def test_missing_reward_columns_are_reported():
    df = pd.DataFrame(make_rows(20, seed=24))
    with pytest.raises(ValueError, match="compute_rewards"):
        build_training_sets(df, GOLDEN, TAXONOMY)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        pytest.param({"holdout_fraction": 1.0}, "holdout_fraction", id="holdout-one"),
        pytest.param({"holdout_fraction": -0.1}, "holdout_fraction", id="holdout-negative"),
        pytest.param({"max_category_share": 0.0}, "max_category_share", id="share-zero"),
        pytest.param({"min_examples": 0}, "min_examples", id="min-zero"),
        pytest.param({"min_examples": 60}, "warn_examples", id="warn-below-min"),
        pytest.param({"golden_similarity": 0.0}, "golden_similarity", id="similarity-zero"),
        pytest.param({"user_weighting": "linear"}, "user_weighting", id="bad-weighting"),
        pytest.param({"max_reward_factor": 0.5}, "max_reward_factor", id="reward-factor-below-one"),
        pytest.param({"max_reward_factor": float("nan")}, "max_reward_factor", id="reward-factor-nan"),
        pytest.param({"max_user_weight_share": 1.5}, "max_user_weight_share", id="bad-user-share"),
        pytest.param({"min_examples": "ten"}, "min_examples", id="non-numeric"),
        pytest.param({"min_examples": 10.5}, "min_examples", id="fractional-int"),
        pytest.param({"reward_weights": {"classification": 0.9}}, "sum to 1", id="bad-reward-weights"),
    ],
)
def test_invalid_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DatasetConfig(**kwargs)


def test_config_from_templated_strings():
    config = DatasetConfig(
        min_examples="12",
        holdout_fraction="0.3",
        reward_weights={"classification": 0.4, "actions": 0.3, "calibration": 0.2, "engagement": 0.1},
    )
    assert config.min_examples == 12 and config.holdout_fraction == 0.3
    assert config.reward_weights.classification == 0.4
