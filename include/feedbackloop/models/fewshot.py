"""Few-shot prompt optimisation: a new prompt version for any OpenAI-compatible chat model.

When fine-tuning is unavailable (OpenAI is winding down self-serve fine-tuning) the loop
still improves the production model by improving its prompt: exemplars with labels users
confirmed or corrected, covering every category and the known confusable cases.

The ranking uses whatever ``reward`` column the frame carries. In the dataset stage's
frame that is the reward of the model's *prediction* (a corrected row scores low), so high
reward prefers clean, engaged-with examples; a caller that wants corrections first can
pass a frame whose ``reward`` is e.g. the label-side reward or ``1 - reward``.

**Selection** (:func:`select_exemplars`, pure and deterministic) over the training frame
(columns ``text``, ``category``, ``actions``; optional ``reward``, ``weight``,
``problem_areas``):

1. Candidates: rows whose category is in the taxonomy, with actions restricted to the ones
   the category allows; optionally ``reward >= min_reward``. Identical emails (same
   :func:`~feedbackloop.textsim.normalize_text`) are kept once, the best one.
2. Ranking: higher ``reward`` first, then higher ``weight``, then a hash of the normalised
   text (ties never depend on row order).
3. Coverage first: one exemplar per category present, then one per known problem area
   (:data:`~feedbackloop.golden.PROBLEM_AREAS`) not yet covered, where the frame carries a
   ``problem_areas`` column. While covering, a candidate must fit a fair share of the
   budget (``token_budget / categories``) when any does, so one long email cannot crowd
   out the rest.
4. Fill: round-robin over the categories, up to ``max_per_category`` each, best-ranked
   first, while the budget allows.
5. Diversity: a candidate whose word-shingle Jaccard similarity to an already chosen
   exemplar reaches ``similarity_threshold`` is skipped.

**Token budget.** Tokens are approximated as ``ceil(characters / 4)`` (OpenAI's rule of
thumb for English; no tokenizer dependency, and the budget is a cost control, not an exact
limit) plus 4 tokens of chat overhead per message. The budget covers the exemplars only;
the system prompt's estimate is reported in the stats. Exemplar emails are cut to
``max_exemplar_chars`` first.

**Prompt version.** The prompt document (system prompt, exemplars, taxonomy version) is
serialised as canonical JSON (sorted keys, no whitespace, UTF-8); its version is
``"sha256:" + sha256(those bytes)``. The exact bytes are staged at
``prompts/fewshot/<hex>.json``, so ``sha256(file) == version`` can be checked by anyone,
and the same input always yields the same version and the same object (re-runs are
idempotent). The exemplar texts come from the dataset stage, already PII-redacted.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from feedbackloop.datasets import TOKENS_PER_MESSAGE, assistant_content
from feedbackloop.golden import PROBLEM_AREAS
from feedbackloop.models.base import ModelSpec, TrainedModel, build_spec
from feedbackloop.textsim import normalize_text, shingles

if TYPE_CHECKING:
    import pandas as pd

    from feedbackloop.golden import Taxonomy
    from feedbackloop.models.openai_chat import ChatSettings, OpenAIChatClassifier
    from feedbackloop.staging import Staging

CHARS_PER_TOKEN: Final = 4
PROMPT_FORMAT: Final = "feedbackloop.fewshot/v1"
PROMPT_PREFIX: Final = "prompts/fewshot"
DEFAULT_BASE_MODEL: Final = "gpt-4o-mini"
_CUT_MARK: Final = "\n[...]"


class FewShotError(ValueError):
    """Bad few-shot input (missing columns, no usable examples) or a corrupt prompt document."""


@dataclass(frozen=True)
class FewShotConfig:
    """How exemplars are chosen.

    Attributes:
        token_budget: Approximate tokens all exemplars may take (chars/4 + overhead).
        max_per_category: Exemplars per category at most.
        max_exemplar_chars: Exemplar emails are cut to this many characters.
        similarity_threshold: Word-shingle Jaccard similarity at which a candidate counts
            as a near-duplicate of a chosen exemplar.
        min_reward: Rows below this reward are not candidates (None: all rows).
    """

    token_budget: int = 6000
    max_per_category: int = 3
    max_exemplar_chars: int = 2000
    similarity_threshold: float = 0.6
    min_reward: float | None = None

    def __post_init__(self) -> None:
        if self.token_budget < 1 or self.max_per_category < 1 or self.max_exemplar_chars < 100:
            raise ValueError(
                "FewShotConfig: token_budget >= 1, max_per_category >= 1, max_exemplar_chars >= 100"
            )
        if not 0 < self.similarity_threshold <= 1:
            raise ValueError("FewShotConfig: similarity_threshold must be in (0, 1]")


def approx_tokens(text: str) -> int:
    """Token estimate: ``ceil(len(text) / 4)`` (see the module docstring)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


@dataclass(frozen=True)
class Exemplar:
    """One chosen example.

    Attributes:
        text: The email as shown to the model (possibly cut).
        category: Its label.
        actions: Its label actions, allowed for the category, sorted.
        reward: Its reward (0 when the frame has none).
        problem_areas: Problem-area tags (empty when the frame has none).
        reason: Why it was chosen: ``"category"``, ``"problem_area:<tag>"`` or ``"fill"``.
        key: sha256 of the normalised text (tie-breaks and ordering).
    """

    text: str
    category: str
    actions: tuple[str, ...]
    reward: float
    problem_areas: tuple[str, ...]
    reason: str
    key: str

    @property
    def answer(self) -> str:
        return assistant_content(self.category, self.actions)

    @property
    def tokens(self) -> int:
        return 2 * TOKENS_PER_MESSAGE + approx_tokens(self.text) + approx_tokens(self.answer)


@dataclass(frozen=True)
class ExemplarSelection:
    exemplars: tuple[Exemplar, ...]
    stats: dict[str, Any] = field(default_factory=dict)


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head = text[: limit - len(_CUT_MARK)]
    cut = head.rfind("\n")
    if cut > limit // 2:
        head = head[:cut]
    return head + _CUT_MARK


def _tags(value: Any) -> tuple[str, ...]:
    if value is None or isinstance(value, str) or (isinstance(value, float) and math.isnan(value)):
        return ()
    return tuple(sorted({str(v) for v in value if v is not None}))


def _number(value: Any, default: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) else default


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def select_exemplars(
    frame: pd.DataFrame, taxonomy: Taxonomy, config: FewShotConfig = FewShotConfig()
) -> ExemplarSelection:
    """Choose exemplars from a training frame (see the module docstring). Pure: the frame is
    not modified, and any row order gives the same selection.

    Raises:
        FewShotError: A required column is missing, or no row is usable.
    """
    from feedbackloop.rewards import action_list

    missing = [c for c in ("text", "category", "actions") if c not in frame.columns]
    if missing:
        raise FewShotError(f"training frame lacks column(s): {', '.join(missing)}")
    has_reward = "reward" in frame.columns
    has_weight = "weight" in frame.columns
    has_areas = "problem_areas" in frame.columns
    known = set(taxonomy.category_ids)
    best: dict[str, dict[str, Any]] = {}
    rows_in = len(frame)
    skipped = {"unknown_category": 0, "empty_text": 0, "low_reward": 0, "duplicate": 0}
    for row in frame.to_dict("records"):
        category = str(row["category"])
        text = "" if row["text"] is None else str(row["text"])
        if category not in known:
            skipped["unknown_category"] += 1
            continue
        if not text.strip():
            skipped["empty_text"] += 1
            continue
        reward = _number(row.get("reward"), 0.0) if has_reward else 0.0
        if config.min_reward is not None and reward < config.min_reward:
            skipped["low_reward"] += 1
            continue
        allowed = set(taxonomy.category(category).actions)
        actions = tuple(a for a in action_list(row["actions"]) if a in allowed)
        normalised = normalize_text(text)
        key = hashlib.sha256(normalised.encode()).hexdigest()
        weight = _number(row.get("weight"), 1.0) if has_weight else 1.0
        candidate: dict[str, Any] = {
            "text": text,
            "category": category,
            "actions": actions,
            "reward": reward,
            "weight": weight,
            "areas": tuple(a for a in _tags(row.get("problem_areas")) if a in PROBLEM_AREAS)
            if has_areas
            else (),
            "key": key,
        }
        rank = (-reward, -weight, category, actions, text)
        if key in best:
            skipped["duplicate"] += 1
            if rank >= best[key]["rank"]:
                continue
        candidate["rank"] = rank
        best[key] = candidate
    if not best:
        raise FewShotError(f"no usable training rows among {rows_in} (skipped: {skipped})")

    ranked = sorted(best.values(), key=lambda c: (c["rank"][0], c["rank"][1], c["key"]))
    for c in ranked:
        c["shown"] = _clip(c["text"], config.max_exemplar_chars)
        c["tokens"] = (
            2 * TOKENS_PER_MESSAGE
            + approx_tokens(c["shown"])
            + approx_tokens(assistant_content(c["category"], c["actions"]))
        )
        c["shingles"] = shingles(c["shown"])
    present = [cat for cat in taxonomy.category_ids if any(c["category"] == cat for c in ranked)]
    fair_share = config.token_budget / max(1, len(present))
    chosen: list[tuple[dict[str, Any], str]] = []
    chosen_keys: set[str] = set()
    used = 0
    near_dupes = 0

    def usable(c: dict[str, Any]) -> bool:
        nonlocal near_dupes
        if c["key"] in chosen_keys or used + c["tokens"] > config.token_budget:
            return False
        if any(_jaccard(c["shingles"], s["shingles"]) >= config.similarity_threshold for s, _ in chosen):
            near_dupes += 1
            return False
        return True

    def take(c: dict[str, Any], reason: str) -> None:
        nonlocal used
        chosen.append((c, reason))
        chosen_keys.add(c["key"])
        used += c["tokens"]

    def pick(pool: list[dict[str, Any]], reason: str) -> bool:
        # Coverage picks prefer candidates within the fair share; the best-ranked otherwise.
        for within_share in (True, False):
            for c in pool:
                if within_share and c["tokens"] > fair_share:
                    continue
                if usable(c):
                    take(c, reason)
                    return True
        return False

    for cat in present:
        pick([c for c in ranked if c["category"] == cat], "category")
    areas_present = [a for a in PROBLEM_AREAS if any(a in c["areas"] for c in ranked)]
    for area in areas_present:
        if any(area in c["areas"] for c, _ in chosen):
            continue
        per_cat = {c["category"]: 0 for c, _ in chosen}
        for c, _ in chosen:
            per_cat[c["category"]] += 1
        pool = [
            c
            for c in ranked
            if area in c["areas"] and per_cat.get(c["category"], 0) < config.max_per_category
        ]
        pick(pool, f"problem_area:{area}")
    progress = True
    while progress:
        progress = False
        for cat in present:
            count = sum(1 for c, _ in chosen if c["category"] == cat)
            if count >= config.max_per_category:
                continue
            for c in ranked:
                if c["category"] == cat and usable(c):
                    take(c, "fill")
                    progress = True
                    break

    # Deterministic shuffle (by content hash): categories interleave, none always comes last.
    ordered = sorted(chosen, key=lambda item: item[0]["key"])
    exemplars = tuple(
        Exemplar(
            text=c["shown"],
            category=c["category"],
            actions=c["actions"],
            reward=c["reward"],
            problem_areas=c["areas"],
            reason=reason,
            key=c["key"],
        )
        for c, reason in ordered
    )
    covered = sorted({e.category for e in exemplars})
    areas_covered = sorted({a for e in exemplars for a in e.problem_areas})
    reasons: dict[str, int] = {}
    for e in exemplars:
        kind = e.reason.split(":", 1)[0]
        reasons[kind] = reasons.get(kind, 0) + 1
    stats = {
        "rows": rows_in,
        "candidates": len(ranked),
        "skipped": skipped,
        "near_duplicates_skipped": near_dupes,
        "exemplars": len(exemplars),
        "by_reason": dict(sorted(reasons.items())),
        "token_budget": config.token_budget,
        "tokens_used": sum(e.tokens for e in exemplars),
        "token_estimate": f"ceil(chars/{CHARS_PER_TOKEN}) + {TOKENS_PER_MESSAGE} per message",
        "categories_present": present,
        "categories_covered": covered,
        "categories_uncovered": [c for c in present if c not in covered],
        "problem_areas_available": has_areas,
        "problem_areas_present": areas_present,
        "problem_areas_covered": areas_covered,
        "problem_areas_uncovered": [a for a in areas_present if a not in areas_covered],
        "mean_reward": round(sum(e.reward for e in exemplars) / len(exemplars), 6) if exemplars else None,
    }
    return ExemplarSelection(exemplars=exemplars, stats=stats)


# ----------------------------------------------------------------------- the document


def fewshot_system_prompt(taxonomy: Taxonomy) -> str:
    """System prompt for a base (not fine-tuned) model: the task, the answer format and every
    category with its description and allowed actions (a base model has not learnt them)."""
    lines = [
        "You classify emails for an inbox assistant.",
        'Reply with only a JSON object: {"category": "<category id>", "actions": ["<action id>", ...]}.',
        "Pick exactly one category; list the actions the user should take (possibly none), each one "
        "allowed for that category. The examples show labels confirmed or corrected by users.",
        f"Taxonomy version {taxonomy.version}.",
        "",
        "Categories (id: description; allowed actions):",
    ]
    for c in taxonomy.categories:
        lines.append(f"- {c.id}: {c.description.strip()}; allowed: {', '.join(c.actions)}")
    return "\n".join(lines)


@dataclass(frozen=True)
class PromptDocument:
    """A few-shot prompt: system prompt plus (email, answer) exemplars, content-addressed."""

    system_prompt: str
    exemplars: tuple[tuple[str, str], ...]
    taxonomy_version: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PROMPT_FORMAT,
            "taxonomy_version": self.taxonomy_version,
            "system_prompt": self.system_prompt,
            "exemplars": [{"user": u, "assistant": a} for u, a in self.exemplars],
        }

    def canonical_bytes(self) -> bytes:
        """Canonical JSON: sorted keys, no insignificant whitespace, UTF-8."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
            "utf-8"
        )

    @property
    def version(self) -> str:
        return "sha256:" + hashlib.sha256(self.canonical_bytes()).hexdigest()

    def exemplar_messages(self) -> list[dict[str, str]]:
        """The exemplars as alternating user / assistant chat messages."""
        out: list[dict[str, str]] = []
        for user, assistant in self.exemplars:
            out += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
        return out

    @classmethod
    def from_bytes(cls, data: bytes, expected_version: str | None = None) -> PromptDocument:
        """Parse a staged document, checking its format and (optionally) its hash.

        Raises:
            FewShotError: Not a prompt document, or the content does not hash to ``expected_version``.
        """
        if expected_version is not None:
            actual = "sha256:" + hashlib.sha256(data).hexdigest()
            if actual != expected_version:
                raise FewShotError(f"prompt document hashes to {actual}, expected {expected_version}")
        try:
            doc = json.loads(data)
            if doc.get("format") != PROMPT_FORMAT:
                raise FewShotError(f"not a {PROMPT_FORMAT} document: format {doc.get('format')!r}")
            return cls(
                system_prompt=str(doc["system_prompt"]),
                exemplars=tuple((str(e["user"]), str(e["assistant"])) for e in doc["exemplars"]),
                taxonomy_version=int(doc["taxonomy_version"]),
            )
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise FewShotError(f"malformed prompt document: {exc}") from exc


def build_prompt(
    selection: ExemplarSelection, taxonomy: Taxonomy, system_prompt: str | None = None
) -> PromptDocument:
    """The prompt document for a selection (default system prompt: :func:`fewshot_system_prompt`)."""
    return PromptDocument(
        system_prompt=system_prompt if system_prompt is not None else fewshot_system_prompt(taxonomy),
        exemplars=tuple((e.text, e.answer) for e in selection.exemplars),
        taxonomy_version=taxonomy.version,
    )


def prompt_key(version: str) -> str:
    """Staging key of a prompt version: ``prompts/fewshot/<hex>.json``."""
    if not version.startswith("sha256:") or len(version) != 71:
        raise FewShotError(f"not a prompt version: {version!r}")
    return f"{PROMPT_PREFIX}/{version[7:]}.json"


def store_prompt(staging: Staging, document: PromptDocument) -> str:
    """Stage the document's canonical bytes under its version; returns the URI. Idempotent."""
    return staging.put_bytes(prompt_key(document.version), document.canonical_bytes())


def load_prompt(staging: Staging, version: str) -> PromptDocument:
    """Load a staged prompt version, verifying that its bytes hash to ``version``."""
    return PromptDocument.from_bytes(staging.get_bytes(prompt_key(version)), expected_version=version)


# ----------------------------------------------------------------------- the backend


def optimise_prompt(
    staging: Staging,
    train: pd.DataFrame,
    taxonomy: Taxonomy,
    spec_base: Mapping[str, Any],
    *,
    base_model: str = DEFAULT_BASE_MODEL,
    config: FewShotConfig = FewShotConfig(),
    system_prompt: str | None = None,
) -> ModelSpec:
    """Select exemplars, stage the prompt document and return the model spec.

    Returns:
        ``backend="fewshot"``, ``base_model``, ``prompt_version`` (content hash) and
        ``artifact_uri`` = the staged prompt document; the selection stats are in
        ``provenance["training"]``. ``spec_base["base_model"]``, when set, wins.
    """
    selection = select_exemplars(train, taxonomy, config)
    document = build_prompt(selection, taxonomy, system_prompt)
    uri = store_prompt(staging, document)
    stats = dict(selection.stats)
    stats["prompt_uri"] = uri
    stats["system_prompt_tokens"] = approx_tokens(document.system_prompt) + TOKENS_PER_MESSAGE
    base = {**dict(spec_base), "artifact_uri": uri}
    return build_spec(
        base, backend="fewshot", base_model=base_model, training_stats=stats, prompt_version=document.version
    )


class FewShotTrainer:
    """:class:`~feedbackloop.models.base.Trainer` for the few-shot backend (no remote call).

    The validation frame is not used to choose exemplars (it estimates production accuracy);
    its size is recorded.
    """

    def __init__(
        self,
        staging: Staging,
        taxonomy: Taxonomy,
        *,
        base_model: str = DEFAULT_BASE_MODEL,
        config: FewShotConfig = FewShotConfig(),
        system_prompt: str | None = None,
    ):
        self.staging = staging
        self.taxonomy = taxonomy
        self.base_model = base_model
        self.config = config
        self.system_prompt = system_prompt

    def train(
        self, train: pd.DataFrame, validation: pd.DataFrame | None, spec_base: dict[str, Any]
    ) -> TrainedModel:
        base = dict(spec_base)
        provenance = dict(base.get("provenance") or {})
        provenance["validation_rows"] = 0 if validation is None else len(validation)
        base["provenance"] = provenance
        spec = optimise_prompt(
            self.staging,
            train,
            self.taxonomy,
            base,
            base_model=self.base_model,
            config=self.config,
            system_prompt=self.system_prompt,
        )
        return TrainedModel(spec=spec, artifact=None)


def fewshot_classifier(
    client: Any,
    spec: ModelSpec | Mapping[str, Any],
    taxonomy: Taxonomy,
    staging: Staging,
    *,
    settings: ChatSettings | None = None,
) -> OpenAIChatClassifier:
    """The chat classifier that serves a few-shot spec: ``base_model`` + the staged prompt.

    Raises:
        FewShotError: The spec is not a few-shot spec, its prompt is missing or corrupt, or
            it was built for another taxonomy version.
    """
    from feedbackloop.models.openai_chat import OpenAIChatClassifier

    model_spec = spec if isinstance(spec, ModelSpec) else ModelSpec.from_dict(spec)
    if model_spec.backend != "fewshot" or not model_spec.prompt_version:
        raise FewShotError(
            f"model spec {model_spec.version_id!r} is not a few-shot spec with a prompt version"
        )
    document = load_prompt(staging, model_spec.prompt_version)
    if document.taxonomy_version != taxonomy.version:
        raise FewShotError(
            f"prompt {model_spec.prompt_version} was built for taxonomy v{document.taxonomy_version}, "
            f"not v{taxonomy.version}"
        )
    return OpenAIChatClassifier(
        client,
        model_spec.base_model,
        taxonomy,
        system_prompt=document.system_prompt,
        exemplar_messages=document.exemplar_messages(),
        prompt_version=model_spec.prompt_version,
        settings=settings,
    )


def selection_summary(exemplars: Sequence[Exemplar]) -> list[dict[str, Any]]:
    """JSON-safe per-exemplar summary (for reports): category, reason, tokens, key prefix."""
    return [
        {
            "category": e.category,
            "reason": e.reason,
            "tokens": e.tokens,
            "reward": e.reward,
            "key": e.key[:12],
        }
        for e in exemplars
    ]
