"""The seed training corpus: labelled synthetic emails the first model is trained on.

Only a small share (:data:`SEED_PROBLEM_SHARE`) are problem-area variants, so a model trained
on the seed corpus alone is weak exactly where production feedback (which carries many more
of them) teaches it most. The corpus is disjoint from the golden set: any rendered email that
is a near-duplicate of a golden email (:class:`~feedbackloop.textsim.NearDuplicateIndex`,
threshold 0.5) or of an earlier corpus email is re-rendered with the next attempt seed.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from feedbackloop.golden import Taxonomy, default_taxonomy, load_golden_set
from feedbackloop.paths import golden_dir
from feedbackloop.synth.emails import problem_areas_for, render
from feedbackloop.textsim import DEFAULT_THRESHOLD, NearDuplicateIndex, normalize_text

SEED_PROBLEM_SHARE = 0.05
_MAX_ATTEMPTS = 200


class SeedCorpusError(RuntimeError):
    """The seed corpus could not be made disjoint from the golden set."""


def golden_texts(path: Path | str | None = None) -> list[tuple[str, str]]:
    """``(id, text)`` of every golden email, or ``[]`` when the golden set does not exist yet."""
    path = Path(path) if path is not None else golden_dir() / "golden_set.jsonl"
    if not path.exists():
        return []
    return [(e.id, e.text) for e in load_golden_set(path)]


def seed_corpus(
    n_per_category: int = 150,
    seed: int = 7,
    *,
    golden: Sequence[tuple[str, str]] | None = None,
    taxonomy: Taxonomy | None = None,
) -> list[dict[str, Any]]:
    """Build the seed training corpus.

    Args:
        n_per_category: Emails per category.
        seed: Fixes every email; the same arguments (and golden set) give the same corpus.
        golden: ``(id, text)`` pairs the corpus must stay disjoint from; defaults to the
            project's golden set when ``golden_set/golden_set.jsonl`` exists.
        taxonomy: Defaults to the project's taxonomy.

    Returns:
        Records with keys id (``seed-00001``...), sender, subject, body, category,
        priority (the category default), actions and problem_areas, in a shuffled order.

    Raises:
        ValueError: ``n_per_category`` is not positive.
        SeedCorpusError: An email could not be rendered away from the golden set.
    """
    if n_per_category < 1:
        raise ValueError(f"n_per_category must be >= 1, got {n_per_category}")
    taxonomy = taxonomy or default_taxonomy()
    index = NearDuplicateIndex(golden if golden is not None else golden_texts(), threshold=DEFAULT_THRESHOLD)
    seen: set[str] = set()
    rows: list[dict[str, Any]] = []
    for category in taxonomy.category_ids:
        areas = problem_areas_for(category)
        n_problem = round(n_per_category * SEED_PROBLEM_SHARE) if areas else 0
        for i in range(n_per_category):
            area = areas[i % len(areas)] if i < n_problem else None
            for attempt in range(_MAX_ATTEMPTS):
                email = render(
                    category, random.Random(f"seed-corpus:{seed}:{category}:{i}:{attempt}"), area, taxonomy
                )
                key = normalize_text(email.text)
                if key not in seen and not index.contains(email.text):
                    break
            else:
                raise SeedCorpusError(
                    f"{category} #{i}: every attempt was a near-duplicate of the golden set"
                )
            seen.add(key)
            rows.append(
                {
                    "sender": email.sender,
                    "subject": email.subject,
                    "body": email.body,
                    "category": category,
                    "priority": taxonomy.category(category).priority,
                    "actions": list(email.actions),
                    "problem_areas": [area] if area else [],
                }
            )
    random.Random(f"seed-corpus-order:{seed}").shuffle(rows)
    return [{"id": f"seed-{n:05d}", **row} for n, row in enumerate(rows, start=1)]


def dumps_jsonl(records: Iterable[dict[str, Any]]) -> str:
    """Deterministic JSONL: sorted keys, UTF-8 kept as is, ``\\n`` line endings."""
    return "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in records)


def write_seed_corpus(path: Path | str, records: Iterable[dict[str, Any]]) -> int:
    """Write records as deterministic JSONL; returns the number written."""
    text = dumps_jsonl(records)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
    return text.count("\n")
