"""Generated sections of ``golden_set/README.md`` (counts are generated, never typed).

``python -m feedbackloop.cli golden-readme`` rewrites the part between the markers;
``--check`` exits non-zero when the README is stale (a test runs the check).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from feedbackloop.golden import PROBLEM_AREAS, GoldenEmail, Taxonomy

BEGIN = "<!-- BEGIN GENERATED: python -m feedbackloop.cli golden-readme -->"
END = "<!-- END GENERATED -->"


def counts_markdown(emails: list[GoldenEmail], taxonomy: Taxonomy) -> str:
    """Markdown tables: per category, per priority, per problem area."""
    by_cat = Counter(e.category for e in emails)
    crit_by_cat = Counter(e.category for e in emails if e.is_critical(taxonomy))
    lines = [
        f"Golden set: **{len(emails)} emails**, **{len(by_cat)} categories**, "
        f"**{sum(crit_by_cat.values())} critical**; taxonomy version {taxonomy.version}.",
        "",
        "| category | type | emails | critical |",
        "|---|---|---:|---:|",
    ]
    for c in taxonomy.categories:
        lines.append(f"| `{c.id}` | {c.type} | {by_cat.get(c.id, 0)} | {crit_by_cat.get(c.id, 0)} |")
    by_prio = Counter(e.priority for e in emails)
    lines += ["", "| priority | emails |", "|---|---:|"]
    for p in taxonomy.priorities:
        lines.append(f"| {p}{' (critical slice)' if p in taxonomy.critical_priorities else ''} | {by_prio.get(p, 0)} |")
    by_area = Counter(t for e in emails for t in e.problem_areas)
    lines += ["", "| problem area | emails | what makes it hard |", "|---|---:|---|"]
    for tag, why in PROBLEM_AREAS.items():
        lines.append(f"| `{tag}` | {by_area.get(tag, 0)} | {why} |")
    return "\n".join(lines)


def render(readme_text: str, emails: list[GoldenEmail], taxonomy: Taxonomy) -> str:
    """The README with its generated section replaced."""
    if BEGIN not in readme_text or END not in readme_text:
        raise ValueError(f"README lacks the generated-section markers {BEGIN!r} ... {END!r}")
    head, rest = readme_text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{counts_markdown(emails, taxonomy)}\n{END}{tail}"


def update(readme: Path, emails: list[GoldenEmail], taxonomy: Taxonomy, check: bool = False) -> bool:
    """Rewrite (or with ``check``, only compare) the README; returns whether it was current."""
    text = readme.read_text(encoding="utf-8")
    new = render(text, emails, taxonomy)
    if new == text:
        return True
    if not check:
        readme.write_text(new, encoding="utf-8")
    return False
