"""Schema-as-code loader for the taxonomy and the golden test set.

Both files are validated on load; any problem raises :class:`GoldenSetError` whose message
names the file, the line (1-based, for JSONL) and the field, e.g.::

    golden_set.jsonl:17: field 'category': unknown category 'bills' (known: ...)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from feedbackloop.paths import golden_dir

GOLDEN_FIELDS = (
    "id",
    "sender",
    "subject",
    "body",
    "category",
    "priority",
    "actions",
    "problem_areas",
    "note",
)

# Known problem areas; documented in golden_set/README.md. Tags outside this list are
# rejected so a typo cannot silently create a new slice.
PROBLEM_AREAS: dict[str, str] = {
    "receipt_vs_bill": "A payment confirmation (receipt) vs an amount still due (bill).",
    "promo_as_account_notice": "Marketing dressed up as an account or service notice.",
    "phishing_as_security_alert": "Phishing that imitates a genuine security alert.",
    "newsletter_vs_promotion": "Editorial newsletter vs a sales promotion.",
    "shipping_vs_receipt": "Order confirmation vs shipment status.",
    "invite_in_work_thread": "A calendar invitation inside a work or personal thread.",
    "fraud_vs_phishing": "A genuine fraud alert vs phishing that imitates one.",
    "statement_vs_bill": "A statement that is available vs an amount that must be paid.",
    "webinar_vs_invite": "Event marketing vs a personal calendar invitation.",
    "loyalty_vs_promotion": "Loyalty points / tier mail vs a sales promotion.",
    "social_vs_personal": "A social-network notification vs a personal message.",
    "travel_vs_receipt": "A travel booking vs a plain payment receipt.",
    "appointment_vs_invite": "A booked appointment vs an invitation to a meeting.",
    "account_update_vs_security": "A routine account notice vs a security alert.",
    "survey_vs_receipt": "A rate-your-purchase survey vs the purchase receipt.",
    "quoted_reply_noise": "Long quoted replies or footers that bury the signal.",
    "non_english": "Email not written in English.",
}


class GoldenSetError(ValueError):
    """A taxonomy or golden-set file does not match its schema."""

    def __init__(self, path: Path | str, line: int | None, field_name: str | None, problem: str):
        self.path = Path(path)
        self.line = line
        self.field = field_name
        self.problem = problem
        where = self.path.name if line is None else f"{self.path.name}:{line}"
        what = f"field '{field_name}': " if field_name else ""
        super().__init__(f"{where}: {what}{problem}")


@dataclass(frozen=True)
class Category:
    id: str
    name: str
    type: str  # "mail" | "ads"
    priority: str
    description: str
    actions: tuple[str, ...]


@dataclass(frozen=True)
class Taxonomy:
    version: int
    priorities: tuple[str, ...]
    critical_priorities: frozenset[str]
    actions: tuple[str, ...]
    categories: tuple[Category, ...]
    path: Path = field(compare=False, default=Path("taxonomy.yaml"))

    @property
    def category_ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.categories)

    def category(self, category_id: str) -> Category:
        for c in self.categories:
            if c.id == category_id:
                return c
        raise KeyError(category_id)

    @property
    def critical_categories(self) -> frozenset[str]:
        """Categories whose default priority is critical."""
        return frozenset(c.id for c in self.categories if c.priority in self.critical_priorities)


@dataclass(frozen=True)
class GoldenEmail:
    id: str
    sender: str
    subject: str
    body: str
    category: str
    priority: str
    actions: tuple[str, ...]
    problem_areas: tuple[str, ...]
    note: str

    def is_critical(self, taxonomy: Taxonomy) -> bool:
        return self.priority in taxonomy.critical_priorities

    @property
    def text(self) -> str:
        """The text a classifier sees: sender, subject and body."""
        return f"From: {self.sender}\nSubject: {self.subject}\n\n{self.body}"


def _require(mapping: dict[str, Any], key: str, kind: type, path: Path, line: int | None, ctx: str = "") -> Any:
    name = f"{ctx}{key}"
    if key not in mapping:
        raise GoldenSetError(path, line, name, "is missing")
    value = mapping[key]
    if kind is str and not (isinstance(value, str) and value.strip()):
        raise GoldenSetError(path, line, name, f"must be a non-empty string, got {value!r}")
    if kind is list and not isinstance(value, list):
        raise GoldenSetError(path, line, name, f"must be a list, got {type(value).__name__}")
    if kind is int and not (isinstance(value, int) and not isinstance(value, bool)):
        raise GoldenSetError(path, line, name, f"must be an integer, got {value!r}")
    return value


def _str_list(values: list[Any], path: Path, line: int | None, name: str) -> tuple[str, ...]:
    for v in values:
        if not (isinstance(v, str) and v):
            raise GoldenSetError(path, line, name, f"entries must be non-empty strings, got {v!r}")
    if len(set(values)) != len(values):
        raise GoldenSetError(path, line, name, f"has duplicate entries: {values}")
    return tuple(values)


def parse_taxonomy(data: Any, path: Path | str = "taxonomy.yaml") -> Taxonomy:
    """Validate a parsed taxonomy document and build a :class:`Taxonomy`."""
    path = Path(path)
    if not isinstance(data, dict):
        raise GoldenSetError(path, None, None, "top level must be a mapping")
    version = _require(data, "version", int, path, None)
    priorities = _str_list(_require(data, "priorities", list, path, None), path, None, "priorities")
    critical = _str_list(
        _require(data, "critical_priorities", list, path, None), path, None, "critical_priorities"
    )
    for p in critical:
        if p not in priorities:
            raise GoldenSetError(path, None, "critical_priorities", f"unknown priority {p!r}")
    raw_actions = _require(data, "actions", list, path, None)
    action_ids: list[str] = []
    for i, a in enumerate(raw_actions):
        if not isinstance(a, dict):
            raise GoldenSetError(path, None, f"actions[{i}]", "must be a mapping with id and description")
        action_ids.append(_require(a, "id", str, path, None, f"actions[{i}]."))
        _require(a, "description", str, path, None, f"actions[{i}].")
        extra = sorted(set(a) - {"id", "description"})
        if extra:
            raise GoldenSetError(
                path, None, f"actions[{i}].{extra[0]}", "is not a known key (a comma in an unquoted description?)"
            )
    actions = _str_list(action_ids, path, None, "actions")
    categories: list[Category] = []
    seen: set[str] = set()
    for i, c in enumerate(_require(data, "categories", list, path, None)):
        ctx = f"categories[{i}]."
        if not isinstance(c, dict):
            raise GoldenSetError(path, None, f"categories[{i}]", "must be a mapping")
        cid = _require(c, "id", str, path, None, ctx)
        extra = sorted(set(c) - {"id", "name", "type", "priority", "description", "actions"})
        if extra:
            raise GoldenSetError(path, None, f"{ctx}{extra[0]}", "is not a known key")
        if cid in seen:
            raise GoldenSetError(path, None, f"{ctx}id", f"duplicate category id {cid!r}")
        seen.add(cid)
        ctype = _require(c, "type", str, path, None, ctx)
        if ctype not in ("mail", "ads"):
            raise GoldenSetError(path, None, f"{ctx}type", f"must be 'mail' or 'ads', got {ctype!r}")
        prio = _require(c, "priority", str, path, None, ctx)
        if prio not in priorities:
            raise GoldenSetError(path, None, f"{ctx}priority", f"unknown priority {prio!r}")
        cactions = _str_list(_require(c, "actions", list, path, None, ctx), path, None, f"{ctx}actions")
        for a in cactions:
            if a not in actions:
                raise GoldenSetError(path, None, f"{ctx}actions", f"unknown action {a!r}")
        categories.append(
            Category(
                id=cid,
                name=_require(c, "name", str, path, None, ctx),
                type=ctype,
                priority=prio,
                description=_require(c, "description", str, path, None, ctx),
                actions=cactions,
            )
        )
    if not categories:
        raise GoldenSetError(path, None, "categories", "must not be empty")
    return Taxonomy(
        version=version,
        priorities=priorities,
        critical_priorities=frozenset(critical),
        actions=actions,
        categories=tuple(categories),
        path=path,
    )


def _read_text(path: Path) -> str:
    """A golden-set file's text; a missing or unreadable file is a :class:`GoldenSetError`
    that says where it was looked for and how to point elsewhere."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise GoldenSetError(path, None, None, f"is not valid UTF-8: {exc}") from exc
    except FileNotFoundError:
        raise GoldenSetError(
            path,
            None,
            None,
            f"not found at {path}: set FEEDBACKLOOP_GOLDEN_DIR to the folder holding taxonomy.yaml and "
            "golden_set.jsonl (default: golden_set/ of the repository)",
        ) from None
    except OSError as exc:
        raise GoldenSetError(path, None, None, f"cannot be read: {exc.strerror or exc}") from exc


def load_taxonomy(path: Path | str | None = None) -> Taxonomy:
    """Load and validate ``taxonomy.yaml`` (default: the project's golden_set folder)."""
    import yaml

    path = Path(path) if path is not None else golden_dir() / "taxonomy.yaml"
    try:
        data = yaml.safe_load(_read_text(path))
    except yaml.YAMLError as exc:
        raise GoldenSetError(path, None, None, f"is not valid YAML: {exc}") from exc
    return parse_taxonomy(data, path)


@cache
def default_taxonomy() -> Taxonomy:
    """The project's taxonomy, loaded once per process."""
    return load_taxonomy()


def parse_golden_lines(
    lines: Iterable[str], taxonomy: Taxonomy, path: Path | str = "golden_set.jsonl"
) -> list[GoldenEmail]:
    """Validate golden-set JSONL lines against the schema and the taxonomy."""
    path = Path(path)
    emails: list[GoldenEmail] = []
    seen_ids: dict[str, int] = {}
    categories = set(taxonomy.category_ids)
    for lineno, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise GoldenSetError(path, lineno, None, f"is not valid JSON: {exc.msg}") from exc
        if not isinstance(row, dict):
            raise GoldenSetError(path, lineno, None, "must be a JSON object")
        unknown = sorted(set(row) - set(GOLDEN_FIELDS))
        if unknown:
            raise GoldenSetError(path, lineno, unknown[0], "is not part of the golden-set schema")
        values = {f: _require(row, f, str, path, lineno) for f in GOLDEN_FIELDS[:6] + ("note",)}
        eid = values["id"]
        if eid in seen_ids:
            raise GoldenSetError(path, lineno, "id", f"duplicate id {eid!r} (first on line {seen_ids[eid]})")
        seen_ids[eid] = lineno
        if values["category"] not in categories:
            raise GoldenSetError(
                path, lineno, "category", f"unknown category {values['category']!r} (known: {', '.join(sorted(categories))})"
            )
        if values["priority"] not in taxonomy.priorities:
            raise GoldenSetError(path, lineno, "priority", f"unknown priority {values['priority']!r}")
        actions = _str_list(_require(row, "actions", list, path, lineno), path, lineno, "actions")
        allowed = taxonomy.category(values["category"]).actions
        for a in actions:
            if a not in taxonomy.actions:
                raise GoldenSetError(path, lineno, "actions", f"unknown action {a!r}")
            if a not in allowed:
                raise GoldenSetError(
                    path, lineno, "actions", f"action {a!r} is not allowed for category {values['category']!r}"
                )
        areas = _str_list(_require(row, "problem_areas", list, path, lineno), path, lineno, "problem_areas")
        for tag in areas:
            if tag not in PROBLEM_AREAS:
                raise GoldenSetError(path, lineno, "problem_areas", f"unknown problem area {tag!r}")
        emails.append(
            GoldenEmail(
                id=eid,
                sender=values["sender"],
                subject=values["subject"],
                body=values["body"],
                category=values["category"],
                priority=values["priority"],
                actions=actions,
                problem_areas=areas,
                note=values["note"],
            )
        )
    if not emails:
        raise GoldenSetError(path, None, None, "holds no emails")
    return emails


def load_golden_set(path: Path | str | None = None, taxonomy: Taxonomy | None = None) -> list[GoldenEmail]:
    """Load and validate ``golden_set.jsonl`` (default: the project's golden_set folder)."""
    path = Path(path) if path is not None else golden_dir() / "golden_set.jsonl"
    taxonomy = taxonomy or default_taxonomy()
    return parse_golden_lines(_read_text(path).splitlines(), taxonomy, path)


def category_counts(emails: Sequence[GoldenEmail]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for e in emails:
        counts[e.category] = counts.get(e.category, 0) + 1
    return dict(sorted(counts.items()))


def golden_version(path: Path | str | None = None) -> str:
    """Content version of the golden set: ``sha256:<12 hex>`` of ``golden_set.jsonl``.

    Gate results are comparable only between runs on the same version; ``ml.golden_runs``
    records it with every run.
    """
    import hashlib

    path = Path(path) if path is not None else golden_dir() / "golden_set.jsonl"
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()[:12]
