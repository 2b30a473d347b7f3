"""Renderers for the 20 taxonomy categories (the plain, unambiguous form of each).

Each renderer takes the email's :class:`Fields`, picks a sub-kind (e.g. a bill may be a
utility bill, a card payment, rent or a final notice) and assembles sender, subject and body
from interchangeable parts. The label is the category the renderer is registered under; the
descriptions in ``golden_set/taxonomy.yaml`` decide what each renderer may say (a receipt
never asks for money, a statement never has an amount due, a newsletter sells nothing).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from feedbackloop.synth import _vocab as V
from feedbackloop.synth._fields import Draft, Fields, personal_address, work_address

# --- shared parts --------------------------------------------------------------------------

GREET_BRAND = (
    "Hi {name},",
    "Hello {name},",
    "Dear {full},",
    "Hi there,",
    "Hello,",
    "Dear Customer,",
    "{name},",
    "Dear {name},",
)
GREET_NEUTRAL = ("Hi {name},", "Hello {name},", "Dear {full},", "Hello,", "Dear Customer,", "Dear {name},")
GREET_PERSON = ("Hi {name},", "Hey {name},", "{name},", "Hi {name}!", "Hello {name},", "Hey!", "Hiya {name},")
SIGN_BRAND = (
    "The {brand} Team",
    "Thanks,\nThe {brand} team",
    "Sincerely,\n{brand} Customer Care",
    "— {brand}",
    "Best regards,\n{brand} Support",
    "Thank you,\n{brand}",
    "Warm regards,\nYour friends at {brand}",
)
FOOT_TX = (
    "This is an automated message. Please do not reply to this email.",
    "© {year} {brand}. All rights reserved.\n{street_addr}",
    "Questions? Visit {help} or call us at {phone}.",
    "You're receiving this email because you have an account with {brand}.\nPrivacy Policy | Terms of Service",
    "Please do not reply to this message; replies to this address are not monitored.\n{brand} · {street_addr}",
    "Need help? Our support team is available 24/7 at {help}.",
)
FOOT_MKT = (
    "You're receiving this email because you subscribed to {brand} emails.\nUnsubscribe: {unsub}",
    "Don't want these emails? Unsubscribe at {unsub}\n{brand} · {street_addr}",
    "*Offer valid through {date2}. Exclusions apply. See site for details.\nUnsubscribe | View in browser | Privacy",
    "Update your email preferences or unsubscribe: {unsub}\n© {year} {brand}",
    "View this email in your browser.\nYou can unsubscribe at any time: {unsub}",
)
SIGNOFF_PERSON = (
    "Cheers,",
    "Love,",
    "xx",
    "Talk soon,",
    "Best,",
    "Hugs,",
    "See ya,",
    "Thanks!",
    "Take care,",
)
SIGNOFF_WORK = (
    "Best,",
    "Thanks,",
    "Thanks!",
    "Cheers,",
    "Regards,",
    "Best regards,",
    "Thanks in advance,",
    "—",
)


def brand_body(
    f: Fields,
    core: list[str | None],
    *,
    greet: tuple[str, ...] = GREET_BRAND,
    footer: tuple[str, ...] = FOOT_TX,
    p_greet: float = 0.75,
    p_sign: float = 0.7,
    p_foot: float = 0.65,
) -> str:
    """Greeting, core paragraphs, sign-off and footer, each optional, joined by blank lines."""
    parts: list[str] = []
    if f.chance(p_greet):
        parts.append(f.one(greet))
    parts.extend(p for p in core if p)
    if f.chance(p_sign):
        parts.append(f.one(SIGN_BRAND))
    if f.chance(p_foot):
        parts.append(f.one(footer))
    return "\n\n".join(parts)


def brand_sender(
    f: Fields, locals_: tuple[str, ...], display: str | None = None, subdomains: tuple[str, ...] = ("",)
) -> str:
    sub = f.pick(subdomains)
    local = f.pick(locals_)
    name = display or f["brand"]
    return f"{name} <{local}@{sub}{f['domain']}>"


def person_body(
    f: Fields,
    core: list[str | None],
    signer: str,
    *,
    greet: tuple[str, ...] = GREET_PERSON,
    signoffs: tuple[str, ...] = SIGNOFF_PERSON,
    p_greet: float = 0.8,
) -> str:
    parts: list[str] = []
    if f.chance(p_greet):
        parts.append(f.one(greet))
    parts.extend(p for p in core if p)
    parts.append(f"{f.pick(signoffs)}\n{signer}")
    return "\n\n".join(parts)


def quoted(f: Fields, who: str, address: str, text: str, when: str | None = None) -> str:
    """An earlier message quoted below a reply, as mail clients do."""
    when = when or f"{f['past']} at {f['time']}"
    lines = "\n".join(f"> {ln}" if ln else ">" for ln in text.split("\n"))
    style = f.r.randrange(3)
    if style == 0:
        return f"On {when}, {who} <{address}> wrote:\n{lines}"
    if style == 1:
        return f"-----Original Message-----\nFrom: {who} <{address}>\nSent: {when}\n\n{text}"
    return f"{who} wrote on {when}:\n{lines}"


def work_signature(f: Fields, first: str, full: str, company: str) -> str:
    style = f.r.randrange(4)
    if style == 0:
        return first
    if style == 1:
        return f"{full}\n{f.pick(V.JOB_TITLES)} | {company}"
    if style == 2:
        return f"{full}\n{f.pick(V.JOB_TITLES)}\n{company} · {f['phone']}"
    return f"{first}\n\nSent from my iPhone" if f.chance(0.5) else f"{full} | {company}"


WORK_DISCLAIMER = (
    "CONFIDENTIALITY NOTICE: This email and any attachments are intended only for the named recipient "
    "and may contain confidential information. If you received it in error, please notify the sender and delete it.",
    "This message is intended for the addressee only. Please consider the environment before printing this email.",
)


# --- mail categories -----------------------------------------------------------------------


def security_alert(f: Fields) -> Draft:
    f.set_brand(*f.pick(V.ACCOUNT_SERVICES + V.BANKS[:8]))
    f["secure"] = f.link(
        f.pick(("security", "account/security", "settings/security", "myaccount/devices", "signin/recovery"))
    )
    kind = f.r.randrange(6)
    reassure = (
        "{brand} will never ask for your password or verification codes by email.",
        "We'll never ask you to share your password. If in doubt, open the {brand} app directly instead of clicking links.",
        None,
    )
    if kind == 0:
        subject = f.one(
            (
                "New sign-in to your {brand} account",
                "Security alert: new sign-in from {device}",
                "Was this you? New login near {city}",
                "{brand}: new sign-in detected",
                "New login to {brand} from {device}",
                "Security alert for {email}",
            )
        )
        core = [
            f.one(
                (
                    "We noticed a new sign-in to your {brand} account ({email}) from {device} near {city}, {country}.",
                    "Your {brand} account was just used to sign in on {device} near {city}, {country}.",
                    "Someone signed in to your account {email} on {today} at {time} from {device}.",
                )
            ),
            f.fmt(
                "Device: {device}\nLocation: {city}, {country} (approximate)\nIP address: {ip}\nTime: {today}, {time}"
            )
            if f.chance(0.55)
            else None,
            f.one(
                (
                    "If this was you, you can ignore this message.",
                    "If this was you, there's nothing else you need to do.",
                    "If you recently signed in, no action is needed.",
                )
            ),
            f.one(
                (
                    "If you don't recognize this activity, review your recent sign-ins and change your password at {secure}.",
                    "Didn't sign in? Secure your account now: go to {secure} and remove any device you don't know.",
                    "If this wasn't you, someone may have your password. Change it right away and turn on two-step verification.",
                )
            ),
            f.one(reassure) if f.chance(0.5) else None,
        ]
        actions = ["review_security", "change_password", "enable_2fa"]
    elif kind == 1:
        subject = f.one(
            (
                "Your {brand} password was changed",
                "Password change confirmation",
                "Your password has been updated",
                "{brand} account: password reset completed",
            )
        )
        core = [
            f.one(
                (
                    "The password for your {brand} account {email} was changed on {today} at {time}.",
                    "This is a confirmation that the password for your {brand} account was just reset.",
                    "Your {brand} password was successfully changed from {device}.",
                )
            ),
            f.one(
                (
                    "If you made this change, you don't need to do anything else.",
                    "If this was you, you can safely disregard this email.",
                )
            ),
            f.one(
                (
                    "If you didn't change your password, your account may be compromised. Reset it now at {secure} and contact {brand} support.",
                    "Didn't do this? Recover your account immediately at {secure}; we've signed you out of other devices as a precaution.",
                )
            ),
        ]
        actions = ["change_password", "review_security", "contact_support"]
    elif kind == 2:
        subject, lead = f.variant(
            (
                (
                    ("Two-step verification was turned off", "2-Step Verification turned off for {email}"),
                    (
                        "Two-step verification was turned off for your {brand} account {email} on {today}. Your account is now protected by your password only.",
                    ),
                ),
                (
                    ("A new verification method was added", "2-Step Verification settings changed"),
                    ("You added {device} as a verification method for your {brand} account.",),
                ),
                (
                    (
                        "A new phone number was added for verification",
                        "New sign-in phone number on your {brand} account",
                    ),
                    (
                        "The phone number ending in {last4} was added to your {brand} account for sign-in codes.",
                    ),
                ),
                (
                    (
                        "Your authenticator app was removed",
                        "Security settings changed: authenticator removed",
                    ),
                    (
                        "The authenticator app linked to your {brand} account was removed on {today} at {time}.",
                    ),
                ),
            )
        )
        core = [
            lead,
            f.one(
                (
                    "If this wasn't you, turn two-step verification back on and review your security settings at {secure}.",
                    "If you didn't make this change, secure your account right away: {secure}",
                    "Not you? Review your account security and sign out of unknown devices at {secure}.",
                )
            ),
            f.one(reassure) if f.chance(0.4) else None,
        ]
        actions = ["enable_2fa", "review_security", "change_password"]
    elif kind == 3:
        f["app"] = f.pick(
            ("Calendar Sync Pro", "MailMerge Helper", "FitTrack", "PhotoBackup", "Zapier", "IFTTT")
        )
        subject = f.one(
            (
                "A new device was added to your account",
                "New app connected to your {brand} account",
                "{brand}: new device signed in",
                "You authorized a new app",
            )
        )
        core = [
            f.one(
                (
                    "{device} was added to your {brand} account on {today}. It can now access your account without a verification code.",
                    'A third-party app, "{app}", was granted access to your {brand} account ({email}).',
                    "Your {brand} account is now signed in on a new device: {device}.",
                )
            ),
            f.one(
                ("If you recognize this, you're all set.", "If this was you, no further action is needed.")
            ),
            f.one(
                (
                    "If you don't recognize it, remove it from your devices list at {secure} and change your password.",
                    "Don't recognize this? Revoke access at {secure} and review your recent security events.",
                )
            ),
        ]
        actions = ["review_security", "change_password", "contact_support"]
    elif kind == 4:
        subject = f.one(
            (
                "We blocked a sign-in attempt",
                "Unusual activity on your {brand} account",
                "Suspicious sign-in prevented",
                "Multiple failed sign-in attempts on your account",
                "Security alert: someone tried to sign in",
            )
        )
        core = [
            f.one(
                (
                    "We blocked an attempt to sign in to your {brand} account from {city}, {country}. The sign-in used your correct password.",
                    "We detected several failed attempts to sign in to {email} in the last hour from an unfamiliar location ({city}, {country}).",
                    "Someone tried to sign in to your {brand} account using {device}. We stopped it because it didn't match your usual activity.",
                )
            ),
            f.one(
                (
                    "Because the correct password was used, we recommend changing it now at {secure}.",
                    "Please review your recent activity and update your password if you haven't done so recently.",
                    "To keep your account safe, turn on two-step verification and check your recovery options at {secure}.",
                )
            ),
            f.one(reassure) if f.chance(0.5) else None,
        ]
        actions = ["change_password", "review_security", "enable_2fa", "contact_support"]
    else:
        subject, lead = f.variant(
            (
                (
                    ("Your recovery email was changed", "Account recovery information changed"),
                    ("The recovery email for your {brand} account was changed on {today}.",),
                ),
                (
                    ("Recovery phone number updated", "Account recovery information changed"),
                    ("The recovery phone for {email} is now a number ending in {last4}.",),
                ),
                (
                    (
                        "Your {brand} sign-in email was changed",
                        "The email address on your account was changed",
                    ),
                    ("The email address you use to sign in to {brand} was changed on {today} at {time}.",),
                ),
            )
        )
        core = [
            lead,
            f.one(
                (
                    "If you made this change, you don't need to do anything.",
                    "If this was you, no action is required.",
                )
            ),
            f.one(
                (
                    "If you didn't make this change, someone else might be using your account. Check and secure it now at {secure}.",
                    "If you don't recognize this change, contact {brand} support immediately and review your security settings.",
                )
            ),
        ]
        actions = ["review_security", "contact_support", "change_password"]
    sender = brand_sender(
        f,
        ("no-reply", "security", "account-security-noreply", "security-noreply", "alerts"),
        subdomains=("", "", "accounts.", "mail."),
    )
    return Draft(sender, subject, brand_body(f, core, greet=GREET_NEUTRAL, p_sign=0.6), actions)


_PHISH_THEMES = ("account", "billing", "parcel", "gift_card", "work", "mailbox", "tax", "document", "toll")


def phish_domain(f: Fields, theme: str) -> None:
    """Pick an imitated brand and its lookalike domain for a lure; sets brand, domain and ``bad``."""
    brand, bad = f.pick(V.PHISH_LOOKALIKES[theme])
    if "{company}" in bad:
        company, domain = f.pick(V.COMPANIES)
        f["company"] = company
        bad = bad.format(company=domain.split(".")[0])
    f.set_brand(brand, bad)
    f["bad"] = (
        f"https://{bad}/{f.pick(('verify', 'login', 'secure/update', 'account/confirm', 'signin', 'restore', 'auth'))}?id={f.code(10).lower()}"
    )


PHISH_URGENCY = (
    "Failure to verify within 24 hours will result in permanent suspension of your account.",
    "If you do not respond within 48 hours, your account will be closed and your funds frozen.",
    "This is your FINAL notice. Act now to avoid service interruption.",
    "Please complete this immediately, the link expires in 12 hours.",
)
PHISH_GREET = (
    "Dear Customer,",
    "Dear Valued Customer,",
    "Dear {email},",
    "Hello,",
    "Dear User,",
    "Attention,",
    "Dear Member,",
)


def phishing(f: Fields) -> Draft:
    theme = f.pick(_PHISH_THEMES)
    actions = ["report_phishing", "delete"]
    urgency = PHISH_URGENCY
    if theme == "gift_card":
        company, domain = f.pick(V.COMPANIES)
        f["company"] = company
        first, last = f.person("boss")
        bad = f"{first.lower()}.{last.lower().replace(chr(39), '')}.office@{f.pick(('gmail.com', 'outlook.com', 'execmail.net', domain.split('.')[0] + '-exec.com'))}"
        f["gc"] = f.pick(("Apple", "Google Play", "Amazon", "Visa", "Steam", "Target"))
        subject = f.one(
            (
                "Quick favor",
                "Are you available?",
                "Urgent request",
                "Need your help asap",
                "Confidential - are you at your desk?",
            )
        )
        core = [
            f.one(
                (
                    "Are you available right now? I'm in back-to-back meetings and need a quick favor.",
                    "I need you to handle a task for me discreetly, I can't take calls at the moment.",
                )
            ),
            f.one(
                (
                    "I need you to buy 5 {gc} gift cards ($100 each) for a client appreciation, I will reimburse you today.",
                    "Please purchase {gc} gift cards worth {big_amount} total and send me pictures of the codes on the back.",
                )
            ),
            f.one(
                (
                    "Reply to this email only, my phone is off. Keep this between us until it's done.",
                    "This is time sensitive, let me know as soon as you have them.",
                )
            ),
        ]
        body = person_body(
            f, core, f"{first}\nSent from my iPhone", greet=("{name},", "Hi {name},", "Hello,")
        )
        return Draft(f"{f['boss_full']} <{bad}>", subject, body, actions)
    phish_domain(f, theme)
    if theme == "account":
        subject = f.one(
            (
                "Your {brand} account has been suspended",
                "Action required: verify your identity",
                "[{brand}] Account limited - confirm your information",
                "Unusual activity: account on hold",
                "Your account access has been limited",
            )
        )
        core = [
            f.one(
                (
                    "We have detected unusual activity on your {brand} account and temporarily limited access for your protection.",
                    "Your {brand} account has been suspended due to a failed verification of your billing information.",
                    "We were unable to verify your account details. As a result your access has been limited.",
                )
            ),
            f.one(
                (
                    "To restore access, please log in and confirm your details here: {bad}",
                    "Click below to verify your identity and enter your username and password:\n{bad}",
                    "Kindly confirm your account information (full name, date of birth, card number) at {bad}",
                )
            ),
            f.one(urgency),
        ]
    elif theme == "billing":
        subject = f.one(
            (
                "Payment declined - update your billing details",
                "Your {brand} membership is on hold",
                "We couldn't process your payment",
                "Last reminder: update payment method",
                "Your subscription will be cancelled",
            )
        )
        core = [
            f.one(
                (
                    "We were unable to process your last payment, your {brand} membership will be cancelled.",
                    "Your subscription could not be renewed because your card was declined.",
                    "Your {brand} plan expired today and your files will be deleted.",
                )
            ),
            f.one(
                (
                    "Update your payment information now to continue enjoying {brand}: {bad}",
                    "Please re-enter your card number, expiry date and security code at {bad} to avoid cancellation.",
                )
            ),
            f.one(urgency),
        ]
    elif theme == "parcel":
        subject = f.one(
            (
                "Your parcel is on hold: customs fee unpaid",
                "Delivery attempt failed - reschedule now",
                "{brand}: package awaiting payment of {small_amount}",
                "Your shipment could not be delivered",
            )
        )
        core = [
            f.one(
                (
                    "Your package could not be delivered because a customs fee of {small_amount} has not been paid.",
                    "We attempted to deliver your parcel but no one was available. A redelivery fee of {small_amount} is required.",
                )
            ),
            f.one(
                (
                    "Pay the fee and choose a new delivery date here: {bad}",
                    "To release your parcel, confirm your address and pay with your card at {bad}",
                )
            ),
            f.one(
                (
                    "Parcels not claimed within 48 hours will be returned to sender.",
                    "Unpaid parcels are destroyed after 5 days.",
                )
            ),
        ]
    elif theme == "work":
        subject = f.one(
            (
                "Action required: update your direct deposit",
                "Payroll: confirm your bank details before Friday",
                "HR Notice: salary adjustment document",
                "W-2 correction - sign in to review",
                "Open enrollment: confirm your benefits",
            )
        )
        core = [
            f.one(
                (
                    "Due to a payroll system upgrade, all {company} employees must re-validate their direct deposit information before the next pay run.",
                    "A salary adjustment has been approved for you. Please review and sign the attached document.",
                    "There is an error on your tax form and your paycheck will be delayed unless you confirm your details.",
                )
            ),
            f.one(
                (
                    "Sign in with your company email and password at {bad} to continue.",
                    "Access the HR portal here: {bad} and enter your network credentials.",
                )
            ),
            f.one(urgency),
        ]
    elif theme == "mailbox":
        subject = f.one(
            (
                "Your mailbox storage is full",
                "Password expires today",
                "Email account deactivation notice",
                "Mail delivery suspended: 12 messages pending",
                "IT Helpdesk: verify your mailbox",
            )
        )
        core = [
            f.one(
                (
                    "Your mailbox has exceeded its storage limit. You will not be able to send or receive new messages.",
                    "Your email password expires today. Keep your current password by validating it below.",
                    "12 incoming messages are pending delivery because your account failed verification.",
                )
            ),
            f.one(
                (
                    "Validate your account to continue: {bad}",
                    "Click here to keep the same password: {bad}",
                    "Log in here to release your messages: {bad}",
                )
            ),
            "IT Service Desk",
        ]
    elif theme == "tax":
        subject = f.one(
            (
                "You are eligible for a tax refund of {amount}",
                "Tax refund notification",
                "Refund pending: confirm your bank account",
            )
        )
        core = [
            f.one(
                (
                    "After the last annual calculation of your fiscal activity we have determined that you are eligible to receive a tax refund of {amount}.",
                    "Our records show an overpayment. A refund of {amount} is waiting to be released to you.",
                )
            ),
            f.one(
                (
                    "Submit your bank account and card details at {bad} to receive your refund.",
                    "To claim it, fill in the secure form with your Social Security number and bank login: {bad}",
                )
            ),
            f.one(urgency),
        ]
    elif theme == "document":
        f.person("boss")
        subject = f.one(
            (
                "You have received a document to review and sign",
                "Invoice shared with you",
                "{brand}: secure file shared",
                "Completed: please review the agreement",
                '{boss_full} shared "{doc}" with you',
            )
        )
        core = [
            f.one(
                (
                    '{boss_full} sent you a document to review and sign: "{doc}.pdf".',
                    "A secure file has been shared with you. Sign in to view it before it expires.",
                )
            ),
            f.one(
                (
                    "REVIEW DOCUMENT: {bad}\nYou will need to sign in with your email password to access the file.",
                    "Open the document: {bad}",
                )
            ),
            "This link expires in 24 hours.",
        ]
    else:
        subject = f.one(
            (
                "Unpaid toll balance - pay now to avoid penalty",
                "Final notice: outstanding toll {small_amount}",
                "Your vehicle has an unpaid toll",
            )
        )
        core = [
            f.one(
                (
                    "Our records show an outstanding toll balance of {small_amount} for your vehicle.",
                    "You have an unpaid toll invoice. Late fees of {amount} will be applied.",
                )
            ),
            f.one(
                (
                    "Pay now at {bad} to avoid a penalty and suspension of your driving privileges.",
                    "Settle your balance today with your credit card: {bad}",
                )
            ),
        ]
    brand = f["brand"]
    sender = f"{f.pick((brand, brand + ' Support', brand + ' Security', brand + ' Service', brand))} <{f.pick(V.PHISH_SENDER_LOCALS)}@{f['domain']}>"
    body = brand_body(f, core, greet=PHISH_GREET, p_greet=0.85, p_sign=0.45, p_foot=0.3)
    return Draft(sender, subject, body, actions)


def bill_due(f: Fields) -> Draft:
    kind = f.r.randrange(7)
    f["due"] = f.dstr(f.day(3, 21))
    pay = (
        "Pay online at {pay_link} or set up AutoPay so you never miss a payment.",
        "You can pay in the {brand} app, online at {pay_link}, or by phone at {phone}.",
        "To avoid a late fee, please make sure your payment reaches us by {due}.",
        "Pay now: {pay_link}",
    )
    actions = ["pay_invoice", "set_payment_reminder", "view_statement", "contact_support"]
    if kind in (0, 1):
        brand, domain, what = f.pick(V.BILLERS)
        f.set_brand(brand, domain)
        f["what"] = what
        f["pay_link"] = f.link(f.pick(("pay", "billing/pay", "myaccount/bill", "payments")))
        subject = f.one(
            (
                "Your {brand} bill is ready",
                "Your {what} bill: {amount} due {due}",
                "{brand} bill for {month} - amount due {amount}",
                "Payment due {due}",
                "Your {month} {what} bill",
                "Reminder: your {brand} payment is due soon",
            )
        )
        core = [
            f.one(
                (
                    "Your {month} {what} bill is ready. The amount due is {amount}, payable by {due}.",
                    "Your latest {brand} bill of {amount} is due on {due}.",
                    "Here's your bill for account {account_no}: {amount} due by {due}.",
                )
            ),
            f.fmt(
                "Account number: {account_no}\nBilling period: {past} - {today}\nAmount due: {amount}\nDue date: {due}"
            )
            if f.chance(0.6)
            else None,
            f.one(pay),
        ]
    elif kind == 2:
        bank, domain = f.pick(V.BANKS)
        f.set_brand(bank, domain)
        f["card"] = f.pick(V.CARDS)
        f["min"] = f.money(25, 90)
        f["pay_link"] = f.link("payments")
        subject = f.one(
            (
                "Your {card} payment is due {due}",
                "Payment reminder: {brand} card ending in {last4}",
                "Minimum payment of {min} due {due}",
                "Don't forget: your credit card payment is due",
            )
        )
        core = [
            f.one(
                (
                    "This is a reminder that a payment on your {brand} {card} ending in {last4} is due on {due}.",
                    "Your credit card payment is coming up. Statement balance: {big_amount}. Minimum payment due: {min} by {due}.",
                )
            ),
            f.fmt("Statement balance: {big_amount}\nMinimum payment due: {min}\nPayment due date: {due}")
            if f.chance(0.5)
            else None,
            f.one(pay),
            f.one(
                (
                    "If you've already made this payment, thank you and please disregard this reminder.",
                    "Paying late may result in a fee of up to {cur}40.",
                )
            ),
        ]
    elif kind == 3:
        brand, domain, _ = f.pick(V.BILLERS[-6:-3] + (("Oakwood Apartments", "oakwoodliving.com", "rent"),))
        f.set_brand(brand, domain)
        f["pay_link"] = f.link("residents/pay-rent")
        f["rent"] = f.money(950, 3200)
        f["unit"] = f"{f.r.randint(1, 24)}{f.pick('ABCD')}"
        subject = f.one(
            (
                "Rent for {month} is due on the 1st",
                "Reminder: rent payment due {due}",
                "Your rent statement - {rent} due",
                "Rent due for unit {unit}",
            )
        )
        core = [
            f.one(
                (
                    "This is a friendly reminder that rent of {rent} for unit {unit} is due on {due}.",
                    "Your rent of {rent} is due {due}. A late fee of {cur}75 applies after the 5th.",
                )
            ),
            f.one(
                (
                    "Pay through the resident portal: {pay_link}",
                    "You can pay by bank transfer or in the resident portal at {pay_link}.",
                )
            ),
            "Thank you,\nProperty Management Office",
        ]
    elif kind == 4:
        brand, domain, what = f.pick(V.BILLERS[13:16] + V.BILLERS[20:21])
        f.set_brand(brand, domain)
        f["what"] = what
        f["pay_link"] = f.link("billing")
        subject = f.one(
            (
                "Your {what} premium is due",
                "Invoice {invoice_no}: payment due {due}",
                "Statement of account - balance due {amount}",
                "Your bill from {brand}",
            )
        )
        core = [
            f.one(
                (
                    "Your {what} premium of {amount} for policy {ref} is due on {due}.",
                    "You have a balance of {amount} for services on {past}. Please pay by {due}.",
                    "Invoice {invoice_no} for {amount} is now due. Payment is expected by {due}.",
                )
            ),
            f.one(pay),
            f.one(
                (
                    "If you have questions about this bill, call us at {phone}.",
                    "Questions about your balance? Contact our billing team.",
                )
            ),
        ]
    elif kind == 5:
        brand, domain, what = f.pick(V.BILLERS)
        f.set_brand(brand, domain)
        f["what"] = what
        f["pay_link"] = f.link("pay")
        subject = f.one(
            (
                "FINAL NOTICE: past due balance of {amount}",
                "Overdue: your {brand} account is past due",
                "Past due notice - avoid service interruption",
                "Second reminder: payment overdue",
            )
        )
        core = [
            f.one(
                (
                    "Our records show that your balance of {amount} was due on {past} and remains unpaid.",
                    "Your account {account_no} is past due. The overdue amount is {amount}.",
                    "We haven't received your payment of {amount} that was due {past}.",
                )
            ),
            f.one(
                (
                    "To avoid interruption of your {what} service, please pay by {due}.",
                    "If payment is not received by {due}, a late fee will be added and your account may be sent to collections.",
                )
            ),
            f.one(pay),
            f.one(
                (
                    "If you are having trouble paying, call us at {phone} to discuss a payment plan.",
                    "If you have already paid, please disregard this notice.",
                )
            ),
        ]
    else:
        brand, domain = f.pick(
            V.COMPANIES
            + (("Figma", "figma.com"), ("Atlassian", "atlassian.com"), ("Squarespace", "squarespace.com"))
        )
        f.set_brand(brand, domain)
        f["pay_link"] = f.link(f"invoices/{f['invoice_no']}")
        subject = f.one(
            (
                "Invoice {invoice_no} from {brand} - due {due}",
                "Your invoice is due",
                "Payment request: {amount} due {due}",
                "{brand} invoice {invoice_no} is unpaid",
            )
        )
        core = [
            f.one(
                (
                    "Please find your invoice {invoice_no} for {amount}. Payment is due on {due}.",
                    "Invoice {invoice_no} ({amount}) for your {brand} subscription has not been paid yet. It is due {due}.",
                )
            ),
            f.fmt("Invoice: {invoice_no}\nAmount due: {amount}\nDue date: {due}\nStatus: UNPAID"),
            f.one(("Pay securely online: {pay_link}", "Pay by card or bank transfer at {pay_link}.")),
        ]
    sender = brand_sender(
        f,
        ("billing", "no-reply", "payments", "accounts", "noreply", "customercare"),
        subdomains=("", "", "e.", "billing."),
    )
    return Draft(sender, subject, brand_body(f, core, greet=GREET_NEUTRAL), actions)


def fraud_alert(f: Fields) -> Draft:
    f.set_brand(*f.pick(V.BANKS))
    f["card"] = f.pick(V.CARDS)
    f["merchant"] = f.pick(
        (
            "BESTBUY.COM",
            "WALMART #4821",
            "APPLE.COM/BILL",
            "SHELL OIL 5573",
            "AMZN Mktp US",
            "TARGET 00012",
            "UBER *TRIP",
            "STEAMGAMES.COM",
            "NIKE.COM",
            "ZARA ONLINE",
            "ALIEXPRESS",
            "AIRBNB * HMQ2",
            "PAYPAL *EBAY",
        )
    )
    f["fraud_amount"] = f.money(45, 1900)
    f["phone_last"] = f.digits(4)
    kind = f.r.randrange(4)
    tx = "Merchant: {merchant}\nAmount: {fraud_amount}\nDate: {today}, {time}\nCard: {card} ending in {last4}"
    never = (
        "We will never ask for your PIN, online banking password or full card number.",
        '{brand} will never ask you to share a one-time passcode or move money to a "safe account".',
        "For your security, do not reply with your card number; we already have it.",
    )
    if kind == 0:
        subject = f.one(
            (
                "Did you make this purchase?",
                "Please verify a recent transaction",
                "Fraud alert: {card} ending in {last4}",
                "Suspicious transaction on your card",
                "Action needed: confirm a charge of {fraud_amount}",
            )
        )
        core = [
            f.one(
                (
                    "We noticed an unusual transaction on your {brand} {card} ending in {last4} and want to make sure it was you.",
                    "To protect your account, we need you to confirm the following transaction.",
                )
            ),
            f.fmt(tx),
            f.one(
                (
                    'If you recognize this purchase, tap "Yes, it was me" in the {brand} app. If not, tap "No" and we\'ll block the card and send a new one.',
                    "Reply YES if you made this purchase or NO if you didn't to the text we sent to your phone ending in {phone_last}. You can also confirm in the {brand} app.",
                    "Please confirm or deny the charge in the {brand} app or by calling the number on the back of your card.",
                )
            ),
            f.one(never),
        ]
        actions = ["verify_transaction", "contact_support", "review_security"]
    elif kind == 1:
        subject = f.one(
            (
                "Your card has been temporarily blocked",
                "We've locked your {card} for your protection",
                "Important: card ending {last4} on hold",
                "Your debit card is locked due to suspected fraud",
            )
        )
        core = [
            f.one(
                (
                    "We've temporarily blocked your {brand} {card} ending in {last4} because we noticed transactions that may be fraudulent.",
                    "Your card ending in {last4} was locked after a suspicious attempt to charge {fraud_amount} at {merchant}.",
                )
            ),
            f.one(
                (
                    "Please review recent transactions in the {brand} app. If everything looks right, you can unlock the card there.",
                    "To remove the block, confirm your recent transactions in the app or call us at the number on the back of your card.",
                )
            ),
            f.one(never),
        ]
        actions = ["verify_transaction", "contact_support", "review_security"]
    elif kind == 2:
        subject = f.one(
            (
                "Transaction declined: was this you?",
                "We declined a charge of {fraud_amount}",
                "Declined purchase at {merchant}",
            )
        )
        core = [
            f.one(
                (
                    "We declined a transaction of {fraud_amount} at {merchant} on your card ending in {last4} because it looked unusual.",
                    "A purchase attempt on your {card} was declined to protect you from possible fraud.",
                )
            ),
            f.fmt(tx) if f.chance(0.6) else None,
            f.one(
                (
                    "If you made this purchase, confirm it in the {brand} app and try again.",
                    "Was it you? Let us know in the app so we can approve future transactions.",
                )
            ),
            f.one(never),
        ]
        actions = ["verify_transaction", "review_security", "contact_support"]
    else:
        subject = f.one(
            (
                "Unusual activity on your account",
                "Please review recent activity on your {brand} account",
                "Potential fraud on your checking account",
            )
        )
        core = [
            f.one(
                (
                    "We spotted an outgoing transfer of {fraud_amount} from your account {account_no} to a new payee that doesn't match your usual activity.",
                    "A new payee was added and a payment of {fraud_amount} is scheduled from your account. We've paused it until you confirm.",
                )
            ),
            f.one(
                (
                    "Confirm or cancel the payment in the {brand} app under Alerts.",
                    "Call our fraud team on the number on the back of your card to confirm or cancel.",
                )
            ),
            f.one(never),
        ]
        actions = ["verify_transaction", "contact_support", "review_security"]
    sender = brand_sender(
        f,
        ("fraud-alerts", "alerts", "no-reply", "cardservices", "fraud.prevention"),
        subdomains=("", "alerts.", "notify."),
    )
    return Draft(sender, subject, brand_body(f, core, greet=GREET_NEUTRAL, p_foot=0.55), actions)


def receipt(f: Fields) -> Draft:
    kind = f.r.randrange(7)
    f["total"] = f.money(9, 380)
    f["card_type"] = f.pick(("Visa", "Mastercard", "Amex", "Discover", "Apple Pay", "PayPal"))
    actions = ["save_receipt", "request_refund", "contact_support"]
    if kind == 0:
        f.set_brand(*f.pick(V.RETAILERS))
        subject = f.one(
            (
                "Order confirmation {order}",
                "Thanks for your order!",
                "Your {brand} order {order}",
                "We've received your order",
                "{brand}: order placed",
            )
        )
        core = [
            f.one(
                (
                    "Thanks for shopping with us! We've received your order {order} and we're getting it ready.",
                    "Your order {order} has been placed. We'll let you know when it's on its way.",
                    "Thank you for your purchase. Here's a summary of your order.",
                )
            ),
            f.fmt(
                "Order {order}\n{qty} x {product}\n1 x {product2}\nSubtotal: {total}\nPaid with {card_type} ending in {last4}"
            ),
            f.one(
                (
                    "Keep this email for your records.",
                    "Need to make a change? You can cancel within 30 minutes from Your Orders.",
                    "Returns are free within 30 days.",
                )
            ),
        ]
    elif kind == 1:
        brand, domain, what = f.pick(V.BILLERS)
        f.set_brand(brand, domain)
        f["what"] = what
        subject = f.one(
            (
                "Payment received - thank you",
                "We received your payment of {total}",
                "Payment confirmation for account {account_no}",
                "Your {brand} payment receipt",
                "Thanks for your payment",
            )
        )
        core = [
            f.one(
                (
                    "Thank you! We received your payment of {total} on {today} for account {account_no}.",
                    "This confirms your {what} payment of {total}. Your balance is now {cur}0.00.",
                    "Your payment has been processed successfully.",
                )
            ),
            f.fmt(
                "Confirmation number: {ref}\nAmount paid: {total}\nPayment date: {today}\nRemaining balance: {cur}0.00"
            )
            if f.chance(0.7)
            else None,
            f.one(
                (
                    "No further action is needed.",
                    "It may take 1-2 business days to appear on your account.",
                    None,
                )
            ),
        ]
    elif kind == 2:
        f.set_brand(*f.pick(V.DIGITAL_STORES))
        f["item"] = f.pick(
            (
                "iCloud+ 200 GB",
                "Monument Valley 3",
                "Spotify Premium (1 month)",
                "Audible credit",
                "Hades II",
                "Duolingo Super",
                "YouTube Premium",
                "Procreate",
                "Kindle: Tomorrow, and Tomorrow",
            )
        )
        f["digits"] = f.digits(11)
        subject = f.one(
            (
                "Your receipt from {brand}",
                "Your {brand} receipt",
                "Receipt for your purchase",
                "Your order: {item}",
            )
        )
        core = [
            f.fmt(
                "Receipt\nOrder ID: {ref}{last4}\nDocument no.: {digits}\n\n{item} ....... {small_amount}\nTax ....... {cur}0.00\nTotal ....... {small_amount}"
            ),
            f.one(("Billed to {card_type} ····{last4}.", "Purchased on {today}.")),
            f.one(
                (
                    "If you didn't make this purchase, you can report a problem within 90 days.",
                    "Report a problem or request a refund: {help}",
                )
            ),
        ]
    elif kind == 3:
        f.set_brand(*f.pick(V.FOOD_APPS))
        f["resto"] = f.pick(
            (
                "Thai Basil",
                "Luigi's Pizzeria",
                "Sakura Sushi",
                "Burger Barn",
                "Green Bowl",
                "Taco Loco",
                "Dumpling House",
            )
        )
        subject = f.one(
            (
                "Your {brand} order receipt",
                "Thanks for ordering from {resto}",
                "Receipt: {resto}",
                "Order from {resto} delivered",
            )
        )
        core = [
            f.one(
                (
                    "Thanks for your order from {resto}. Here's your receipt.",
                    "Enjoy your meal! Your order from {resto} has been delivered.",
                )
            ),
            f.fmt(
                "Subtotal: {small_amount}\nDelivery fee: {cur}2.99\nTip: {cur}4.00\nTotal charged: {total}"
            ),
            f.one(
                (
                    "Something wrong with your order? Get help in the app.",
                    "Rate your Dasher in the app.",
                    None,
                )
            ),
        ]
    elif kind == 4:
        f.set_brand(
            *f.pick(
                V.COMPANIES + (("Notion", "makenotion.com"), ("Slack", "slack.com"), ("Figma", "figma.com"))
            )
        )
        subject = f.one(
            (
                "Invoice {invoice_no} - paid",
                "Receipt for invoice {invoice_no}",
                "[{brand}] Payment receipt",
                "Your {brand} subscription receipt",
            )
        )
        core = [
            f.one(
                (
                    "Thanks! We've charged {total} to your card ending in {last4} for your {brand} subscription.",
                    "Invoice {invoice_no} has been paid in full. Thank you for your business.",
                )
            ),
            f.fmt("Invoice: {invoice_no}\nAmount: {total}\nStatus: PAID\nPaid on: {today}"),
            f.one(
                (
                    "A PDF copy is attached for your records.",
                    "You can download past invoices from your billing settings.",
                )
            ),
        ]
    elif kind == 5:
        f.set_brand(*f.pick(V.RETAILERS))
        subject = f.one(
            (
                "Your refund has been processed",
                "Refund confirmation for order {order}",
                "We've issued your refund",
                "Return received - refund on the way",
            )
        )
        core = [
            f.one(
                (
                    "We've received your return and issued a refund of {total} to your original payment method.",
                    "Your refund of {total} for order {order} has been processed.",
                )
            ),
            f.one(
                (
                    "Please allow 3-5 business days for the refund to appear on your statement.",
                    "Refunds usually show up within a week.",
                )
            ),
            f.one(("Returned item: {product}", None)),
        ]
    else:
        f.set_brand(
            *f.pick(
                (
                    ("Venmo", "venmo.com"),
                    ("PayPal", "paypal.com"),
                    ("Zelle", "zellepay.com"),
                    ("Cash App", "cash.app"),
                    ("Wise", "wise.com"),
                )
            )
        )
        f.person("payee")
        f["note"] = f.pick(
            ("pizza 🍕", "rent share", "concert tickets", "dinner", "utilities March", "birthday gift")
        )
        f["digits4"] = f.digits(4)
        subject = f.one(
            (
                "You paid {payee_full} {total}",
                "Receipt for your payment to {payee_full}",
                "You sent {total}",
                "Payment sent",
            )
        )
        core = [
            f.one(
                (
                    "You sent {total} to {payee_full} on {today}.",
                    "Your payment of {total} to {payee_full} is complete.",
                )
            ),
            f.fmt('Note: "{note}"\nTransaction ID: {ref}{digits4}'),
            f.one(
                ("This payment will appear on your statement.", "Funds were taken from your balance.", None)
            ),
        ]
    sender = brand_sender(
        f,
        ("no-reply", "orders", "receipts", "auto-confirm", "noreply", "billing"),
        subdomains=("", "", "email.", "mail."),
    )
    return Draft(sender, subject, brand_body(f, core), actions)


def shipping_update(f: Fields) -> Draft:
    carrier, domain, pattern = f.pick(V.CARRIERS)
    via_retailer = f.chance(0.4)
    if via_retailer:
        f.set_brand(*f.pick(V.RETAILERS))
        f["carrier"] = carrier
    else:
        f.set_brand(carrier, domain)
        f["carrier"] = carrier
    f["tracking"] = pattern.format(a=f.code(6), b=f.digits(8), c=f.digits(4))
    f["track"] = f.link(f"track?num={f['tracking']}", domain=domain)
    f["eta"] = f.dstr(f.day(1, 6))
    f["where"] = f.pick(
        (
            "at the front door",
            "with the building reception",
            "in your mailbox",
            "at the back porch",
            "with a neighbor",
        )
    )
    f["reason"] = f.pick(("severe weather", "high volumes", "a transport issue", "a sorting center backlog"))
    kind = f.r.randrange(6)
    actions = ["track_package", "reschedule_delivery", "contact_support"]
    if kind == 0:
        subject = f.one(
            (
                "Your order has shipped!",
                "Shipped: {product}",
                "Your package is on its way",
                "{brand} order {order} has shipped",
                "Good news - your order is on the way",
            )
        )
        core = [
            f.one(
                (
                    "Your order {order} is on its way. Estimated delivery: {eta}.",
                    "Your package has left our warehouse and is on its way with {carrier}.",
                    "We've shipped your {product}. It should arrive by {eta}.",
                )
            ),
            f.fmt("Carrier: {carrier}\nTracking number: {tracking}\nEstimated delivery: {eta}"),
            f.one(("Track your package: {track}", "Follow your delivery at {track}")),
        ]
        actions = ["track_package", "contact_support"]
    elif kind == 1:
        subject = f.one(
            (
                "Out for delivery today",
                "Your package is out for delivery",
                "Arriving today: {product}",
                "Your {carrier} delivery is on the way",
            )
        )
        core = [
            f.one(
                (
                    "Your package {tracking} is out for delivery and should arrive today between {time} and {time_end}.",
                    "Great news! Your {brand} order will arrive today.",
                )
            ),
            f.one(
                (
                    "Not going to be home? You can choose a safe place or a nearby pickup point: {track}",
                    "Track your driver in real time: {track}",
                )
            ),
        ]
    elif kind == 2:
        subject = f.one(
            (
                "Delivered: your package",
                "Your package was delivered",
                "Delivered: {product}",
                "{carrier}: package delivered",
            )
        )
        core = [
            f.one(
                (
                    "Your package was delivered on {today} at {time}. It was left {where}.",
                    "Your order {order} has been delivered.",
                )
            ),
            f.one(
                (
                    "If you can't find your package, check around your property or with neighbors before contacting us.",
                    "See the delivery photo: {track}",
                    None,
                )
            ),
        ]
        actions = ["track_package", "contact_support"]
    elif kind == 3:
        subject = f.one(
            (
                "Delivery update: your package is delayed",
                "Your shipment is running late",
                "Delay notice for tracking {tracking}",
                "Weather delay: your package",
            )
        )
        core = [
            f.one(
                (
                    "Your package is delayed due to {reason}. The new estimated delivery date is {eta}.",
                    "We're sorry - your shipment {tracking} is running behind schedule. New estimated delivery: {eta}.",
                )
            ),
            f.one(
                ("You don't need to do anything; we'll keep you updated.", "Track the latest status: {track}")
            ),
        ]
    elif kind == 4:
        subject = f.one(
            (
                "We missed you - delivery attempted",
                "Delivery attempt failed",
                "Sorry we missed you",
                "Action needed: reschedule your delivery",
            )
        )
        core = [
            f.one(
                (
                    "We tried to deliver your package {tracking} today at {time} but no one was available to sign for it.",
                    "Our driver couldn't deliver your parcel today because the address was not accessible.",
                )
            ),
            f.one(
                (
                    "We'll try again on {eta}, or you can reschedule or choose a pickup location at {track}.",
                    "Rearrange delivery or collect it from your local depot after {eta}: {track}",
                )
            ),
        ]
    else:
        subject = f.one(
            (
                "Your shipment is in customs",
                "Customs clearance update",
                "Your international parcel is being processed",
            )
        )
        core = [
            f.one(
                (
                    "Your package {tracking} arrived in {country} and is being processed by customs.",
                    "Your international shipment is undergoing customs clearance. This can take 1-3 business days.",
                )
            ),
            f.one(
                (
                    "No action is needed right now; we'll notify you once it's released.",
                    "Track progress at {track}",
                )
            ),
        ]
    sender = brand_sender(
        f,
        ("shipment-tracking", "no-reply", "tracking", "shipping", "updates", "mcinfo"),
        subdomains=("", "", "email.", "notifications."),
    )
    return Draft(sender, subject, brand_body(f, core, p_greet=0.6), actions)


def _meeting(f: Fields) -> str:
    return f.pick(
        (
            "Weekly sync",
            "Sprint planning",
            "1:1",
            "Q{q} planning review",
            "Design review: {topic}",
            "Project kickoff",
            "Budget check-in",
            "Customer call prep",
            "Retro",
            "Offsite planning",
            "Interview debrief",
            "Roadmap walkthrough",
        )
    )


def calendar_invite(f: Fields) -> Draft:
    kind = f.r.randrange(4)
    f["q"] = str(f.r.randint(1, 4))
    when = f.day(3, 18)
    f["when_date"] = f.dstr(when)
    f["rsvp_by"] = f.dstr(when - timedelta(days=f.r.randint(1, 2)))
    actions = ["add_to_calendar", "rsvp", "reply"]
    if kind in (0, 1):
        company, domain = f.pick(V.COMPANIES)
        f["company"] = company
        first, last = f.person("org")
        org_addr = work_address(f, first, last, domain)
        f["meeting"] = f.fmt(_meeting(f))
        f["where"] = f.pick(
            (
                "Google Meet",
                "Zoom",
                "Microsoft Teams",
                "Room 4B",
                "Conference room Atlas",
                "Café on 3rd floor",
            )
        )
        f["mcode"] = f"{f.code(3).lower()}-{f.code(4).lower()}-{f.code(3).lower()}"
        f["zoom_id"] = f.digits(10)
        f["purpose"] = f.pick(
            (
                "go over the open questions",
                "align on next steps",
                "review the draft together",
                "plan the next sprint",
            )
        )
        if kind == 0:
            subject = f.fmt("Invitation: {meeting} @ {when_date} {time} - {time_end} ({email})")
            body = "\n\n".join(
                x
                for x in [
                    f.fmt("{org_full} has invited you to the following event."),
                    f.fmt(
                        "{meeting}\nWhen: {when_date} {time} – {time_end} (local time)\nWhere: {where}\nOrganizer: {org_full} <"
                        + org_addr
                        + ">"
                    ),
                    f.fmt("Guests:\n{org_full} - organizer\n{email}\n")
                    + "\n".join(f"{g} {f.pick(V.LAST_NAMES)}" for g in f.r.sample(V.FIRST_NAMES, 3)),
                    f.one(
                        (
                            "Join with Google Meet: https://meet.google.com/{mcode}",
                            "Join Zoom Meeting: https://zoom.us/j/{zoom_id}",
                            None,
                        )
                    ),
                    f.one(
                        (
                            "Going (you)?  Yes - Maybe - No   more options »",
                            "Reply for {email}: Yes, Maybe, No",
                        )
                    ),
                    "Invitation from Google Calendar. You are receiving this email because you are an attendee of the event."
                    if f.chance(0.6)
                    else None,
                ]
                if x
            )
        else:
            subject = f.fmt(
                f.pick(
                    (
                        "{meeting}",
                        "Invitation: {meeting}",
                        "{meeting} - {when_date}",
                        "Updated invitation: {meeting}",
                    )
                )
            )
            body = "\n\n".join(
                x
                for x in [
                    f.one(
                        (
                            "Hi all, setting up time to {purpose}.",
                            "Putting something on the calendar so we can {purpose}.",
                            "Hi {name}, sending an invite for us to {purpose}.",
                        )
                    ),
                    f.fmt("When: {when_date}, {time} - {time_end}\nWhere: {where}"),
                    f.one(
                        (
                            "Please accept or propose a new time if this doesn't work.",
                            "Let me know if you can't make it.",
                            "Accept | Tentative | Decline | Propose new time",
                        )
                    ),
                    f.fmt("{org}"),
                ]
                if x
            )
        sender = (
            f"{f['org_full']} <{org_addr}>"
            if kind == 1 or f.chance(0.5)
            else f"{f['org_full']} (Google Calendar) <calendar-notification@google.com>"
        )
        return Draft(sender, subject, body, actions)
    if kind == 2:
        first, last = f.person("host")
        f["occasion"] = f.pick(
            (
                "30th birthday",
                "housewarming",
                "baby shower",
                "graduation party",
                "engagement dinner",
                "summer BBQ",
                "retirement party",
                "game night",
                "book launch drinks",
            )
        )
        platform = f.pick(
            (
                ("Evite", "evite.com"),
                ("Paperless Post", "paperlesspost.com"),
                ("Partiful", "partiful.com"),
                (None, None),
            )
        )
        subject = f.one(
            (
                "You're invited: {host}'s {occasion}!",
                "{host_full} invited you to a {occasion}",
                "Save the date: {occasion} on {when_date}",
                "Invitation: {host}'s {occasion}",
            )
        )
        core = [
            f.one(
                (
                    "{host_full} has invited you to a {occasion}!",
                    "You're invited! Join us to celebrate {host}'s {occasion}.",
                )
            ),
            f.fmt("When: {when_date} at {time2}\nWhere: {street_addr}"),
            f.one(
                (
                    "Please RSVP by {rsvp_by}.",
                    "Will you be there? Reply Yes, No or Maybe by {rsvp_by}.",
                    "RSVP so we know how much food to get!",
                )
            ),
        ]
        if platform[0]:
            f.set_brand(*platform)
            sender = f"{f['host_full']} via {platform[0]} <invitations@{platform[1]}>"
            f["rsvp_link"] = f.link(f"event/{f.code(8).lower()}")
            core.append(f.one(("View invitation and RSVP: {rsvp_link}", "RSVP here: {rsvp_link}")))
        else:
            sender = f"{f['host_full']} <{personal_address(f, first, last)}>"
        return Draft(sender, subject, "\n\n".join(core), actions)
    first, last = f.person("friend")
    f["plan"] = f.pick(
        (
            "dinner at ours",
            "brunch at Lucia's",
            "a picnic in the park",
            "drinks after work",
            "a board game night",
            "a hike up Mount Tam",
            "the farmers market and lunch",
        )
    )
    f["plan_cap"] = f["plan"][0].upper() + f["plan"][1:]
    subject = f.one(
        (
            "{plan_cap} on {when_date}?",
            "Are you free {when_date}?",
            "Invite: {plan} {when_date}",
            "Join us {when_date}?",
        )
    )
    core = [
        f.one(
            (
                "We're doing {plan} on {when_date} at {time2} and would love for you to come!",
                "Would you like to join us for {plan} on {when_date}? Thinking {time2}.",
            )
        ),
        f.one(
            (
                "Can you let me know by {rsvp_by} if you can make it?",
                "Reply and let me know if you're in!",
                "RSVP by {rsvp_by} so I can book a table.",
            )
        ),
        f.one(("Bring {kid} too if you like.", "No need to bring anything.", None)),
    ]
    body = person_body(f, core, first)
    return Draft(f"{f['friend_full']} <{personal_address(f, first, last)}>", subject, body, actions)


def travel(f: Fields) -> Draft:
    kind = f.r.randrange(6)
    (o_code, o_city), (d_code, d_city) = f.r.sample(V.AIRPORTS, 2)
    f["orig"], f["dest"], f["orig_code"], f["dest_code"] = o_city, d_city, o_code, d_code
    f["dep_date"] = f.dstr(f.day(2, 40))
    f["conf"] = f.code(6)
    actions = ["check_in", "view_itinerary", "add_to_calendar", "contact_support"]
    if kind <= 2:
        airline, domain, iata = f.pick(V.AIRLINES)
        f.set_brand(airline, domain)
        f["flight"] = f"{iata} {f.r.randint(10, 2999)}"
        f["manage"] = f.link(f"manage-booking?pnr={f['conf']}")
        f["gate"] = f"{f.pick('ABCDEF')}{f.r.randint(1, 48)}"
        if kind == 0:
            subject = f.one(
                (
                    "Your flight confirmation: {orig} to {dest}",
                    "Booking confirmed - {conf}",
                    "Your trip to {dest} is booked!",
                    "eTicket itinerary and receipt for confirmation {conf}",
                    "{brand} booking confirmation {conf}",
                )
            )
            core = [
                f.one(
                    (
                        "Thank you for booking with {brand}. Your flight is confirmed.",
                        "Pack your bags - you're going to {dest}!",
                    )
                ),
                f.fmt(
                    "Confirmation code: {conf}\nFlight {flight}: {orig} ({orig_code}) → {dest} ({dest_code})\nDeparts: {dep_date} at {time}\nPassenger: {full}"
                ),
                f.one(
                    (
                        "Manage your booking, choose seats or add bags at {manage}.",
                        "Check-in opens 24 hours before departure.",
                        "View your itinerary: {manage}",
                    )
                ),
            ]
            actions = ["view_itinerary", "add_to_calendar", "check_in"]
        elif kind == 1:
            subject = f.one(
                (
                    "Check-in is now open for your flight to {dest}",
                    "It's time to check in: {flight}",
                    "Check in now - {orig_code} to {dest_code}",
                    "Your flight tomorrow: check in online",
                )
            )
            core = [
                f.one(
                    (
                        "Online check-in is now open for flight {flight} from {orig} to {dest} departing {dep_date} at {time}.",
                        "Your flight to {dest} departs in 24 hours. Check in now to get your boarding pass.",
                    )
                ),
                f.one(("Check in: {manage}", "Check in on the {brand} app or at {manage}.")),
                f.one(
                    (
                        "Bag drop closes 45 minutes before departure.",
                        "Remember to bring a valid ID or passport.",
                        None,
                    )
                ),
            ]
            actions = ["check_in", "view_itinerary"]
        else:
            subject, lead = f.variant(
                (
                    (
                        ("Gate change for flight {flight}", "Flight {flight}: new gate {gate}"),
                        ("Your flight {flight} to {dest} now departs from gate {gate}.",),
                    ),
                    (
                        ("Your flight {flight} is delayed", "Delay: {flight} to {dest}"),
                        ("Flight {flight} from {orig} is delayed. New departure time: {time2}.",),
                    ),
                    (
                        ("Schedule change to your trip {conf}", "Important: your itinerary has changed"),
                        (
                            "We've had to change your itinerary. Your new flight departs {dep_date} at {time2}.",
                        ),
                    ),
                    (
                        (
                            "Flight cancelled: {flight} on {dep_date}",
                            "Your flight has been cancelled - we've rebooked you",
                        ),
                        (
                            "We're sorry: flight {flight} on {dep_date} has been cancelled. We've rebooked you on the next available flight.",
                        ),
                    ),
                )
            )
            core = [
                lead,
                f.one(
                    (
                        "View your updated itinerary: {manage}",
                        "If the new time doesn't work, you can change or cancel for free at {manage}.",
                        "Contact us if you need help with your connection.",
                    )
                ),
            ]
        sender = brand_sender(
            f,
            ("no-reply", "reservations", "notifications", "flightinfo", "confirmation"),
            subdomains=("", "email.", "mail."),
        )
        return Draft(sender, subject, brand_body(f, core), actions)
    if kind == 3:
        f.set_brand(*f.pick(V.HOTELS))
        f["nights"] = str(f.r.randint(1, 7))
        f["manage"] = f.link(f"trips/{f['conf']}")
        f["hotel"] = f.pick(
            (
                "the Harbor View Hotel",
                f"{f['brand']} {f['dest']} Downtown",
                "Casa Lumen",
                "The Grand Central Suites",
                "a cozy loft in the old town",
            )
        )
        subject = f.one(
            (
                "Your reservation at {hotel} is confirmed",
                "Booking confirmation: {dest}, {dep_date}",
                "Your stay in {dest}",
                "Reservation {conf} confirmed",
            )
        )
        core = [
            f.one(
                ("Your reservation at {hotel} in {dest} is confirmed.", "Get ready for your trip to {dest}!")
            ),
            f.fmt("Confirmation: {conf}\nCheck-in: {dep_date} from 3:00 PM\nNights: {nights}\nGuests: 2"),
            f.one(
                (
                    "View or change your booking: {manage}",
                    "Free cancellation until 48 hours before check-in.",
                    "Add your stay to your calendar from the app.",
                )
            ),
        ]
        actions = ["view_itinerary", "add_to_calendar", "contact_support"]
    elif kind == 4:
        f.set_brand(*f.pick(V.RAIL))
        f["train"] = f"{f.pick(('ICE', 'Train', 'Eurostar', 'Acela', 'TGV'))} {f.r.randint(100, 9999)}"
        f["manage"] = f.link(f"bookings/{f['conf']}")
        f["coach"], f["seat"] = str(f.r.randint(1, 12)), f"{f.r.randint(1, 80)}{f.pick('ABCD')}"
        subject = f.one(
            (
                "Your tickets: {orig} to {dest}",
                "Booking confirmation {conf}",
                "Your e-ticket for {dep_date}",
                "Platform change for {train}",
            )
        )
        core = [
            f.one(
                (
                    "Your journey from {orig} to {dest} on {dep_date} is booked.",
                    "Here are your e-tickets for {train}.",
                )
            ),
            f.fmt(
                "{train}\nDeparts {orig}: {dep_date} {time}\nCoach {coach}, seat {seat}\nBooking reference: {conf}"
            ),
            f.one(("Show the QR code on your phone when boarding.", "Manage your booking: {manage}")),
        ]
        actions = ["view_itinerary", "add_to_calendar", "check_in"]
    else:
        f.set_brand(*f.pick(V.CAR_RENTAL))
        f["manage"] = f.link(f"reservations/{f['conf']}")
        f["car"] = f.pick(("Toyota Corolla", "VW Golf", "Ford Explorer", "Kia Sportage", "Tesla Model 3"))
        subject = f.one(
            (
                "Your car rental reservation {conf}",
                "Reservation confirmed: pickup {dep_date}",
                "Your {brand} rental in {dest}",
                "Reminder: your car pickup is tomorrow",
            )
        )
        core = [
            f.one(
                (
                    "Your rental car is reserved. Pick it up at {dest} airport ({dest_code}) on {dep_date} at {time}.",
                    "Thanks for reserving with {brand}. We look forward to seeing you in {dest}.",
                )
            ),
            f.fmt(
                "Confirmation number: {conf}\nVehicle: {car} or similar\nPickup: {dest_code}, {dep_date} {time}"
            ),
            f.one(
                (
                    "Skip the counter by checking in online: {manage}",
                    "Modify or cancel your reservation: {manage}",
                )
            ),
        ]
    sender = brand_sender(
        f,
        ("no-reply", "reservations", "bookings", "confirmation", "travel"),
        subdomains=("", "email.", "mail."),
    )
    return Draft(sender, subject, brand_body(f, core), actions)


def appointment(f: Fields) -> Draft:
    kind_p, prov, domain = f.pick(V.PROVIDERS)
    f.set_brand(prov, domain)
    f["service"] = f.pick(V.APPOINTMENT_SERVICES[kind_p])
    f["appt_date"] = f.dstr(f.day(1, 20))
    f["manage"] = f.link(f.pick(("appointments", "patient-portal", "booking/manage", "my-bookings")))
    f["clinician"] = f.pick(
        {
            "dentist": ("Dr. Patel", "Sarah (hygienist)", "Dr. Lindqvist"),
            "doctor": ("Dr. Nguyen", "Dr. Okafor", "Dr. Rossi"),
            "dermatologist": ("Dr. Haddad",),
            "optician": ("our optometrist",),
            "physio": ("Marco", "Aisha"),
            "vet": ("Dr. Evans",),
            "garage": ("our technician", "the service team"),
            "salon": ("your stylist Jess", "Tomás"),
            "public office": ("the duty officer", "a service agent"),
            "therapist": ("Ruth", "Dr. Cohen"),
            "lab": ("the lab team",),
        }[kind_p]
    )
    f["reason"] = f.pick(("a scheduling conflict", "staff illness", "an equipment issue", "your request"))
    kind = 3 if kind_p == "garage" and f.chance(0.5) else f.r.randrange(3)
    actions = ["confirm_appointment", "reschedule_appointment", "add_to_calendar"]
    if kind == 0:
        subject = f.one(
            (
                "Appointment confirmation - {appt_date}",
                "Your appointment is booked",
                "Booking confirmed: {service}",
                "{brand}: your {service} on {appt_date}",
            )
        )
        core = [
            f.one(
                (
                    "Your {service} with {clinician} is confirmed for {appt_date} at {time}.",
                    "Thank you for booking with {brand}. We look forward to seeing you on {appt_date} at {time}.",
                )
            ),
            f.fmt("Service: {service}\nDate: {appt_date}\nTime: {time}\nLocation: {street_addr}")
            if f.chance(0.6)
            else None,
            f.one(
                (
                    "Need to change it? Reschedule or cancel at {manage}.",
                    "Please arrive 10 minutes early and bring your insurance card.",
                    "Add this appointment to your calendar: {manage}",
                )
            ),
        ]
        actions = ["add_to_calendar", "reschedule_appointment", "confirm_appointment"]
    elif kind == 1:
        subject = f.one(
            (
                "Reminder: appointment tomorrow at {time}",
                "Upcoming appointment reminder",
                "See you soon: {service} on {appt_date}",
                "Please confirm your appointment",
            )
        )
        core = [
            f.one(
                (
                    "This is a reminder of your {service} at {brand} on {appt_date} at {time}.",
                    "You have an upcoming appointment with {clinician} on {appt_date} at {time}.",
                )
            ),
            f.one(
                (
                    "Please confirm by replying C, or reply R to reschedule.",
                    "Confirm your attendance here: {manage}",
                    "If you can't make it, please let us know at least 24 hours in advance to avoid a cancellation fee.",
                )
            ),
        ]
    elif kind == 2:
        subject = f.one(
            (
                "Your appointment has been rescheduled",
                "Change to your appointment on {appt_date}",
                "New time for your {service}",
            )
        )
        core = [
            f.one(
                (
                    "Due to {reason}, your {service} has been moved to {appt_date} at {time}.",
                    "As requested, your appointment is now on {appt_date} at {time}.",
                )
            ),
            f.one(
                (
                    "If the new time doesn't suit you, pick another slot at {manage}.",
                    "Please confirm the new time or call us at {phone}.",
                )
            ),
        ]
    else:
        subject = f.one(
            ("Your car is booked in for {service}", "Service appointment confirmed", "Your {service} booking")
        )
        core = [
            f.one(
                (
                    "Your vehicle is booked in for a {service} on {appt_date} at {time}. Please drop off your keys at reception.",
                    "We've booked your {service} for {appt_date}, {time}. It should take about an hour.",
                )
            ),
            f.one(("To reschedule, reply to this email or use {manage}.", "Confirm your booking: {manage}")),
        ]
    sender = brand_sender(f, ("appointments", "no-reply", "reminders", "bookings", "frontdesk", "info"))
    return Draft(sender, subject, brand_body(f, core, greet=GREET_NEUTRAL, p_foot=0.4), actions)


def _colleague(f: Fields) -> tuple[str, str, str]:
    company, domain = f.pick(V.COMPANIES)
    f["company"] = company
    f["cdomain"] = domain
    first, last = f.person("col")
    return first, f["col_full"], work_address(f, first, last, domain)


def work(f: Fields) -> Draft:
    first, full, addr = _colleague(f)
    f["deadline"] = f.pick(
        ("EOD", "tomorrow", "Thursday", "Friday", "end of the week", "Monday morning", "next Tuesday")
    )
    kind = f.r.randrange(6)
    actions = ["reply", "save_document", "read_later"]
    if kind == 5:
        f["task"] = f.pick(
            (
                "timesheets",
                "expense reports",
                "the annual compliance training",
                "Q{q} OKR updates",
                "the security awareness course",
                "performance self-reviews",
                "holiday requests for December",
            )
        )
        f["q"] = str(f.r.randint(1, 4))
        f["task"] = f.fmt(f["task"])
        subject = f.one(
            (
                "Reminder: {task} due {deadline}",
                "Action needed: {task}",
                "{task} - deadline {date}",
                "Friendly nudge: {task}",
            )
        )
        core = [
            f.one(
                (
                    "A reminder that {task} are due by {deadline}. Please complete them in Workday.",
                    "Please make sure {task} is done by {date}; we need 100% completion for the audit.",
                    "Finance closes the month on {date}, so please submit {task} before then.",
                )
            ),
            f.one(
                (
                    "Ping me if you run into problems with the form.",
                    "Thanks for getting this done!",
                    "Managers will get a report of missing items.",
                )
            ),
        ]
        actions = ["reply", "read_later"]
    elif kind == 0:
        subject = f.one(
            (
                "Quick question about {topic}",
                "Can you review the {doc}?",
                "Need your input on {topic}",
                "Request: {doc} for {topic}",
                "Re: {topic}",
            )
        )
        core = [
            f.one(
                (
                    "Could you take a look at the {doc} for {topic} and send me your comments by {deadline}?",
                    "I'm putting together the {doc} for {topic} and could use your input on the numbers in section 3.",
                    "Do you have a few minutes to check the assumptions in the {doc}? I want to send it to the client {deadline}.",
                )
            ),
            f.one(
                (
                    "The latest version is in the shared drive.",
                    "I've attached the current draft.",
                    "Happy to jump on a call if it's easier.",
                    "No rush if you're swamped, but {deadline} would be ideal.",
                )
            ),
            f.one(("Thanks a lot!", "Appreciate it.", None)),
        ]
        actions = ["reply", "save_document"]
    elif kind == 1:
        subject = f.one(
            (
                "Status update: {topic}",
                "Weekly update - {topic}",
                "{topic}: where we are",
                "Update on {topic}",
            )
        )
        core = [
            f.one(
                (
                    "Quick update on {topic}: we're on track for the {deadline} milestone.",
                    "Here's where we are with {topic}. Two of the three workstreams are done; the last one slipped by a couple of days.",
                    "Sharing a short status on {topic} before the leadership review.",
                )
            ),
            "- "
            + "\n- ".join(
                f.some(
                    (
                        "Scope is signed off",
                        "Waiting on legal for the contract redlines",
                        "QA found two blockers, fixes in progress",
                        "Budget is within 5% of plan",
                        "Vendor confirmed the delivery date",
                        "Next check-in is {deadline}",
                        "Open question: who owns the rollout comms?",
                    ),
                    2,
                    4,
                )
            ),
            f.one(
                (
                    "Let me know if anything looks off.",
                    "No action needed from you, just FYI.",
                    "Shout if you have questions.",
                )
            ),
        ]
        actions = ["read_later", "reply"]
    elif kind == 2:
        subject = f.one(
            ("{doc} attached", "Final {doc} - {topic}", "Sharing the {doc}", "FYI: {doc} for {topic}")
        )
        core = [
            f.one(
                (
                    "Attached is the {doc} for {topic}. Please keep it internal for now.",
                    "As promised, here's the final {doc}. I've incorporated everyone's feedback.",
                    "Sharing the {doc} from yesterday's session so you have it for reference.",
                )
            ),
            f.one(
                (
                    "Pages 4-6 are the most relevant for your team.",
                    "Let me know if you spot anything I missed.",
                    "Feel free to forward to your team.",
                )
            ),
            f"[Attachment: {f['topic'].replace(' ', '_').replace(chr(39), '')}_{f.pick(('v3', 'final', 'draft', 'v2'))}.{f.pick(('pdf', 'docx', 'xlsx', 'pptx'))}]",
        ]
        actions = ["save_document", "read_later", "reply"]
    elif kind == 3:
        f["client_co"] = f.pick(V.COMPANIES)[0]
        subject = f.one(
            ("Feedback on the proposal", "Re: next steps", "Contract questions", "Timeline for phase 2")
        )
        core = [
            f.one(
                (
                    "Thanks for sending the proposal over. Our team reviewed it and we have a few questions about the timeline.",
                    "We'd like to move forward with phase 2 but need the revised estimate before we can get approval.",
                    "Following up on our call - can you confirm the delivery dates for the remaining milestones?",
                )
            ),
            f.one(
                (
                    "Could you send an updated version by {deadline}?",
                    "Let us know what's realistic from your side.",
                    "Our procurement team will need the final numbers by {deadline}.",
                )
            ),
            None,
        ]
        actions = ["reply", "save_document"]
    else:
        subject, lead = f.variant(
            (
                (
                    ("Comments on your {doc}", "Review notes from today"),
                    (
                        "I've left comments on your {doc}; mostly small things, but the risk section needs another pass.",
                    ),
                ),
                (
                    ("Performance review: self-assessment due", "Review cycle reminder"),
                    (
                        "Reminder that self-assessments for the review cycle are due {deadline}. The form is in Workday.",
                    ),
                ),
                (
                    ("Your review for {topic}", "Notes on {topic}"),
                    ("Great work on {topic}. A few notes from my side below before we finalize.",),
                ),
            )
        )
        core = [
            lead,
            f.one(
                (
                    "Overall this looks solid.",
                    "Let's discuss anything you disagree with in our 1:1.",
                    "Ping me when you've had a chance to go through it.",
                )
            ),
            None,
        ]
        actions = ["reply", "read_later"]
    sig = work_signature(f, first, full, f["company"])
    body = person_body(
        f,
        core,
        sig,
        greet=("Hi {name},", "{name},", "Hey {name},", "Hi team,", "Hello {name},", "Morning {name},"),
        signoffs=SIGNOFF_WORK,
    )
    if f.chance(0.2):
        body += "\n\n" + f.pick(WORK_DISCLAIMER)
    return Draft(f"{full} <{addr}>", subject, body, actions)


def personal(f: Fields) -> Draft:
    first, last = f.person("pal")
    f["ptopic"] = f.pick(V.PERSONAL_TOPICS)
    f["win"] = f.pick(
        (
            "the new job",
            "the promotion",
            "finishing the marathon",
            "the engagement",
            "the new house",
            "passing your exam",
        )
    )
    kind = f.r.randrange(5)
    actions = ["reply", "read_later"]
    if kind == 0:
        subject = f.one(
            (
                "Photos from the weekend!",
                "pics 📸",
                "The photos you wanted",
                "Finally sending these",
                "Re: {ptopic}",
            )
        )
        core = [
            f.one(
                (
                    "Finally got around to uploading the photos from the weekend. The one of {kid} on the swing is my favorite!",
                    "Here are the pictures from the lake - sorry it took so long.",
                    "Attaching a few photos. The sunset ones came out great.",
                )
            ),
            f.one(("Hope you all got home OK.", "We should do that again soon.", "Mom says hi!", None)),
        ]
    elif kind == 1:
        subject = f.one(("Long time!", "Catching up", "How are you?", "Thinking of you", "News!"))
        core = [
            f.one(
                (
                    "It's been ages! How are things with you? How's {ptopic} going?",
                    "Just wanted to check in and see how you're doing after everything last month.",
                    "Big news: we finally signed the lease on the new place! Moving in at the end of the month.",
                )
            ),
            f.one(
                (
                    "Work has been crazy but good. {kid} started swimming lessons and loves it.",
                    "Not much new here, still running most mornings and trying to learn Italian.",
                    "I've been meaning to write for weeks.",
                )
            ),
            f.one(
                ("Write back when you have a minute!", "Call me sometime this week?", "Miss you guys.", None)
            ),
        ]
    elif kind == 2:
        subject = f.one(("Recipe you asked for", "That lasagna recipe", "Grandma's cookies", "The soup!"))
        core = [
            f.one(
                (
                    "Here's the recipe you asked for. The trick is to let the dough rest overnight.",
                    "As promised, the recipe! Don't skip the lemon zest.",
                )
            ),
            f.one(
                (
                    "Ingredients: 2 cups flour, 1 tsp salt, 3 eggs, 200 g butter, a pinch of nutmeg.",
                    "You'll need: 1 onion, 2 carrots, 500 g lentils, cumin and a lot of patience.",
                )
            ),
            f.one(("Let me know how it turns out!", "Send a photo when you make it.", None)),
        ]
    elif kind == 3:
        subject, lead = f.variant(
            (
                (
                    ("Happy birthday!! 🎉", "Happy birthday!"),
                    ("Happy birthday! Hope you have the best day and someone spoils you rotten.",),
                ),
                (("Congrats!!", "Congratulations!"), ("Congratulations on {win}, so proud of you!",)),
                (
                    ("Thank you for dinner", "Thanks so much"),
                    (
                        "Thank you so much for having us over on Saturday. The food was amazing and the kids haven't stopped talking about it.",
                    ),
                ),
            )
        )
        core = [
            lead,
            f.one(("Let's celebrate properly when we see each other.", "Big hug from all of us.", None)),
        ]
    else:
        subject, lead = f.variant(
            (
                (
                    ("quick q", "camping stove?"),
                    (
                        "Quick question: do you still have my camping stove? No rush, just need it for next month.",
                    ),
                ),
                (
                    ("Update on Grandpa", "Grandpa"),
                    (
                        "Grandpa's surgery went well. He's tired but already complaining about the hospital food, so he's fine.",
                    ),
                ),
                (
                    ("Re: {ptopic}", "About {ptopic}"),
                    ("Did you decide about {ptopic}? I think you should go for it.",),
                ),
            )
        )
        core = [
            lead,
            f.one(("Let me know what you think.", "Talk soon.", None)),
        ]
    body = person_body(f, core, first if f.chance(0.7) else f"{first}\n\nSent from my phone")
    if f.chance(0.15):
        body += "\n\n" + quoted(
            f,
            f["full"],
            f["email"],
            f.pick(("Sounds good, speak soon!", "How's everyone doing?", "Did you get home ok?")),
        )
    return Draft(f"{first} {last} <{personal_address(f, first, last)}>", subject, body, actions)


def financial_statement(f: Fields) -> Draft:
    kind = f.r.randrange(5)
    f["portal"] = ""
    actions = ["view_statement", "save_document"]
    if kind == 0:
        f.set_brand(*f.pick(V.BANKS))
        f["portal"] = f.link("statements")
        subject = f.one(
            (
                "Your {month} statement is ready",
                "Your eStatement is available",
                "New statement available for account {account_no}",
                "Your checking account statement",
            )
        )
        core = [
            f.one(
                (
                    "Your {month} statement for checking account {account_no} is now available online.",
                    "A new statement for your savings account ending in {last4} is ready to view.",
                )
            ),
            f.one(
                (
                    "Sign in to view or download it: {portal}",
                    "You can view and download it in Online Banking under Statements & Documents.",
                )
            ),
            f.one(
                (
                    "This is an informational message; no action is required.",
                    "Statements are kept online for 7 years.",
                    None,
                )
            ),
        ]
    elif kind == 1:
        f.set_brand(
            *f.pick(
                (
                    ("Fidelity", "fidelity.com"),
                    ("Vanguard", "vanguard.com"),
                    ("Charles Schwab", "schwab.com"),
                    ("Robinhood", "robinhood.com"),
                    ("E*TRADE", "etrade.com"),
                    ("Wealthfront", "wealthfront.com"),
                )
            )
        )
        f["portal"] = f.link("documents")
        f["q"] = str(f.r.randint(1, 4))
        f["ret"] = f"{f.pick(('+', '-', '+'))}{f.r.uniform(0.2, 7.5):.1f}"
        subject = f.one(
            (
                "Your quarterly investment report",
                "Q{q} statement now available",
                "Your portfolio summary for {month}",
                "Your annual account review",
            )
        )
        core = [
            f.one(
                (
                    "Your quarterly statement for account {account_no} is now available.",
                    "Your portfolio returned {ret}% this quarter. See the full report for details.",
                )
            ),
            f.one(("View your statement: {portal}", "Log in to see holdings, activity and performance.")),
            "Investments are not FDIC insured, may lose value and are not bank guaranteed.",
        ]
    elif kind == 2:
        f.set_brand(
            *f.pick(
                (
                    ("ADP", "adp.com"),
                    ("Gusto", "gusto.com"),
                    ("Workday", "myworkday.com"),
                    ("Paychex", "paychex.com"),
                )
            )
        )
        f["portal"] = f.link("payslips")
        subject = f.one(
            (
                "Your payslip for {month} is available",
                "Pay statement ready",
                "Your pay stub for the period ending {past}",
                "New payslip available",
            )
        )
        core = [
            f.one(
                (
                    "Your pay statement for the period ending {past} is ready to view.",
                    "Your {month} payslip has been published.",
                )
            ),
            f.one(("View it in the employee portal: {portal}", "Log in to {brand} to view and download it.")),
            "Please do not reply to this automated message.",
        ]
    elif kind == 3:
        f.set_brand(
            *f.pick(V.BANKS + (("Fidelity", "fidelity.com"), ("ADP", "adp.com"), ("TurboTax", "intuit.com")))
        )
        f["form"] = f.pick(
            (
                "1099-INT",
                "1099-DIV",
                "W-2",
                "1099-B",
                "1098 mortgage interest statement",
                "P60",
                "annual tax summary",
            )
        )
        f["portal"] = f.link("tax-documents")
        subject = f.one(
            (
                "Your {form} tax form is ready",
                "Tax documents available",
                "Your {year} tax form is now available",
                "Important tax document available",
            )
        )
        core = [
            f.one(
                (
                    "Your {year} {form} is now available to download.",
                    "Your tax form ({form}) for the {year} tax year is ready.",
                )
            ),
            f.one(("Download it at {portal}", "You'll find it under Tax Documents in your account.")),
            "Keep this document for your tax records. Please consult a tax advisor with any questions.",
        ]
    else:
        f.set_brand(
            *f.pick(
                (
                    ("Nest Pensions", "nestpensions.org.uk"),
                    ("Fidelity NetBenefits", "fidelity.com"),
                    ("TIAA", "tiaa.org"),
                    ("Aviva", "aviva.co.uk"),
                    ("Principal", "principal.com"),
                )
            )
        )
        f["portal"] = f.link("statements")
        subject = f.one(
            (
                "Your annual pension statement",
                "Your retirement account summary",
                "Your {year} benefit statement is ready",
            )
        )
        core = [
            f.one(
                (
                    "Your annual pension statement is now available. It shows your contributions and the estimated value of your pot.",
                    "Your retirement account summary for {year} is ready: total balance {big_amount}.",
                )
            ),
            f.one(
                ("View it online: {portal}", "Log in to review your statement and update your beneficiaries.")
            ),
            None,
        ]
    sender = brand_sender(
        f, ("no-reply", "statements", "documents", "alerts", "noreply"), subdomains=("", "", "email.")
    )
    return Draft(sender, subject, brand_body(f, core, greet=GREET_NEUTRAL), actions)


def account_update(f: Fields) -> Draft:
    f.set_brand(
        *f.pick(
            V.ACCOUNT_SERVICES + V.DIGITAL_STORES[:3] + (("Hulu", "hulu.com"), ("Disney+", "disneyplus.com"))
        )
    )
    f["eff"] = f.dstr(f.day(10, 45))
    f["terms"] = f.link(f.pick(("legal/terms", "privacy", "policies/updates")))
    f["plan"] = f.pick(("Standard", "Premium", "Family", "Plus", "Pro", "Basic"))
    f["settings"] = f.link("settings")
    kind = f.r.randrange(8)
    actions = ["review_account", "save_document"]
    if kind == 6:
        f.set_brand(
            *f.pick(
                V.BANKS
                + (("Northwind Energy", "northwindenergy.com"), ("Riverside Water", "riversidewater.org"))
            )
        )
        subject = f.one(
            (
                "Your account number is changing - no action needed",
                "Important: we're moving your account to a new system",
                "Changes to your account details on {eff}",
            )
        )
        core = [
            f.one(
                (
                    "As part of a systems upgrade, your account number will change on {eff}. Your balance, payments and direct debits move over automatically.",
                    "On {eff} we're moving all customer accounts to our new platform. You'll receive a new account number by post.",
                )
            ),
            f.one(("You don't need to do anything.", "Existing AutoPay and direct debits keep working.")),
            f.one(("Questions? See {help}", None)),
        ]
    elif kind == 7:
        subject = f.one(
            (
                "You've switched to paperless statements",
                "Your communication preferences were updated",
                "Paperless billing is on",
            )
        )
        core = [
            f.one(
                (
                    "As requested, you'll now receive statements and notices by email instead of post.",
                    "Your preferences were updated on {today}: paper statements are turned off.",
                )
            ),
            f.one(
                (
                    "You can change this at any time in Settings.",
                    "Review your settings anytime at {settings}.",
                )
            ),
        ]
    elif kind == 0:
        subject, lead = f.variant(
            (
                (
                    (
                        "We're updating our Terms of Service",
                        "Changes to the {brand} terms",
                        "Important: our terms are changing on {eff}",
                    ),
                    (
                        "We're updating our Terms of Service, effective {eff}. The changes clarify how we handle disputes and add terms for new features.",
                        "On {eff}, updated terms will apply to your use of {brand}.",
                    ),
                ),
                (
                    ("Updates to our Privacy Policy", "We've updated our Privacy Policy"),
                    (
                        "We've updated our Privacy Policy to explain more clearly what data we collect and how you can control it.",
                    ),
                ),
            )
        )
        core = [
            lead,
            f.one(
                (
                    "You don't need to do anything. By continuing to use {brand} after {eff}, you agree to the updated terms.",
                    "No action is required on your part.",
                )
            ),
            f.one(("Read the full terms: {terms}", "You can review the changes at {terms}.")),
        ]
    elif kind == 1:
        f["feature"] = f.pick(
            ("offline downloads", "2 TB of storage", "ad-free listening", "priority support")
        )
        subject = f.one(
            (
                "Your plan is changing",
                "Changes to your {brand} subscription",
                "Your plan will be updated on {eff}",
                "An update about your plan price",
            )
        )
        core = [
            f.one(
                (
                    "Starting {eff}, your {plan} plan will include {feature}.",
                    "We're letting you know that the price of your {plan} plan will change to {small_amount}/month from your next billing date after {eff}.",
                    "Your {plan} plan has been switched to annual billing as you requested.",
                )
            ),
            f.one(
                (
                    "No action is needed; your plan will update automatically.",
                    "You can review or change your plan anytime in Account settings.",
                )
            ),
            None,
        ]
    elif kind == 2:
        subject = f.one(
            (
                "Your data export is ready",
                "Your {brand} data archive is ready to download",
                "Download your information",
            )
        )
        core = [
            f.one(
                (
                    "The copy of your data you requested on {past} is ready.",
                    "Your archive is ready. It includes your profile, posts and settings.",
                )
            ),
            f.one(
                (
                    "You can download it from Settings > Privacy > Download your data until {eff}.",
                    "Download it from your account page; the file will be available for 7 days.",
                )
            ),
        ]
    elif kind == 3:
        subject = f.one(
            (
                "Your subscription has renewed",
                "Thanks for staying with {brand}",
                "Your {plan} membership renewed",
                "Subscription renewal confirmation",
            )
        )
        core = [
            f.one(
                (
                    "Your {brand} {plan} subscription renewed on {today} using your saved payment method. Your next renewal is {eff}.",
                    "Your {plan} membership has been renewed for another year. Nothing else to do - enjoy!",
                )
            ),
            f.one(
                (
                    "Manage your subscription in Account settings.",
                    "You can change or cancel your plan at any time.",
                    None,
                )
            ),
        ]
    elif kind == 4:
        f["feature"] = f.pick(
            (
                "Classic view",
                "the desktop app for Windows 7",
                "shared albums",
                "legacy API keys",
                "the old inbox layout",
            )
        )
        subject = f.one(
            ("We're retiring {feature}", "Changes coming to {feature}", "An update about {feature}")
        )
        core = [
            f.one(
                (
                    "On {eff} we'll retire {feature}. Your data will be moved automatically.",
                    "We're making changes to {feature}, starting {eff}.",
                )
            ),
            f.one(("Learn more in our help center: {help}", "You don't need to do anything right now.")),
        ]
    else:
        subject = f.one(
            (
                "Your email preferences were updated",
                "Your account settings have been updated",
                "Welcome to your new {brand} account",
                "Your profile was updated",
            )
        )
        core = [
            f.one(
                (
                    "As requested, we've updated your notification preferences.",
                    "Your display name and profile photo were updated on {today}.",
                    "Your {brand} account is set up and ready to go.",
                )
            ),
            f.one(
                (
                    "Review your settings anytime at {settings}.",
                    "You can change this at any time in Settings.",
                )
            ),
        ]
    sender = brand_sender(
        f,
        ("no-reply", "account", "noreply", "info", "notifications", "legal"),
        subdomains=("", "", "email.", "account."),
    )
    return Draft(sender, subject, brand_body(f, core, greet=GREET_NEUTRAL), actions)


def school_family(f: Fields) -> Draft:
    school, domain = f.pick(V.SCHOOLS)
    f.set_brand(school, domain)
    f["teacher"] = f"{f.pick(('Ms.', 'Mr.', 'Mrs.', 'Coach'))} {f.pick(V.LAST_NAMES)}"
    f["event_date"] = f.dstr(f.day(2, 21))
    f["platform"] = f.pick(V.SCHOOL_PLATFORMS)
    kind = f.r.randrange(5)
    actions = ["sign_form", "rsvp", "add_to_calendar", "reply"]
    if kind == 0:
        f["trip"] = f.pick(
            (
                "the science museum",
                "the city zoo",
                "Riverside Farm",
                "the aquarium",
                "the planetarium",
                "the fire station",
            )
        )
        subject = f.one(
            (
                "Permission slip: field trip to {trip}",
                "Field trip on {event_date} - form due",
                "Action needed: sign the permission slip",
                "{grade} trip to {trip}",
            )
        )
        core = [
            f.one(
                (
                    "{grade} will visit {trip} on {event_date}. Please sign and return the permission slip by {date}.",
                    "Our class trip to {trip} is coming up on {event_date}! Every child needs a signed permission form to attend.",
                )
            ),
            f.one(
                (
                    "The cost is {small_amount}; please send it in an envelope with your child's name.",
                    "Children should bring a packed lunch and a water bottle.",
                    "We still need two parent volunteers - reply if you can help!",
                )
            ),
            f.one(("You can sign online in {platform}.", "Forms are in your child's folder.", None)),
        ]
        actions = ["sign_form", "reply", "add_to_calendar"]
    elif kind == 1:
        subject = f.one(
            (
                "Parent-teacher conferences {event_date}",
                "Sign up for parent evening",
                "Book your conference slot",
                "Invitation: parents' evening",
            )
        )
        core = [
            f.one(
                (
                    "Parent-teacher conferences will take place on {event_date} from 3:30 to 7:00 PM.",
                    "Our spring parents' evening is on {event_date}. Each meeting is 10 minutes.",
                )
            ),
            f.one(
                (
                    "Please choose a time slot in {platform} by {date}.",
                    "Reply with your preferred time and we'll confirm.",
                )
            ),
            None,
        ]
        actions = ["rsvp", "add_to_calendar", "reply"]
    elif kind == 2:
        f["closure"] = f.pick(
            ("a teacher training day", "snow", "a power outage", "the public holiday", "building repairs")
        )
        subject = f.one(
            (
                "School closed on {event_date}",
                "Closure notice: {event_date}",
                "No school on {event_date}",
                "Daycare closure reminder",
            )
        )
        core = [
            f.one(
                (
                    "{brand} will be closed on {event_date} due to {closure}.",
                    "Reminder: there is no school on {event_date} ({closure}).",
                )
            ),
            f.one(
                (
                    "Aftercare will also be closed.",
                    "Classes resume as normal the following day.",
                    "Please plan childcare accordingly.",
                )
            ),
            None,
        ]
        actions = ["add_to_calendar", "reply"]
    elif kind == 3:
        f["form"] = f.pick(
            (
                "medical information form",
                "photo consent form",
                "emergency contact form",
                "allergy action plan",
                "club registration form",
            )
        )
        subject = f.one(
            (
                "Reminder: {form} due {date}",
                "Please return the {form}",
                "Missing form for {kid}",
                "Forms to sign before {event_date}",
            )
        )
        core = [
            f.one(
                (
                    "We haven't received {kid}'s {form} yet. Please sign and return it by {date}.",
                    "All families need to complete the {form} before {event_date}.",
                )
            ),
            f.one(
                (
                    "You can sign it in {platform} or send a paper copy with {kid}.",
                    "A copy is attached if you need another one.",
                )
            ),
            None,
        ]
        actions = ["sign_form", "reply"]
    else:
        subject, lead = f.variant(
            (
                (
                    ("Practice moved to {time2} this week", "Change to practice time"),
                    (
                        "Practice for the {grade} is moved to {time2} on {event_date} because the field is being reseeded.",
                    ),
                ),
                (
                    ("Tournament schedule for {event_date}", "Game day update"),
                    (
                        "Our tournament is on {event_date}. First game at {time}, please arrive 30 minutes early.",
                    ),
                ),
                (
                    ("Swim gala on {event_date}", "Gala day reminder"),
                    ("The swim gala is on {event_date}. Swimmers need to be poolside by {time}.",),
                ),
            )
        )
        core = [
            lead,
            f.one(
                (
                    "Please reply to let me know if {kid} can make it.",
                    "Snack rota: bring orange slices if it's your turn.",
                    "Carpool sign-up sheet is in the team chat.",
                )
            ),
            None,
        ]
        actions = ["rsvp", "add_to_calendar", "reply"]
    via = f.chance(0.4)
    sender = (
        f"{f['brand']} via {f['platform']} <notifications@{f['platform'].lower()}.com>"
        if via
        else f"{f['teacher']} <{f['teacher'].split()[-1].lower().replace(chr(39), '')}@{domain}>"
    )
    body = brand_body(
        f,
        core,
        greet=(
            "Dear Parents,",
            "Dear families,",
            "Hi {name},",
            "Hello families,",
            "Dear parents and carers,",
        ),
        p_sign=0.0,
        p_foot=0.0,
    )
    body += "\n\n" + f.one(
        ("Thank you,\n{teacher}", "Best wishes,\n{teacher}\n{brand}", "{brand} Office", "Thanks,\n{teacher}")
    )
    return Draft(sender, subject, body, actions)


def social_notification(f: Fields) -> Draft:
    f.set_brand(*f.pick(V.SOCIAL))
    first, last = f.person("who")
    f["group"] = f.pick(V.SOCIAL_GROUPS)
    f["n"] = str(f.r.randint(2, 48))
    f["view"] = f.link(
        f.pick(("notifications", f"posts/{f.code(9).lower()}", "mynetwork", f"groups/{f.digits(6)}"))
    )
    f["snippet"] = f.pick(
        (
            "Great point!",
            "Congrats 🎉",
            "Totally agree with this",
            "Where was this taken?",
            "See you there!",
            "haha this is so you",
            "Thanks for sharing!",
        )
    )
    f["title"] = f.pick(V.JOB_TITLES)
    f["activity"] = f.pick(("Morning Run", "Lunch Ride", "Evening Walk", "10K tempo run"))
    f["handle"] = f"{first.lower()}{f.digits(2)}"
    kind = f.r.randrange(6)
    if kind == 0:
        subject = f.one(
            ("{who_full} mentioned you in a comment", "{who} mentioned you", "You were mentioned in {group}")
        )
        core = [
            f.one(('{who_full} mentioned you in a comment: "{snippet}"', "{who} mentioned you in {group}.")),
            f.one(("View comment: {view}", "See the conversation: {view}")),
        ]
    elif kind == 1:
        subject = f.one(
            (
                "{who_full} commented on your post",
                "New comment on your photo",
                "{who} replied to your comment",
            )
        )
        core = [
            f.one(
                (
                    '{who_full} commented on your post: "{snippet}"',
                    "{who} and {n} others commented on your photo.",
                )
            ),
            f.one(("Reply: {view}", "See all comments: {view}")),
        ]
    elif kind == 2:
        subject = f.one(
            (
                "{who_full} wants to connect",
                "You have a new friend request",
                "{who_full} sent you a friend request",
                "Invitation to connect",
            )
        )
        core = [
            f.one(
                (
                    "{who_full}, {title} at {company}, wants to connect with you.",
                    "{who_full} sent you a friend request. You have {n} mutual friends.",
                )
            ),
            f.one(("Accept: {view}", "Respond to the request: {view}")),
        ]
    elif kind == 3:
        subject, lead = f.variant(
            (
                (
                    ("{who_full} started following you", "You have a new follower"),
                    ("{who_full} (@{handle}) started following you.",),
                ),
                (
                    ("You have {n} new followers",),
                    ("{who_full} (@{handle}) and {n} others started following you.",),
                ),
                (
                    ("{who} liked your post", "{who} and {n} others liked your post"),
                    ("{who} and {n} others liked your post.",),
                ),
                (("{who} gave you kudos",), ("{who} gave you kudos on your {activity}.",)),
            )
        )
        core = [lead, f.one(("See who: {view}", "View activity: {view}"))]
    elif kind == 4:
        subject = f.one(
            (
                "Digest: {n} new posts in {group}",
                "Your weekly digest from {group}",
                "Top posts in {group} this week",
                "What you missed in {group}",
            )
        )
        core = [
            f.fmt("Top posts this week in {group}:")
            + "\n"
            + "\n".join(
                f"• {f.pick(V.FIRST_NAMES)}: {t}"
                for t in f.r.sample(
                    [
                        "Anyone know a good plumber nearby?",
                        "Lost cat on Elm Court, please share",
                        "Meetup on Thursday - who's in?",
                        "Best resources for learning async Python?",
                        "Photos from Saturday's group run",
                        "Free couch, pickup only",
                        "New trail map uploaded",
                        "Question about the new parking rules",
                    ],
                    3,
                )
            ),
            f.one(("See all posts: {view}", "Open the group: {view}")),
        ]
    else:
        subject, lead = f.variant(
            (
                (
                    ("You appeared in {n} searches this week",),
                    ("You appeared in {n} searches this week. See who's looking.",),
                ),
                (
                    ("You have {n} new notifications", "{n} unread notifications"),
                    ("You have {n} unread notifications.",),
                ),
                (
                    ("{who} posted for the first time in a while", "See what {who} shared"),
                    ("See what {who} and others shared recently.",),
                ),
            )
        )
        core = [lead, f.one(("View: {view}", "Open {brand}: {view}"))]
    core.append(
        f.one(
            (
                "You're receiving this because notifications are on. Unsubscribe: {unsub}",
                "Manage notification settings: {unsub}",
                "Turn off these emails: {unsub}",
            )
        )
    )
    sender = f"{f['brand']} <{f.pick(('notifications', 'no-reply', 'notification', 'digest', 'info'))}@{f['domain']}>"
    return Draft(sender, subject, "\n\n".join(core), ["view_post", "unsubscribe"])


# --- ads categories ------------------------------------------------------------------------


def promotion(f: Fields) -> Draft:
    f.set_brand(*f.pick(V.RETAILERS + V.FOOD_APPS[:3]))
    f["line"] = f.pick(V.PRODUCT_LINES)
    f["shop"] = f.link(f.pick(("sale", "shop/new", "deals", f"collections/{f.code(5).lower()}", "offers")))
    f["season"] = f.pick(("summer", "spring", "winter", "Black Friday", "end-of-season", "anniversary"))
    kind = f.r.randrange(6)
    actions = ["view_offer", "unsubscribe", "delete"]
    if kind == 0:
        subject = f.one(
            (
                "Up to {pct}% off {line} 🔥",
                "SALE: {pct}% off everything",
                "Last chance: {pct}% off ends tonight",
                "The big {season} sale starts now",
                "⚡ Flash sale: {pct}% off for 24 hours",
            )
        )
        core = [
            f.one(
                (
                    "Our biggest sale of the season is here: save up to {pct}% on {line}.",
                    "For the next 24 hours only, take {pct}% off sitewide.",
                    "Prices just dropped on {line}.",
                )
            ),
            f.one(("Shop now: {shop}", "Don't wait - shop the sale at {shop}", "SHOP NOW →  {shop}")),
            f.one(
                (
                    "Free shipping on orders over {cur}50.",
                    "Ends midnight {date}.",
                    "While supplies last.",
                    None,
                )
            ),
        ]
    elif kind == 1:
        subject = f.one(
            (
                "Here's {pct}% off your next order",
                "A little something for you: code {promo_code}",
                "Your exclusive coupon inside",
                "{name}, your {pct}% off code expires soon",
            )
        )
        core = [
            f.one(
                (
                    "Use code {promo_code} at checkout for {pct}% off your next order.",
                    "Enjoy {pct}% off with code {promo_code} - just for you.",
                )
            ),
            f.one(("Valid until {date}. One use per customer.", "Shop now at {shop}")),
            None,
        ]
    elif kind == 2:
        subject = f.one(
            (
                "New: {product} is here",
                "Just launched: {line}",
                "Meet the all-new {product}",
                "Introducing our new {line}",
            )
        )
        core = [
            f.one(
                (
                    "Meet the new {product}: lighter, faster and available in three new colors.",
                    "Our new {line} just dropped. Be the first to shop it.",
                )
            ),
            f.one(("Pre-order now and get free shipping: {shop}", "Shop the launch: {shop}")),
        ]
    elif kind == 3:
        subject = f.one(
            (
                "You left something in your cart",
                "Still thinking it over?",
                "Your cart is waiting",
                "Forgot something, {name}?",
            )
        )
        core = [
            f.one(
                (
                    "The {product} in your cart is still available, but not for long.",
                    "Items in your cart are selling fast.",
                )
            ),
            f.one(
                (
                    "Complete your order now and get {pct}% off with code {promo_code}.",
                    "Return to your cart: {shop}",
                )
            ),
            None,
        ]
    elif kind == 4:
        subject = f.one(
            (
                "Free shipping this weekend only",
                "Buy one, get one 50% off",
                "Weekend deal: extra {pct}% off sale items",
                "Gift ideas under {cur}50",
            )
        )
        core = [
            f.one(
                (
                    "This weekend only: free shipping on every order, no minimum.",
                    "Mix and match: buy one, get one 50% off on {line}.",
                    "Take an extra {pct}% off already-reduced items.",
                )
            ),
            f.one(("Shop now: {shop}", "Browse the deals at {shop}")),
        ]
    else:
        subject = f.one(
            ("Upgrade to Premium - {pct}% off", "Try it free for 30 days", "Special offer for you")
        )
        core = [
            f.one(
                (
                    "Get {pct}% off your first three months when you upgrade today.",
                    "Try our premium delivery pass free for 30 days, then {small_amount}/month.",
                )
            ),
            f.one(("Claim your offer: {shop}", "Start your free trial: {shop}")),
        ]
    sender = brand_sender(
        f,
        ("news", "hello", "offers", "deals", "marketing", "info", "style"),
        subdomains=("", "e.", "email.", "mail."),
    )
    return Draft(
        sender,
        subject,
        brand_body(f, core, greet=GREET_BRAND, footer=FOOT_MKT, p_greet=0.5, p_sign=0.3, p_foot=0.9),
        actions,
    )


def _headlines(f: Fields, k: int) -> list[str]:
    lead = (
        "Why {t} matters more than you think",
        "What nobody tells you about {t}",
        "The quiet revolution in {t}",
        "A short history of {t}",
        "5 charts that explain {t}",
        "How {t} changed this year",
        "Inside the fight over {t}",
        "What we learned from a month of {t}",
        "The case against {t}",
    )
    return [f.pick(lead).format(t=t) for t in f.r.sample(V.NEWS_TOPICS, k)]


def newsletter(f: Fields) -> Draft:
    f.set_brand(*f.pick(V.NEWSLETTERS))
    heads = _headlines(f, f.r.randint(2, 4))
    f["issue"] = str(f.r.randint(12, 480))
    f["readmore"] = f.link("p/" + f.code(8).lower())
    f["day_name"] = f.pick(("Sunday", "Friday", "Monday"))
    kind = f.r.randrange(6)
    if kind == 3:
        f.set_brand(
            *f.pick(
                (
                    ("Sunday Supper", "sundaysupper.substack.com"),
                    ("Smitten Kitchen", "smittenkitchen.com"),
                    ("The Weeknight Cook", "weeknightcook.com"),
                    ("Bread & Butter Notes", "breadbutter.substack.com"),
                )
            )
        )
        dish = f.pick(
            (
                "one-pan lemon chicken",
                "miso mushroom pasta",
                "a very good lentil soup",
                "brown butter banana bread",
                "sheet-pan gnocchi",
                "spiced chickpea stew",
            )
        )
        subject = f.one(
            (
                "This week: " + dish,
                dish[0].upper() + dish[1:] + " & a note on seasoning",
                "{brand}: what I'm cooking this week",
            )
        )
        core = [
            f.one(
                (
                    "Hello friends! This week I've been cooking "
                    + dish
                    + " on repeat, and I want to tell you why it works.",
                    "A short one today: "
                    + dish
                    + ", plus a question from a reader about salting pasta water.",
                )
            ),
            f.one(_BLURBS) + " Salt early, taste often, and don't be afraid of acid at the end.",
            f.fmt("Get the recipe: {readmore}"),
        ]
    elif kind == 4:
        f.set_brand(
            *f.pick(
                (
                    ("The Stack Weekly", "thestackweekly.dev"),
                    ("Python Weekly", "pythonweekly.com"),
                    ("Frontend Focus", "frontendfoc.us"),
                    ("Data Eng Digest", "dataengdigest.com"),
                )
            )
        )
        items = f.r.sample(
            [
                "Postgres 17 in production: lessons learned",
                "Taming flaky tests",
                "A eulogy for the monolith",
                "Why your Docker images are huge",
                "Profiling Python without tears",
                "The case for boring technology",
                "What's new in TypeScript 5.6",
                "Designing idempotent pipelines",
            ],
            4,
        )
        subject = f.fmt("{brand} #{issue}: ") + ", ".join(i.split(":")[0].lower() for i in items[:2])
        core = [
            "This week's top links:",
            "\n".join(f"* {i} - {f.link('r/' + f.code(5).lower())}" for i in items),
            "Curated by humans. Reply with links we should include next week.",
        ]
    elif kind == 5:
        f.set_brand(
            *f.pick(
                (
                    ("Ledgerly", "ledgerly.io"),
                    ("Linear", "linear.app"),
                    ("Figma", "figma.com"),
                    ("Todoist", "todoist.com"),
                )
            )
        )
        subject = f.one(
            (
                "What's new in {brand}: {month} {year}",
                "{brand} product digest - {month}",
                "The {brand} changelog, {month} edition",
            )
        )
        core = [
            f.one(
                (
                    "Here's a roundup of what we shipped in {month}, plus a few posts from our blog.",
                    "Our monthly product digest: new features, fixes, and stories from the team.",
                )
            ),
            "- "
            + "\n- ".join(
                f.some(
                    (
                        "Faster search across projects",
                        "Dark mode for the mobile app",
                        "A redesigned reports page",
                        "Keyboard shortcuts for everything",
                        "Blog: how we cut our build times in half",
                        "Customer story: running a 40-person team on one board",
                    ),
                    2,
                    4,
                )
            ),
            f.fmt("Read the full changelog: {readmore}"),
        ]
    elif kind == 0:
        subject = f.one(
            ("{brand}: " + heads[0], heads[0], "{brand} #{issue}: " + heads[0], "Today: " + heads[0])
        )
        core = [
            f.one(
                (
                    "Good morning. Here's what you need to know today.",
                    "Welcome to issue #{issue}. Grab a coffee.",
                    "Hi friends, a packed one this week.",
                )
            ),
            "\n\n".join(
                f"{h}\n{f.one(_BLURBS)} Read more: {f.link('p/' + f.code(7).lower())}" for h in heads
            ),
        ]
    elif kind == 1:
        subject = f.one(("New post: " + heads[0], heads[0], "{brand} | " + heads[0]))
        core = [
            f.one(
                (
                    "I've been thinking about this for months, and I finally wrote it down.",
                    "This week's essay is a long one.",
                    "A reader asked me a question last week that I couldn't stop thinking about.",
                )
            ),
            f.one(_BLURBS) + " " + f.one(_BLURBS),
            f.fmt("Keep reading: {readmore}"),
        ]
    else:
        subject = f.one(
            ("The weekly digest", "Your {day_name} digest", "This week in {brand}", "Weekend reading")
        )
        core = [
            f.one(("Here are this week's most-read stories.", "Some things worth your time this weekend:")),
            "\n".join(f"{i + 1}. {h}" for i, h in enumerate(heads)),
            f.one(
                (
                    "Thanks for reading. Reply to this email - I read every response.",
                    "See you next week!",
                    "Forward this to a friend who'd like it.",
                )
            ),
        ]
    core.append(
        f.one(
            (
                "You're receiving this because you subscribed to {brand}. Unsubscribe: {unsub}",
                "Unsubscribe | Update preferences | View online",
                "Not into it anymore? Unsubscribe: {unsub}",
            )
        )
    )
    sender = f"{f['brand']} <{f.pick(('newsletter', 'hello', 'digest', 'editor', 'news', 'noreply'))}@{f['domain']}>"
    return Draft(sender, subject, "\n\n".join(core), ["read_later", "unsubscribe"])


_BLURBS = (
    "We spoke to researchers, skeptics and practitioners to understand what's really going on.",
    "The numbers tell a more nuanced story than the headlines suggest.",
    "It turns out the answer depends a lot on where you live.",
    "A new study published this week challenges some long-held assumptions.",
    "Our reporter spent three weeks on the ground to find out.",
    "Here's a simple framework for thinking about it.",
    "Plus: a reader's question about getting started, answered.",
    "The debate is far from settled, but the direction is becoming clearer.",
)


def loyalty_rewards(f: Fields) -> Draft:
    prog, domain, unit = f.pick(V.LOYALTY)
    f.set_brand(prog, domain)
    f["unit"] = unit
    f["points"] = f"{f.r.randint(120, 98000):,}"
    f["tier"] = f.pick(V.TIERS)
    f["rew"] = f.link(f.pick(("rewards", "account/points", "member", "redeem")))
    f["earn"] = str(f.r.randint(20, 4000))
    f["left"] = f"{f.r.randint(50, 8000):,}"
    kind = f.r.randrange(5)
    if kind == 0:
        subject = f.one(
            (
                "Your {brand} balance: {points} {unit}",
                "Your monthly {unit} summary",
                "Here's your {month} rewards statement",
            )
        )
        core = [
            f.one(("You have {points} {unit} available.", "Your current balance is {points} {unit}.")),
            f.one(("You earned {earn} {unit} last month.", "That's enough for a free reward!", None)),
            f.one(("See your rewards: {rew}", "View activity: {rew}")),
        ]
    elif kind == 1:
        subject = f.one(
            (
                "Your {unit} expire on {date}",
                "Don't lose your {points} {unit}",
                "Reminder: rewards expiring soon",
            )
        )
        core = [
            f.one(
                (
                    "{points} {unit} in your account will expire on {date}.",
                    "Your reward expires on {date}. Use it before it's gone.",
                )
            ),
            f.one(("Redeem now: {rew}", "Any qualifying activity keeps them active.")),
        ]
    elif kind == 2:
        subject = f.one(
            (
                "Welcome to {tier} status",
                "Congratulations, you've reached {tier}!",
                "Your {tier} benefits are waiting",
            )
        )
        core = [
            f.one(
                ("Congratulations! You've reached {tier} status in {brand}.", "You're now a {tier} member.")
            ),
            f.one(
                (
                    "Enjoy perks like priority check-in, bonus {unit} and free upgrades when available.",
                    "Your new benefits include bonus {unit} on every purchase and member-only events.",
                )
            ),
            f.fmt("See your benefits: {rew}"),
        ]
    elif kind == 3:
        subject = f.one(
            (
                "You're {left} {unit} away from {tier}",
                "Almost there: {tier} is within reach",
                "Your progress to {tier}",
            )
        )
        core = [
            f.one(
                (
                    "You're just {left} {unit} away from {tier} status.",
                    "Earn {left} more {unit} by {date2} to unlock {tier}.",
                )
            ),
            f.fmt("Track your progress: {rew}"),
        ]
    else:
        subject = f.one(
            (
                "A birthday treat for you 🎂",
                "Your member perk is here",
                "Happy birthday from {brand}",
                "Your free reward is ready",
            )
        )
        core = [
            f.one(
                (
                    "Happy birthday! Enjoy a free reward on us, valid for 7 days.",
                    "As a member, you've unlocked a free perk this month.",
                )
            ),
            f.one(("It's already loaded to your account.", "Find it in the app under Rewards.")),
            f.fmt("View reward: {rew}"),
        ]
    sender = brand_sender(
        f, ("rewards", "members", "loyalty", "no-reply", "news"), subdomains=("", "e.", "email.")
    )
    return Draft(
        sender,
        subject,
        brand_body(f, core, footer=FOOT_MKT, p_greet=0.6, p_sign=0.4, p_foot=0.8),
        ["view_offer", "unsubscribe"],
    )


def event_marketing(f: Fields) -> Draft:
    org, domain, kind_e = f.pick(V.EVENT_ORGANIZERS)
    f.set_brand(org, domain)
    f["ev_date"] = f.dstr(f.day(5, 60))
    f["reg"] = f.link(f.pick(("events/register", "webinar/signup", "tickets", "event/" + f.code(6).lower())))
    f["etopic"] = f.pick(V.EVENT_TOPICS)
    if kind_e == "webinar":
        subject = f.one(
            (
                "Live webinar: {etopic}",
                "[Webinar] {etopic} - save your seat",
                "Join us on {ev_date}: {etopic}",
                "You're invited to our live session on {etopic}",
            )
        )
        core = [
            f.one(
                (
                    "Join our experts on {ev_date} at {time2} for a 45-minute live session on {etopic}.",
                    "In this free webinar, you'll learn practical ways to approach {etopic}.",
                )
            ),
            "What you'll learn:\n- "
            + "\n- ".join(
                f.some(
                    (
                        "Proven frameworks from our customers",
                        "A live product demo",
                        "Q&A with our panel",
                        "Benchmarks from 500+ teams",
                        "A checklist you can use tomorrow",
                    ),
                    2,
                    3,
                )
            ),
            f.one(
                (
                    "Register for free: {reg}",
                    "Save your seat: {reg}",
                    "Can't make it live? Register and we'll send the recording.",
                )
            ),
        ]
    elif kind_e == "conference":
        subject = f.one(
            (
                "Early-bird tickets end Friday",
                "{brand} {year}: registration is open",
                "Last chance for early-bird pricing",
                "Join 10,000 attendees in {city}",
            )
        )
        core = [
            f.one(
                (
                    "{brand} returns to {city} on {ev_date}. Three days of talks, workshops and networking.",
                    "Registration for our annual conference is now open. Early-bird pricing ends soon.",
                )
            ),
            f.one(
                (
                    "Get your pass for {amount} before prices go up.",
                    "Use code {promo_code} for {pct}% off your ticket.",
                )
            ),
            f.fmt("Register now: {reg}"),
        ]
    elif kind_e == "concert":
        f["artist"] = f.pick(V.ARTISTS)
        subject = f.one(
            (
                "{artist} live in {city} - tickets on sale now",
                "Presale: {artist} on {ev_date}",
                "Just announced: {artist} tour",
                "Don't miss {artist} live",
            )
        )
        core = [
            f.one(
                (
                    "{artist} is coming to {city} on {ev_date}! Tickets are on sale now.",
                    "Fans of {artist}: presale access starts Thursday at 10 AM.",
                )
            ),
            f.one(("Get tickets: {reg}", "Buy tickets before they sell out: {reg}")),
            None,
        ]
    else:
        f["etopic"] = f.pick(
            (
                "beginner bike maintenance",
                "holiday wreath making",
                "a wine tasting",
                "coding for kids",
                "an author signing",
                "trail running basics",
            )
        )
        subject = f.one(
            (
                "Join us in store: {etopic}",
                "Free workshop at {brand} this Saturday",
                "You're invited to an in-store event",
                "Author signing on {ev_date}",
            )
        )
        core = [
            f.one(
                (
                    "Join us at our {city} store on {ev_date} at {time2} for {etopic}.",
                    "This Saturday we're hosting {etopic}. Spaces are limited.",
                )
            ),
            f.one(("Reserve your free spot: {reg}", "Sign up here: {reg}")),
        ]
    sender = brand_sender(
        f, ("events", "webinars", "marketing", "hello", "tickets", "news"), subdomains=("", "e.", "info.")
    )
    return Draft(
        sender,
        subject,
        brand_body(f, core, footer=FOOT_MKT, p_greet=0.6, p_sign=0.5, p_foot=0.85),
        ["register_event", "unsubscribe", "delete"],
    )


def survey_request(f: Fields) -> Draft:
    f.set_brand(
        *f.pick(
            V.RETAILERS
            + V.HOTELS[:4]
            + V.FOOD_APPS[:2]
            + (("Midtown Auto Service", "midtownauto.com"), ("Comcast", "comcast.com"))
        )
    )
    f["survey"] = f.link(f.pick(("survey", "feedback", "review", "rate")) + f"?id={f.code(10).lower()}")
    f["minutes"] = str(f.r.randint(1, 5))
    kind = f.r.randrange(4)
    if kind == 0:
        subject = f.one(
            (
                "How did we do?",
                "Tell us about your experience",
                "We'd love your feedback",
                "Quick {minutes}-minute survey",
            )
        )
        core = [
            f.one(
                (
                    "Thanks for choosing {brand}. We'd love to hear about your recent experience.",
                    "Your opinion helps us improve. This short survey takes about {minutes} minutes.",
                )
            ),
            f.one(("Take the survey: {survey}", "Start survey: {survey}")),
        ]
    elif kind == 1:
        subject = f.one(
            (
                "Rate your recent purchase",
                "How are you liking your {product}?",
                "Review your {product}",
                "Share your thoughts on your order",
            )
        )
        core = [
            f.one(
                (
                    "How are you enjoying your {product}? Your review helps other shoppers.",
                    "Rate your purchase and help the community.",
                )
            ),
            f.one(("★★★★★ Write a review: {survey}", "Leave a review: {survey}")),
        ]
    elif kind == 2:
        subject = f.one(
            ("How likely are you to recommend {brand}?", "One question for you", "Help us improve")
        )
        core = [
            f.fmt("On a scale of 0-10, how likely are you to recommend {brand} to a friend or colleague?"),
            "0  1  2  3  4  5  6  7  8  9  10",
            f.fmt("Click a number to answer: {survey}"),
        ]
    else:
        subject = f.one(("Tell us about your stay", "How was your visit?", "Your opinion matters to us"))
        core = [
            f.one(
                (
                    "Thank you for staying with us. Please tell us about your stay in a short guest survey.",
                    "Thanks for visiting {brand} on {past}. How did we do?",
                )
            ),
            f.one(("Share feedback: {survey}", "It only takes {minutes} minutes: {survey}")),
            f.one(("As a thank you, you'll be entered into a draw to win a {amount} gift card.", None)),
        ]
    platform = f.pick(V.SURVEY_PLATFORMS)
    if f.chance(0.3):
        sender = f"{f['brand']} via {platform} <survey@{platform.lower()}.com>"
    else:
        sender = brand_sender(
            f, ("feedback", "survey", "no-reply", "reviews", "customercare"), subdomains=("", "e.")
        )
    return Draft(
        sender,
        subject,
        brand_body(f, core, footer=FOOT_MKT, p_foot=0.7),
        ["take_survey", "unsubscribe", "delete"],
    )


RENDERERS: dict[str, Callable[[Fields], Draft]] = {
    "security_alert": security_alert,
    "phishing": phishing,
    "bill_due": bill_due,
    "fraud_alert": fraud_alert,
    "receipt": receipt,
    "shipping_update": shipping_update,
    "calendar_invite": calendar_invite,
    "travel": travel,
    "appointment": appointment,
    "work": work,
    "personal": personal,
    "financial_statement": financial_statement,
    "account_update": account_update,
    "school_family": school_family,
    "social_notification": social_notification,
    "promotion": promotion,
    "newsletter": newsletter,
    "loyalty_rewards": loyalty_rewards,
    "event_marketing": event_marketing,
    "survey_request": survey_request,
}
