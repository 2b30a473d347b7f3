"""PII redaction for text that leaves the feedback database (training files, prompts).

:func:`redact` replaces personal data with typed placeholders and counts what it replaced::

    >>> redact("Call me on +44 20 7946 0958 or mail jo@example.org")
    ('Call me on [PHONE] or mail [EMAIL]', {'email': 1, 'phone': 1, 'card': 0, 'iban': 0, 'ssn': 0, 'address': 0})

What is detected (in this priority order; an earlier type wins where spans overlap):

=========  ==========================================================================
email      ``local@domain.tld`` (Unicode letters allowed, ``mailto:`` included)
iban       2 letters + 2 check digits + the country's BBAN length (table below),
           spaces or dashes allowed, validated with the ISO 13616 mod-97 checksum
card       13-19 digits, bare or grouped 4-4-4-4(-3) / 4-6-5 / 4-6-4 with one kind of
           separator, issuer prefix 2-6 (Visa, Mastercard, Amex, Discover, JCB, Diners,
           UnionPay, Maestro, Mir), Luhn-checked: order numbers that fail Luhn are kept
ssn        US SSN ``ddd-dd-dddd`` (no 000 / 666 / 9xx area, no 00 group, no 0000
           serial); spaced or bare 9 digits only right after "SSN" / "social security"
phone      international (``+`` or ``00`` + country code, 8-15 digits), North American
           (``(555) 123-4567``, ``555.123.4567``, ``1-800-555-0199``), European national
           numbers with a trunk 0 and separators (``020 7946 0958``, ``06 12 34 56 78``,
           ``030/12345678``); bare digit runs only right after a phone word ("call",
           "tel", "mobile", "fax", "whatsapp", ...)
address    street addresses where feasible: number + capitalised street name + suffix
           (``221B Baker Street``, ``1600 Pennsylvania Ave NW, Suite 200``), German /
           Dutch ``Hauptstraße 12`` style, French ``12 rue de la Paix`` style
=========  ==========================================================================

Hard negatives kept on purpose: dates, times, amounts, version numbers, IP addresses,
order / invoice / reference numbers (digit runs that fail Luhn, or that follow words like
"order", "invoice", "ref", "tracking"), tracking numbers, IBAN-shaped strings with a bad
checksum. Known limits: obfuscated addresses ("jo at example dot com"), phone numbers
without area code ("555-0199"), street addresses without a suffix or number, and names
are not detected. :func:`pii_scores` measures recall and precision on a labelled corpus
(``tests/data/pii_corpus.jsonl``).
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

PII_TYPES: Final = ("email", "phone", "card", "iban", "ssn", "address")
PLACEHOLDERS: Final = {t: f"[{t.upper()}]" for t in PII_TYPES}
# Overlap resolution: the first type in this tuple wins.
_PRIORITY: Final = ("email", "iban", "card", "ssn", "phone", "address")

# ISO 13616 IBAN lengths per country (SWIFT IBAN registry).
IBAN_LENGTHS: Final[dict[str, int]] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip


@dataclass(frozen=True, order=True)
class PiiMatch:
    """One detected PII span: ``text[start:end] == value``."""

    start: int
    end: int
    type: str
    value: str


# --- validators ------------------------------------------------------------------------


def luhn_valid(digits: str) -> bool:
    """Luhn (mod 10) check of a digit string, as used by every payment card number."""
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_valid(iban: str) -> bool:
    """ISO 13616 check: known country, the country's length, and mod-97 == 1.

    Spaces and dashes are ignored; letters must be upper case ASCII.
    """
    s = re.sub(r"[ \-]", "", iban)
    if len(s) < 5 or not s.isascii() or not s.isalnum() or s != s.upper():
        return False
    if IBAN_LENGTHS.get(s[:2]) != len(s) or not s[2:4].isdigit():
        return False
    rearranged = s[4:] + s[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


# --- detectors -------------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![\w.%+\-])\w(?:[\w.%+\-']*\w)?@(?:[^\W_](?:[\w\-]{0,61}[^\W_])?\.)+[^\W\d_]{2,24}(?![\w\-])"
)

_IBAN_START = re.compile(r"(?<![A-Za-z0-9])([A-Z]{2})(\d{2})")

_CARD = re.compile(r"(?<![\w\-.])(?<!\d[ ])(?:\d[ \-]?){12,18}\d(?![\w\-]|[ .]\d)")

_SSN_DASHED = re.compile(r"(?<![\w\-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w\-])")
_SSN_KEYWORD = re.compile(
    r"(?i:\b(?:ssn|ss\#|social\s+security)\b(?:\s+(?:number|no\.?|nr\.?|\#))?)[^\w\n]{0,5}"
    r"(?:(?i:is|was|:)\W{0,3})?"
    r"((?!000|666|9\d\d)\d{3}([ ]?)(?!00)\d{2}\2(?!0000)\d{4})(?![\w\-])"
)

# A phone never starts inside a token, right after a digit group, or after '#'.
_PHONE_LEFT = r"(?<![\w+\-./#])(?<!\d[ ])"
_PHONE_RIGHT = r"(?![\w\-/]|[ .:]\d)"
_PHONE_INTL = re.compile(
    _PHONE_LEFT
    + r"(?P<prefix>\+|00)[1-9]\d{0,2}(?:[ .\-]?\(0\))?(?:[ .\-]?\(\d{1,4}\))?(?:[ .\-]?\d++){1,6}"
    + _PHONE_RIGHT
)
_PHONE_NANP = re.compile(
    _PHONE_LEFT + r"(?:1[ .\-]?)?(?:\([2-9]\d{2}\)[ .\-]?|[2-9]\d{2}[ .\-])\d{3}[ .\-]\d{4}" + _PHONE_RIGHT
)
_PHONE_NATIONAL = re.compile(
    _PHONE_LEFT + r"(?:\(0[1-9]\d{0,4}\)[ ]?|0[1-9]\d*+[ .\-/])(?:\d++[ .\-]){0,4}\d++" + _PHONE_RIGHT
)
_PHONE_WORDS = (
    r"phone|telephone|tel|call|mobile|cell|cellphone|fax|sms|text|whatsapp|ph|mob|hotline|"
    # fr / de / es / it / nl / pt
    r"t[ée]l[ée]phone|portable|telefon|handy|mobil|tel[ée]fono|m[óo]vil|celular|cellulare|telefoon|mobiel"
)
_PHONE_KEYWORD = re.compile(
    rf"(?i:\b(?:{_PHONE_WORDS})\b\.?)[ \t:#.]*(?:(?i:me|us|at|on|no|number|nr|is)\b[ \t:#.]*){{0,3}}"
    r"(\+?\d(?:[ .\-]?\d){7,14})" + _PHONE_RIGHT
)
# A date (possibly followed by a time), not a number grouped like 01.23.45.67.89.
_DATE_START = re.compile(r"\d{1,2}[./\-]\d{1,2}[./\-](?:\d{4}|\d{2})(?![./\-]?\d)")
# Words after which a digit run is a reference, not a phone number.
_NOT_PHONE_CONTEXT = re.compile(
    r"(?i:\b(?:order|invoice|inv|ref|reference|tracking|track|shipment|parcel|account|acct|case|"
    r"ticket|confirmation|booking|reservation|policy|member|membership|customer|sku|item|serial|"
    r"model|version|build|id|po|isbn|transaction|txn)\b)"
    r"[^\w\n]{0,3}(?:(?i:no|nr|num|number|id|code)\b\.?[^\w\n]{0,3})?$"
)

_STREET_SUFFIX = (
    r"Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|"
    r"Terrace|Parkway|Pkwy|Circle|Cir|Highway|Hwy|Square|Sq|Trail|Close|Crescent|Row|Mews|Plaza|"
    r"Loop|Alley|Walk|Gardens|Hill"
)
_NOT_STREET_WORD = (
    r"Minutes?|Hours?|Days?|Weeks?|Months?|Years?|Miles?|Seconds?|Best|Top|Easy|Simple|Great|"
    r"Free|New|More|Other|Different|Quick|Steps?|Tips?|Reasons?|Things?|People|Users?|Items?"
)
_ADDRESS_EN = re.compile(
    r"(?<![\w\-.,$€£])\d{1,6}[A-Za-z]?(?:-\d{1,4})?\s+"
    rf"(?!(?:{_NOT_STREET_WORD})\b)"
    r"(?:(?:[NSEW]\.?|North|South|East|West)\s+)?"
    r"(?:(?:[A-Z][\w'\-]*|\d{1,3}(?:st|nd|rd|th))\s+){1,3}"
    rf"(?:{_STREET_SUFFIX})\b\.?"
    r"(?:\s+(?:NW|NE|SW|SE|N|S|E|W)\b)?"
    r"(?:,?\s+(?:Apt|Apartment|Suite|Ste|Unit|Flat|Floor|Fl)\.?\s*\#?\w{1,6}|,?\s+\#\w{1,6})?"
)
_ADDRESS_DE_NL = re.compile(
    r"(?<![\w\-])[A-ZÄÖÜ][\wäöüß\-]*(?:straße|strasse|str\.|weg|platz|allee|gasse|ring|damm|"
    r"straat|laan|gracht|plein|kade|dijk)\s+\d{1,4}(?:\s?[a-zA-Z])?(?!\w)"
)
_ADDRESS_FR = re.compile(
    r"(?<![\w\-.,])\d{1,4}(?:\s?(?:bis|ter))?,?\s+"
    r"(?i:rue|avenue|av\.|boulevard|bd|place|chemin|allée|impasse|quai|cours)\s+"
    r"(?:(?:de|du|des|la|le|l'|d')\s*)*[A-ZÉÈÀ][\w'\-]+(?:\s+[A-ZÉÈÀ][\w'\-]+){0,2}"
)


def _email_matches(text: str) -> Iterable[tuple[int, int]]:
    for m in _EMAIL.finditer(text):
        yield m.start(), m.end()


def _iban_matches(text: str) -> Iterable[tuple[int, int]]:
    for m in _IBAN_START.finditer(text):
        length = IBAN_LENGTHS.get(m.group(1))
        if length is None:
            continue
        need = length - 4
        i = m.end()
        while need > 0 and i < len(text):
            ch = text[i]
            if ch.isascii() and (ch.isdigit() or ch.isupper()):
                need -= 1
                i += 1
            elif ch in " -" and i + 1 < len(text) and text[i + 1].isascii() and text[i + 1].isalnum():
                i += 1
            else:
                break
        if need or (i < len(text) and text[i].isalnum()):
            continue
        if iban_valid(text[m.start() : i]):
            yield m.start(), i


def _card_grouping_ok(candidate: str) -> bool:
    seps = {ch for ch in candidate if not ch.isdigit()}
    if not seps:
        return True
    if len(seps) > 1:
        return False
    groups = [len(g) for g in re.split(r"[ \-]", candidate)]
    if groups in ([4, 6, 5], [4, 6, 4]):
        return True
    return all(g == 4 for g in groups[:-1]) and 1 <= groups[-1] <= 4


def _card_matches(text: str) -> Iterable[tuple[int, int]]:
    for m in _CARD.finditer(text):
        cand = m.group()
        digits = re.sub(r"\D", "", cand)
        if (
            13 <= len(digits) <= 19
            and digits[0] in "23456"
            and _card_grouping_ok(cand)
            and luhn_valid(digits)
        ):
            yield m.start(), m.end()


def _ssn_matches(text: str) -> Iterable[tuple[int, int]]:
    for m in _SSN_DASHED.finditer(text):
        yield m.start(), m.end()
    for m in _SSN_KEYWORD.finditer(text):
        yield m.start(1), m.end(1)


def _digits(s: str) -> int:
    return sum(ch.isdigit() for ch in s)


def _phone_context_ok(text: str, start: int) -> bool:
    return _NOT_PHONE_CONTEXT.search(text[max(0, start - 40) : start]) is None


def _phone_matches(text: str) -> Iterable[tuple[int, int]]:
    for m in _PHONE_INTL.finditer(text):
        cand = m.group()
        n = _digits(cand.replace("(0)", "")) - (2 if m.group("prefix") == "00" else 0)
        # Without a "+", "00..." is easily an order or member number: require separators
        # and no reference word before it.
        if m.group("prefix") == "00" and (cand.isdigit() or not _phone_context_ok(text, m.start())):
            continue
        if 8 <= n <= 15:
            yield m.start(), m.end()
    for m in _PHONE_NANP.finditer(text):
        if _phone_context_ok(text, m.start()):
            yield m.start(), m.end()
    for m in _PHONE_NATIONAL.finditer(text):
        cand = m.group()
        if 9 <= _digits(cand) <= 13 and not _DATE_START.match(cand) and _phone_context_ok(text, m.start()):
            yield m.start(), m.end()
    for m in _PHONE_KEYWORD.finditer(text):
        cand = m.group(1)
        n = _digits(cand)
        if (8 if cand.startswith("+") else 9) <= n <= 15 and not _DATE_START.match(cand):
            yield m.start(1), m.end(1)


def _address_matches(text: str) -> Iterable[tuple[int, int]]:
    for rx in (_ADDRESS_EN, _ADDRESS_DE_NL, _ADDRESS_FR):
        for m in rx.finditer(text):
            yield m.start(), m.end()


_DETECTORS = {
    "email": _email_matches,
    "iban": _iban_matches,
    "card": _card_matches,
    "ssn": _ssn_matches,
    "phone": _phone_matches,
    "address": _address_matches,
}


# Fewest digits (``\d``, as the patterns count them) a text needs before a detector can
# match at all: the cheap count lets most texts skip most of the (slow) patterns.
_MIN_DIGITS: Final = {"email": 0, "iban": 2, "card": 13, "ssn": 9, "phone": 8, "address": 1}
_DIGIT = re.compile(r"\d")


def _may_contain(pii_type: str, text: str, digits: int) -> bool:
    if pii_type == "email":
        return "@" in text
    return digits >= _MIN_DIGITS[pii_type]


def find_pii(text: str) -> list[PiiMatch]:
    """All PII spans in ``text``, non-overlapping, sorted by position.

    Where detectors overlap, the type earlier in the priority order (email, iban, card,
    ssn, phone, address) wins; within a type, the earlier then longer span wins.
    """
    if not isinstance(text, str):
        raise TypeError(f"find_pii expects a str, got {type(text).__name__}")
    digits = len(_DIGIT.findall(text))
    # Accepted spans are disjoint, so sorted by start they are also sorted by end: an
    # overlap check needs only the neighbours found by bisection (large texts stay linear).
    starts: list[int] = []
    taken: list[PiiMatch] = []
    for pii_type in _PRIORITY:
        if not _may_contain(pii_type, text, digits):
            continue
        spans = sorted(set(_DETECTORS[pii_type](text)), key=lambda se: (se[0], -se[1]))
        for start, end in spans:
            i = bisect.bisect_left(starts, start)
            if i > 0 and taken[i - 1].end > start:
                continue
            if i < len(taken) and taken[i].start < end:
                continue
            starts.insert(i, start)
            taken.insert(i, PiiMatch(start, end, pii_type, text[start:end]))
    return taken


def redact(text: str, *, keep_email_domain: bool = False) -> tuple[str, dict[str, int]]:
    """Replace PII with typed placeholders (``[EMAIL]``, ``[PHONE]``, ``[CARD]``, ``[IBAN]``,
    ``[SSN]``, ``[ADDRESS]``).

    Args:
        text: any text.
        keep_email_domain: keep the domain of e-mail addresses (``[EMAIL]@bank-secure.com``).
            The local part identifies a person; the domain of a *sender* is often the best
            phishing signal (lookalike domains) and rarely personal. Off by default.

    Returns:
        ``(redacted_text, counts)``; counts has every type of :data:`PII_TYPES` (0 when
        none was found), in that order.
    """
    counts = dict.fromkeys(PII_TYPES, 0)
    parts: list[str] = []
    pos = 0
    for m in find_pii(text):
        parts.append(text[pos : m.start])
        placeholder = PLACEHOLDERS[m.type]
        if m.type == "email" and keep_email_domain:
            placeholder += "@" + m.value.rsplit("@", 1)[1]
        parts.append(placeholder)
        counts[m.type] += 1
        pos = m.end
    parts.append(text[pos:])
    return "".join(parts), counts


# --- evaluation on a labelled corpus ---------------------------------------------------


def load_pii_corpus(path: Path | str) -> list[dict[str, Any]]:
    """Read a labelled PII corpus (JSONL: ``id``, ``text``, ``spans`` of ``type`` /
    ``start`` / ``end`` / ``value``) and check that every span matches its text.

    Raises:
        ValueError: a line is not valid, with the file name and line number.
    """
    path = Path(path)
    records: list[dict[str, Any]] = []
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
            _check_record(rec)
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path.name}:{lineno}: {exc}") from exc
        records.append(rec)
    return records


def _check_record(rec: Mapping[str, Any]) -> None:
    if not isinstance(rec.get("text"), str) or not isinstance(rec.get("spans"), list):
        raise ValueError("a record needs 'text' (str) and 'spans' (list)")
    for span in rec["spans"]:
        if span["type"] not in PII_TYPES:
            raise ValueError(f"unknown PII type {span['type']!r}")
        if rec["text"][span["start"] : span["end"]] != span["value"]:
            raise ValueError(f"span {span['start']}:{span['end']} is not {span['value']!r}")


def pii_scores(corpus: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Recall and precision per PII type of :func:`find_pii` on a labelled corpus.

    A labelled span is *recalled* when a detected span of the same type covers it
    entirely. A detected span is *correct* when it overlaps a labelled span of the same
    type. ``any_type_recall`` counts a labelled span as protected when any detected span
    covers it (what matters for privacy, whatever the placeholder says).

    Returns:
        ``{"lines", "per_type": {type: {"support", "detected", "recall", "precision"}},
        "overall": {...}, "any_type_recall", "missed": [...], "false_positives": [...]}``;
        recall / precision are None where undefined (no labelled / no detected span).
    """
    support = dict.fromkeys(PII_TYPES, 0)
    recalled = dict.fromkeys(PII_TYPES, 0)
    detected = dict.fromkeys(PII_TYPES, 0)
    correct = dict.fromkeys(PII_TYPES, 0)
    covered_any = 0
    missed: list[dict[str, Any]] = []
    false_pos: list[dict[str, Any]] = []
    lines = 0
    for rec in corpus:
        _check_record(rec)
        lines += 1
        found = find_pii(rec["text"])
        labelled = rec["spans"]
        for span in labelled:
            t = span["type"]
            support[t] += 1
            if any(f.type == t and f.start <= span["start"] and f.end >= span["end"] for f in found):
                recalled[t] += 1
            else:
                missed.append({"id": rec.get("id"), "type": t, "value": span["value"]})
            if any(f.start <= span["start"] and f.end >= span["end"] for f in found):
                covered_any += 1
        for f in found:
            detected[f.type] += 1
            if any(s["type"] == f.type and f.start < s["end"] and s["start"] < f.end for s in labelled):
                correct[f.type] += 1
            else:
                false_pos.append({"id": rec.get("id"), "type": f.type, "value": f.value})

    def ratio(a: int, b: int) -> float | None:
        return round(a / b, 6) if b else None

    per_type = {
        t: {
            "support": support[t],
            "detected": detected[t],
            "recall": ratio(recalled[t], support[t]),
            "precision": ratio(correct[t], detected[t]),
        }
        for t in PII_TYPES
    }
    total_support = sum(support.values())
    return {
        "lines": lines,
        "per_type": per_type,
        "overall": {
            "support": total_support,
            "detected": sum(detected.values()),
            "recall": ratio(sum(recalled.values()), total_support),
            "precision": ratio(sum(correct.values()), sum(detected.values())),
        },
        "any_type_recall": ratio(covered_any, total_support),
        "missed": missed,
        "false_positives": false_pos,
    }
