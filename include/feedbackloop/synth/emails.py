"""Render realistic consumer-inbox emails for every taxonomy category.

:func:`render_email` is the public entry point. A plain email is the unambiguous form of its
category; a *problem-area* email (``problem_area`` set, see
:data:`feedbackloop.golden.PROBLEM_AREAS`) keeps the true label but borrows the surface of a
confusable category, e.g. phishing that looks like a security alert. :func:`confusable_category`
names that category, which is what a surface-reading classifier tends to answer.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from feedbackloop.golden import PROBLEM_AREAS, Taxonomy, default_taxonomy
from feedbackloop.synth._fields import Draft, Fields
from feedbackloop.synth._mail import RENDERERS
from feedbackloop.synth._problems import VARIANTS

_BLANK_RUNS = re.compile(r"\n{3,}")
# How many actions an email gets: mostly one or two, sometimes three.
_ACTION_COUNT_WEIGHTS = (0.45, 0.4, 0.15)


@dataclass(frozen=True)
class RenderedEmail:
    """An email with its labels; ``confusable`` is set for problem-area emails only."""

    sender: str
    subject: str
    body: str
    category: str
    actions: tuple[str, ...]
    problem_area: str | None
    confusable: str | None

    def as_dict(self) -> dict[str, object]:
        return {
            "sender": self.sender,
            "subject": self.subject,
            "body": self.body,
            "actions": list(self.actions),
        }

    @property
    def text(self) -> str:
        """The text a classifier sees (same layout as :attr:`GoldenEmail.text`)."""
        return f"From: {self.sender}\nSubject: {self.subject}\n\n{self.body}"


def problem_areas_for(category: str) -> tuple[str, ...]:
    """Problem areas that have a variant whose true label is ``category`` (sorted)."""
    return tuple(sorted(pa for cat, pa in VARIANTS if cat == category))


def problem_variant_keys() -> tuple[tuple[str, str], ...]:
    """Every ``(true category, problem area)`` pair the renderer supports, sorted."""
    return tuple(sorted(VARIANTS))


def confusable_category(category: str, problem_area: str) -> tuple[str, ...]:
    """The categories a surface-reading classifier confuses this problem-area email with."""
    try:
        return tuple(sorted({conf for _, conf in VARIANTS[(category, problem_area)]}))
    except KeyError:
        raise ValueError(f"no {problem_area!r} variant for category {category!r}") from None


def _choose_actions(rng: random.Random, plausible: list[str], allowed: tuple[str, ...]) -> tuple[str, ...]:
    pool = [a for a in dict.fromkeys(plausible) if a in allowed] or [allowed[0]]
    k = min(len(pool), rng.choices((1, 2, 3), _ACTION_COUNT_WEIGHTS)[0])
    if k == 1:
        return (pool[0],)
    rest = sorted(rng.sample(range(1, len(pool)), k - 1))
    return (pool[0], *(pool[i] for i in rest))


def _tidy(text: str) -> str:
    lines = [ln.rstrip() for ln in text.strip().split("\n")]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines))


def render(
    category: str,
    rng: random.Random,
    problem_area: str | None = None,
    taxonomy: Taxonomy | None = None,
) -> RenderedEmail:
    """Render one email of ``category`` (optionally a problem-area variant) with its labels.

    Args:
        category: A category id of the taxonomy.
        rng: Source of randomness; the same RNG state gives the same email.
        problem_area: A key of :data:`PROBLEM_AREAS` that has a variant for ``category``.
        taxonomy: Defaults to the project's taxonomy.

    Raises:
        ValueError: Unknown category, unknown problem area, or no variant for the pair.
    """
    taxonomy = taxonomy or default_taxonomy()
    if category not in taxonomy.category_ids:
        raise ValueError(f"unknown category {category!r} (known: {', '.join(taxonomy.category_ids)})")
    fields = Fields(rng)
    confusable: str | None = None
    if problem_area is None:
        draft: Draft = RENDERERS[category](fields)
    else:
        if problem_area not in PROBLEM_AREAS:
            raise ValueError(
                f"unknown problem area {problem_area!r} (known: {', '.join(sorted(PROBLEM_AREAS))})"
            )
        options = VARIANTS.get((category, problem_area))
        if not options:
            supported = ", ".join(problem_areas_for(category)) or "none"
            raise ValueError(
                f"no {problem_area!r} variant for category {category!r} (supported: {supported})"
            )
        variant, confusable = options[rng.randrange(len(options))]
        draft = variant(fields)
    actions = _choose_actions(rng, draft.actions, taxonomy.category(category).actions)
    return RenderedEmail(
        sender=draft.sender.strip(),
        subject=" ".join(draft.subject.split()),
        body=_tidy(draft.body),
        category=category,
        actions=actions,
        problem_area=problem_area,
        confusable=confusable,
    )


def render_email(category: str, rng: random.Random, problem_area: str | None = None) -> dict[str, object]:
    """Render one realistic email of ``category``.

    Args:
        category: A category id of the taxonomy (e.g. ``"bill_due"``).
        rng: Source of randomness; the same RNG state gives the same email.
        problem_area: Optional problem-area tag; the email keeps the label ``category`` but
            looks like the confusable category (see :func:`confusable_category`).

    Returns:
        ``{"sender", "subject", "body", "actions"}``; actions are 1-3 of the category's
        allowed actions.

    Raises:
        ValueError: Unknown category or problem area, or no variant for the pair.
    """
    return render(category, rng, problem_area).as_dict()
