"""Per-email lazy fields: every placeholder of one email resolves once and stays consistent.

A renderer formats templates such as ``"Your {brand} bill of {amount} is due {date}"`` with
:meth:`Fields.fmt`. Missing keys are generated on first use from the email's own RNG and then
kept, so ``{amount}`` in the subject and in the body is the same amount. Renderers set the
brand-specific keys (``brand``, ``domain``) before formatting.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from feedbackloop.synth import _vocab as V

_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_ALNUM = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


@dataclass
class Draft:
    """A rendered email before the final action choice."""

    sender: str
    subject: str
    body: str
    # Plausible actions for this email, most relevant first; the caller keeps 1-3.
    actions: list[str] = field(default_factory=list)


class Fields(dict[str, str]):
    """Lazy placeholder values for one email (see the module docstring)."""

    def __init__(self, rng: random.Random):
        super().__init__()
        self.r = rng
        # The email's "today": every relative date is derived from it.
        self.today = date(2024, 1, 8) + timedelta(days=rng.randrange(900))
        self.date_style = rng.randrange(5)

    def __missing__(self, key: str) -> str:
        gen = _GENERATORS.get(key)
        if gen is None:
            raise KeyError(key)
        value = gen(self)
        self[key] = value
        return value

    # --- picking ---------------------------------------------------------------------------
    def pick(self, seq: Sequence[Any]) -> Any:
        return seq[self.r.randrange(len(seq))]

    def chance(self, p: float) -> bool:
        return self.r.random() < p

    def fmt(self, template: str) -> str:
        return template.format_map(self)

    def one(self, templates: Sequence[str | None]) -> Any:
        """Format one template picked at random (``None`` entries make a part optional)."""
        template = self.pick(templates)
        return None if template is None else self.fmt(template)

    def some(self, templates: Sequence[str], lo: int, hi: int) -> list[str]:
        """Format between lo and hi distinct templates, in random order."""
        k = min(len(templates), self.r.randint(lo, hi))
        return [self.fmt(t) for t in self.r.sample(list(templates), k)]

    # --- values ----------------------------------------------------------------------------
    def money(self, lo: float, hi: float, key: str | None = None) -> str:
        value = self.r.uniform(lo, hi)
        # Real prices cluster at .99 / .00 / .49 endings; bills are arbitrary cents.
        if self.chance(0.3):
            value = int(value) + self.pick((0.99, 0.0, 0.49, 0.95))
        text = f"{self['cur']}{value:,.2f}"
        if key:
            self[key] = text
        return text

    def day(self, lo: int, hi: int) -> date:
        return self.today + timedelta(days=self.r.randint(lo, hi))

    def dstr(self, d: date) -> str:
        s = self.date_style
        if s == 0:
            return f"{_DAYS[d.weekday()]}, {_MONTHS[d.month - 1]} {d.day}"
        if s == 1:
            return f"{_MONTHS[d.month - 1]} {d.day}, {d.year}"
        if s == 2:
            return f"{d.day} {_MONTHS[d.month - 1]} {d.year}"
        if s == 3:
            return f"{d.month:02d}/{d.day:02d}/{d.year}"
        return f"{_DAYS[d.weekday()][:3]} {_MONTHS[d.month - 1][:3]} {d.day}"

    def code(self, n: int, alphabet: str = _ALNUM) -> str:
        return "".join(alphabet[self.r.randrange(len(alphabet))] for _ in range(n))

    def digits(self, n: int) -> str:
        return "".join(str(self.r.randrange(10)) for _ in range(n))

    def link(self, path: str, domain: str | None = None) -> str:
        domain = web_domain(domain or self["domain"])
        host = domain if domain.count(".") > 1 or self.chance(0.4) else f"www.{domain}"
        url = f"https://{host}/{path}"
        sep = "&" if "?" in path else "?"
        roll = self.r.random()
        if roll < 0.25:
            url += f"{sep}utm_source=email&utm_medium={self.pick(('transactional', 'crm', 'lifecycle'))}"
        elif roll < 0.45:
            url += f"{sep}ref={self.code(8).lower()}"
        return url

    def set_brand(self, brand: str, domain: str) -> None:
        self["brand"] = brand
        self["domain"] = domain
        # Prices follow the sender's country when the domain gives it away.
        if "cur" not in self:
            if domain.endswith((".uk", ".co.uk")):
                self["cur"] = "£"
            elif domain.endswith((".de", ".fr", ".nl", ".eu", ".es", ".it", ".pt")):
                self["cur"] = "€"

    def variant(
        self, options: Sequence[tuple[Sequence[str], Sequence[str | None]]]
    ) -> tuple[str, str | None]:
        """Pick a (subjects, bodies) pair so that the subject and body tell the same story."""
        subjects, bodies = self.pick(options)
        return self.one(subjects), self.one(bodies)

    def person(self, prefix: str) -> tuple[str, str]:
        """A named person with first/full keys (``{prefix}``, ``{prefix}_full``)."""
        first = self.pick(V.FIRST_NAMES)
        while first == self.get("name"):
            first = self.pick(V.FIRST_NAMES)
        last = self.pick(V.LAST_NAMES)
        self[prefix] = first
        self[f"{prefix}_full"] = f"{first} {last}"
        return first, last


_MAIL_ONLY_DOMAINS = {
    "facebookmail.com": "facebook.com",
    "redditmail.com": "reddit.com",
    "mail.instagram.com": "instagram.com",
}


def web_domain(domain: str) -> str:
    """The website of a sender domain (some brands mail from a domain that serves no pages)."""
    return _MAIL_ONLY_DOMAINS.get(domain, domain)


def _addr_local(first: str, last: str, r: random.Random) -> str:
    last = last.lower().replace("'", "").replace("ü", "u").replace("ć", "c")
    first = first.lower().replace("á", "a").replace("é", "e")
    style = r.randrange(5)
    if style == 0:
        return f"{first}.{last}"
    if style == 1:
        return f"{first[0]}{last}"
    if style == 2:
        return f"{first}{r.randrange(10, 99)}"
    if style == 3:
        return f"{first}_{last}"
    return f"{first}"


def personal_address(f: Fields, first: str, last: str) -> str:
    return f"{_addr_local(first, last, f.r)}@{f.pick(V.PERSONAL_DOMAINS)}"


def work_address(f: Fields, first: str, last: str, domain: str) -> str:
    return f"{_addr_local(first, last, f.r).replace('_', '.')}@{domain}"


def _recipient_last(f: Fields) -> str:
    return f.pick(V.LAST_NAMES)


def _later(clock: str, minutes: int) -> str:
    """``"10:30 AM"`` plus ``minutes``, in the same 12-hour format."""
    hm, ampm = clock.split()
    h, m = (int(x) for x in hm.split(":"))
    total = (h % 12 + (12 if ampm == "PM" else 0)) * 60 + m + minutes
    h24, m = divmod(total, 60)
    return f"{(h24 - 1) % 12 + 1}:{m:02d} {'PM' if h24 >= 12 else 'AM'}"


def _city(f: Fields) -> str:
    city, country = f.pick(V.CITIES)
    f["country"] = country
    return city


_GENERATORS: dict[str, Callable[[Fields], str]] = {
    "name": lambda f: f.pick(V.FIRST_NAMES),
    "last": _recipient_last,
    "full": lambda f: f"{f['name']} {f['last']}",
    "email": lambda f: personal_address(f, f["name"], f["last"]),
    # Country domains set the currency in set_brand; elsewhere mostly dollars.
    "cur": lambda f: "$" if f.chance(0.88) else f.pick(("€", "£")),
    "amount": lambda f: f.money(12, 420),
    "small_amount": lambda f: f.money(3, 60),
    "big_amount": lambda f: f.money(400, 4200),
    "date": lambda f: f.dstr(f.day(2, 18)),
    "date2": lambda f: f.dstr(f.day(20, 45)),
    "past": lambda f: f.dstr(f.day(-40, -1)),
    "today": lambda f: f.dstr(f.today),
    "time": lambda f: (
        f"{f.r.randint(7, 11)}:{f.pick(('00', '15', '30', '45'))} AM"
        if f.chance(0.5)
        else f"{f.r.randint(1, 6)}:{f.pick(('00', '15', '30', '45'))} PM"
    ),
    "time2": lambda f: f"{f.r.randint(1, 5)}:{f.pick(('00', '30'))} PM",
    "time_end": lambda f: _later(f["time"], f.pick((30, 30, 45, 60, 60, 90))),
    "month": lambda f: _MONTHS[(f.today.month - 2) % 12],
    "year": lambda f: str(f.today.year),
    "order": lambda f: f.pick(
        (
            f"#{f.digits(3)}-{f.digits(7)}-{f.digits(7)}",
            f"#{f.digits(8)}",
            f"ORD-{f.digits(6)}",
            f"W{f.digits(9)}",
            f"#{f.code(3)}{f.digits(5)}",
        )
    ),
    "ref": lambda f: f.code(6),
    "invoice_no": lambda f: f.pick(
        (f"INV-{f.digits(6)}", f"{f.digits(10)}", f"{f.today.year}-{f.digits(5)}")
    ),
    "account_no": lambda f: f"****{f.digits(4)}",
    "last4": lambda f: f.digits(4),
    "city": _city,
    # Reading "city" sets "country" as a side effect, so the two always match.
    "country": lambda f: (f["city"], dict.__getitem__(f, "country"))[1],
    "device": lambda f: f.pick(V.DEVICES),
    "ip": lambda f: (
        f"{f.r.randint(23, 212)}.{f.r.randint(0, 255)}.{f.r.randint(0, 255)}.{f.r.randint(1, 254)}"
    ),
    "product": lambda f: f.pick(V.PRODUCTS),
    "product2": lambda f: f.pick(V.PRODUCTS),
    "qty": lambda f: str(f.r.choice((1, 1, 1, 2, 3))),
    "pct": lambda f: str(f.pick((10, 15, 20, 25, 30, 40, 50, 60, 70))),
    "promo_code": lambda f: (
        f.pick(("SAVE", "EXTRA", "HELLO", "WELCOME", "SPRING", "VIP", "TAKE")) + f.digits(2)
    ),
    "phone": lambda f: (
        f"1-800-{f.digits(3)}-{f.digits(4)}" if f.chance(0.7) else f"+44 20 {f.digits(4)} {f.digits(4)}"
    ),
    "street_addr": lambda f: f"{f.r.randint(1, 9800)} {f.pick(V.STREETS)}, {f.pick(V.CITIES)[0]}",
    "company": lambda f: f.pick(V.COMPANIES)[0],
    "topic": lambda f: f.pick(V.WORK_TOPICS),
    "doc": lambda f: f.pick(V.WORK_DOCS),
    "kid": lambda f: f.pick(V.KIDS),
    "grade": lambda f: f.pick(V.GRADES),
    "unsub": lambda f: f.link(f.pick(("unsubscribe", "email/preferences", "u/manage", "optout"))),
    "help": lambda f: f.link(f.pick(("help", "support", "contact-us", "help/center"))),
}
