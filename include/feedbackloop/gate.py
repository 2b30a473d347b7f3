"""The release gate: decides from golden-set evidence whether a challenger may be deployed.

Two kinds of checks, all recorded with their evidence in a :class:`GateDecision`:

* **Value thresholds** on the challenger's own :meth:`EvalResult.to_dict` output. Inclusive
  where the brief says "at least" / "within": accuracy >= 0.95, critical-slice accuracy
  >= 0.98, ECE <= 0.05; strict for latency: p95 < 500 ms. A metric or required slice that is
  missing (e.g. no critical email was evaluated) fails the gate with a reason naming it:
  absence of evidence is never a pass.
* **Change threshold** against the champion on the *same* golden emails: an exact McNemar
  test on the discordant pairs, overall and for every critical category. The challenger fails
  when it is significantly worse (one-sided p < alpha, i.e. the champion is right where the
  challenger is wrong more often than chance allows); such a check has ``value`` = p,
  ``op`` = ">=" and ``threshold`` = alpha. Without a champion the comparison is recorded as
  skipped with the reason "no champion yet".

``gate`` never raises on a failed verdict; callers that must stop (the Airflow gate task)
call :meth:`GateDecision.raise_for_verdict`, which raises :class:`GateFailed`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

NO_CHAMPION = "no champion yet"
# Inclusive comparisons allow this much float noise: ECE is a sum of float products and
# would otherwise fail at a value that is the threshold in exact arithmetic.
_EPS = 1e-12


class GateError(ValueError):
    """Malformed gate input (thresholds out of range, a paired vector that is not booleans)."""


@dataclass(frozen=True)
class GateThresholds:
    """What a challenger must meet. Defaults are the numbers the product brief sets.

    Attributes:
        min_accuracy: Overall accuracy must be >= this.
        min_critical_accuracy: Accuracy on critical-priority emails must be >= this.
        max_p95_latency_ms: p95 latency must be strictly below this.
        max_ece: Expected calibration error must be <= this.
        paired_alpha: Significance level of the one-sided McNemar test against the champion.
        required_slices: Slices (``EvalResult`` slice keys such as ``"critical"``,
            ``"category:phishing"``, ``"priority:high"``) that must have been evaluated on
            at least one email.
    """

    min_accuracy: float = 0.95
    min_critical_accuracy: float = 0.98
    max_p95_latency_ms: float = 500.0
    max_ece: float = 0.05
    paired_alpha: float = 0.05
    required_slices: tuple[str, ...] = ("overall", "critical")

    def __post_init__(self) -> None:
        for name in ("min_accuracy", "min_critical_accuracy", "max_ece"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
                raise GateError(f"{name} must be within [0, 1], got {value!r}")
        if not (isinstance(self.max_p95_latency_ms, int | float) and self.max_p95_latency_ms > 0):
            raise GateError(f"max_p95_latency_ms must be > 0, got {self.max_p95_latency_ms!r}")
        if not (isinstance(self.paired_alpha, int | float) and 0.0 < self.paired_alpha < 1.0):
            raise GateError(f"paired_alpha must be within (0, 1), got {self.paired_alpha!r}")
        if isinstance(self.required_slices, str) or not all(
            isinstance(s, str) and s for s in self.required_slices
        ):
            raise GateError(
                f"required_slices must be a sequence of slice names, got {self.required_slices!r}"
            )
        object.__setattr__(self, "required_slices", tuple(self.required_slices))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["required_slices"] = list(self.required_slices)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateThresholds:
        """Thresholds from a params dict (e.g. the DAG's trigger form); unknown keys are errors."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise GateError(f"unknown gate threshold(s): {', '.join(unknown)}")
        values = dict(data)
        if "required_slices" in values:
            values["required_slices"] = tuple(values["required_slices"])
        return cls(**values)


@dataclass(frozen=True)
class GateDecision:
    """The verdict with its evidence.

    Attributes:
        passed: True when every check passed (skipped checks do not fail).
        checks: One dict per check: ``name``, ``value``, ``threshold``, ``op``, ``passed``,
            ``skipped`` and ``detail``.
        reasons: Human-readable reasons: one per failed check, then context such as
            "no champion yet" or the champion comparison's outcome.
        challenger_version: The evaluated model's version, when the evaluation named it.
        champion_version: The champion's version, or None when there is no champion.
        thresholds: The thresholds used.
    """

    passed: bool
    checks: list[dict[str, Any]]
    reasons: list[str]
    challenger_version: str | None = None
    champion_version: str | None = None
    thresholds: dict[str, Any] = field(default_factory=dict)

    @property
    def failed_checks(self) -> list[dict[str, Any]]:
        return [c for c in self.checks if not c["passed"]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (the report and XCom carry this)."""
        return {
            "passed": self.passed,
            "verdict": "passed" if self.passed else "failed",
            "checks": [dict(c) for c in self.checks],
            "reasons": list(self.reasons),
            "challenger_version": self.challenger_version,
            "champion_version": self.champion_version,
            "thresholds": dict(self.thresholds),
        }

    def raise_for_verdict(self) -> GateDecision:
        """Return self when the gate passed, else raise :class:`GateFailed`."""
        if not self.passed:
            raise GateFailed(self)
        return self


class GateFailed(Exception):
    """The challenger did not pass the release gate. ``decision`` holds the evidence."""

    def __init__(self, decision: GateDecision) -> None:
        self.decision = decision
        who = decision.challenger_version or "challenger"
        failed = "; ".join(_describe(c) for c in decision.failed_checks) or "no check recorded"
        super().__init__(f"release gate failed for {who}: {failed}")


# --------------------------------------------------------------------------- helpers


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _describe(check: Mapping[str, Any]) -> str:
    if check["value"] is None:
        return f"{check['name']}: {check['detail']}"
    return f"{check['name']} = {_fmt(check['value'])} (required {check['op']} {_fmt(check['threshold'])}): {check['detail']}"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    return float(value) if math.isfinite(value) else None


def _check(
    name: str, value: Any, threshold: Any, op: str, passed: bool, detail: str, skipped: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "value": value,
        "threshold": threshold,
        "op": op,
        "passed": passed,
        "skipped": skipped,
        "detail": detail,
    }


def _value_check(name: str, value: Any, threshold: float, op: str, missing: str) -> dict[str, Any]:
    number = _number(value)
    if number is None:
        return _check(name, None, threshold, op, False, missing)
    if op == ">=":
        ok = number >= threshold - _EPS
    elif op == "<=":
        ok = number <= threshold + _EPS
    elif op == "<":
        ok = number < threshold
    else:  # pragma: no cover - every caller passes one of the three
        raise GateError(f"unknown comparison {op!r}")
    detail = "meets the threshold" if ok else "does not meet the threshold"
    return _check(name, number, threshold, op, ok, detail)


def _slice(evaluation: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    slices = evaluation.get("slices")
    if not isinstance(slices, Mapping):
        return None
    entry = slices.get(name)
    if not isinstance(entry, Mapping) or not isinstance(entry.get("n"), int) or entry["n"] < 1:
        return None
    return entry


def mcnemar_exact(challenger_correct: list[bool], champion_correct: list[bool]) -> dict[str, Any]:
    """One-sided exact McNemar test of "the champion is better than the challenger".

    Only discordant pairs carry information: ``champion_only`` emails the champion got right
    and the challenger wrong, ``challenger_only`` the reverse. Under the null hypothesis of
    equal accuracy each discordant pair is a fair coin, so the p-value is
    ``P(X >= champion_only)`` for ``X ~ Binomial(discordant, 0.5)``.

    Returns:
        ``{"n", "champion_only", "challenger_only", "p_value"}``; p is 1.0 without discordant pairs.
    """
    from scipy.stats import binomtest

    if len(challenger_correct) != len(champion_correct):
        raise GateError("paired correctness vectors differ in length")
    champion_only = sum(1 for a, b in zip(challenger_correct, champion_correct, strict=True) if b and not a)
    challenger_only = sum(1 for a, b in zip(challenger_correct, champion_correct, strict=True) if a and not b)
    discordant = champion_only + challenger_only
    p_value = (
        1.0
        if discordant == 0
        else float(binomtest(champion_only, discordant, 0.5, alternative="greater").pvalue)
    )
    return {
        "n": len(challenger_correct),
        "champion_only": champion_only,
        "challenger_only": challenger_only,
        "p_value": p_value,
    }


def _correctness(evaluation: Mapping[str, Any]) -> dict[str, bool] | None:
    per_email = evaluation.get("per_email")
    if not isinstance(per_email, list):
        return None
    return {str(e["id"]): bool(e["correct"]) for e in per_email}


def _validate_vector(name: str, vector: Any) -> dict[str, bool]:
    if not isinstance(vector, Mapping) or not all(isinstance(v, bool) for v in vector.values()):
        raise GateError(f"paired[{name!r}] must map email id -> bool")
    return {str(k): v for k, v in vector.items()}


def _paired_checks(
    challenger: Mapping[str, Any],
    champion: Mapping[str, Any],
    paired: Mapping[str, Any] | None,
    alpha: float,
    champion_label: str,
) -> tuple[list[dict[str, Any]], list[str]]:
    if paired is not None:
        missing = [k for k in ("challenger", "champion") if k not in paired]
        if missing:
            raise GateError(f"paired must have keys 'challenger' and 'champion', missing {missing}")
        ours = _validate_vector("challenger", paired["challenger"])
        theirs = _validate_vector("champion", paired["champion"])
    else:
        ours_or_none, theirs_or_none = _correctness(challenger), _correctness(champion)
        if ours_or_none is None or theirs_or_none is None:
            who = "challenger" if ours_or_none is None else "champion"
            detail = f"no per-email results for the {who}, so the paired test cannot run"
            return [_check("paired:overall", None, alpha, ">=", False, detail)], []
        ours, theirs = ours_or_none, theirs_or_none

    if set(ours) != set(theirs):
        only_ours = len(set(ours) - set(theirs))
        only_theirs = len(set(theirs) - set(ours))
        detail = (
            f"champion {champion_label} was evaluated on different golden emails "
            f"({only_ours} only in the challenger's run, {only_theirs} only in the champion's); "
            "re-evaluate the champion on the current golden set"
        )
        return [_check("paired:overall", None, alpha, ">=", False, detail)], []

    categories: dict[str, str] = {}
    for e in challenger.get("per_email") or []:
        categories[str(e["id"])] = str(e["expected"])
    groups: list[tuple[str, list[str]]] = [("paired:overall", sorted(ours))]
    for category in challenger.get("critical_categories") or []:
        ids = sorted(i for i in ours if categories.get(i) == category)
        groups.append((f"paired:category:{category}", ids))

    checks: list[dict[str, Any]] = []
    reasons: list[str] = []
    for name, ids in groups:
        if not ids:
            detail = f"no golden email in {name.removeprefix('paired:')}, so the paired test cannot run"
            checks.append(_check(name, None, alpha, ">=", False, detail))
            continue
        test = mcnemar_exact([ours[i] for i in ids], [theirs[i] for i in ids])
        # One-sided: p < alpha already implies champion_only > challenger_only, so the check
        # is simply p >= alpha ("not significantly worse").
        worse = test["p_value"] < alpha
        detail = (
            f"{test['n']} paired emails: champion right / challenger wrong on {test['champion_only']}, "
            f"challenger right / champion wrong on {test['challenger_only']}; one-sided exact McNemar "
            f"p = {test['p_value']:.4g}"
        )
        detail += " (significantly worse than the champion)" if worse else " (not significantly worse)"
        checks.append(_check(name, test["p_value"], alpha, ">=", not worse, detail))
    failed = [c for c in checks if not c["passed"]]
    if not failed:
        reasons.append(
            f"not significantly worse than champion {champion_label} (overall and on each critical category)"
        )
    return checks, reasons


# --------------------------------------------------------------------------- the gate


def gate(
    challenger: Mapping[str, Any],
    thresholds: GateThresholds | None = None,
    champion: Mapping[str, Any] | None = None,
    paired: Mapping[str, Any] | None = None,
    *,
    champion_version: str | None = None,
) -> GateDecision:
    """Decide whether ``challenger`` may be released.

    Args:
        challenger: The challenger's ``EvalResult.to_dict()`` on the golden set (an
            ``EvalResult`` itself is accepted too).
        thresholds: Gate thresholds; the brief's defaults when None.
        champion: The champion's ``EvalResult.to_dict()`` on the same golden emails, or None
            when no model has been deployed yet.
        paired: Optional explicit per-email correctness, ``{"challenger": {id: bool},
            "champion": {id: bool}}``; derived from both results' ``per_email`` when None.
        champion_version: Names the champion; defaults to ``champion["model_version"]``.

    Returns:
        The decision with every check and the reasons; the inputs are not modified.

    Raises:
        GateError: ``paired`` is malformed.
    """
    thresholds = thresholds or GateThresholds()
    # Accept EvalResult objects as well as their dicts.
    challenger = challenger.to_dict() if hasattr(challenger, "to_dict") else challenger
    if champion is not None and hasattr(champion, "to_dict"):
        champion = champion.to_dict()
    checks: list[dict[str, Any]] = []
    latency = challenger.get("latency_ms")
    critical = _slice(challenger, "critical")
    checks.append(
        _value_check(
            "accuracy",
            challenger.get("accuracy"),
            thresholds.min_accuracy,
            ">=",
            "metric 'accuracy' is missing from the evaluation",
        )
    )
    checks.append(
        _value_check(
            "critical_accuracy",
            critical.get("accuracy") if critical else None,
            thresholds.min_critical_accuracy,
            ">=",
            "slice 'critical' is missing: no critical-priority email was evaluated",
        )
    )
    checks.append(
        _value_check(
            "p95_latency_ms",
            latency.get("p95") if isinstance(latency, Mapping) else None,
            thresholds.max_p95_latency_ms,
            "<",
            "metric 'latency_ms.p95' is missing from the evaluation",
        )
    )
    checks.append(
        _value_check(
            "ece",
            challenger.get("ece"),
            thresholds.max_ece,
            "<=",
            "metric 'ece' is missing from the evaluation",
        )
    )
    for name in thresholds.required_slices:
        entry = _slice(challenger, name)
        if entry is None:
            checks.append(
                _check(
                    f"slice:{name}",
                    None,
                    1,
                    ">=",
                    False,
                    f"required slice '{name}' is missing: no golden email in it",
                )
            )
        else:
            checks.append(
                _check(f"slice:{name}", entry["n"], 1, ">=", True, f"evaluated on {entry['n']} emails")
            )

    reasons = [_describe(c) for c in checks if not c["passed"]]
    if champion is None:
        label = None
        checks.append(
            _check(
                "paired:overall",
                None,
                thresholds.paired_alpha,
                ">=",
                True,
                f"skipped: {NO_CHAMPION}",
                skipped=True,
            )
        )
        reasons.append(NO_CHAMPION)
    else:
        label = champion_version or champion.get("model_version") or "(unnamed champion)"
        paired_checks, paired_reasons = _paired_checks(
            challenger, champion, paired, thresholds.paired_alpha, label
        )
        checks.extend(paired_checks)
        reasons.extend(_describe(c) for c in paired_checks if not c["passed"])
        reasons.extend(paired_reasons)

    passed = all(c["passed"] for c in checks)
    return GateDecision(
        passed=passed,
        checks=checks,
        reasons=reasons,
        challenger_version=challenger.get("model_version"),
        champion_version=label,
        thresholds=thresholds.to_dict(),
    )
