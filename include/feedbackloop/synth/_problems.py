"""Problem-area variants: emails whose surface looks like another category.

Each variant is registered under ``(true category, problem area)`` together with the
*confusable* category: the one a classifier that reads the surface would pick. The label is
always the true category, decided by the taxonomy descriptions (e.g. a phishing email styled
as a security alert is ``phishing``; a card statement that will be paid by AutoPay is a
``financial_statement``, not a ``bill_due``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from feedbackloop.synth import _mail as M
from feedbackloop.synth import _vocab as V
from feedbackloop.synth._fields import Draft, Fields, personal_address, work_address
from feedbackloop.synth._foreign import render_foreign

Variant = Callable[[Fields], Draft]


# --- receipt_vs_bill -------------------------------------------------------------------------


def receipt_styled_as_bill(f: Fields) -> Draft:
    brand, domain, what = f.pick(V.BILLERS)
    f.set_brand(brand, domain)
    f["what"] = what
    subject = f.one(
        (
            "Your invoice {invoice_no}",
            "Invoice {invoice_no} for {month}",
            "{brand} invoice - {amount}",
            "Your {month} {what} invoice",
            "Statement of charges {invoice_no}",
        )
    )
    core = [
        f.one(
            (
                "Here is your invoice for {month}. The total of {amount} was charged to your card ending in {last4} on {today}.",
                "Invoice {invoice_no} ({amount}) has been paid in full with AutoPay. Thank you!",
                "This invoice is for your records. Payment of {amount} was received on {today}.",
            )
        ),
        f.fmt(
            "Invoice number: {invoice_no}\nInvoice amount: {amount}\nAmount paid: {amount}\nBalance due: {cur}0.00\nStatus: PAID"
        ),
        f.one(
            (
                "No payment is required.",
                "There is nothing further to pay.",
                "Keep this for your records; no action is needed.",
            )
        ),
    ]
    sender = M.brand_sender(f, ("billing", "invoices", "no-reply"))
    return Draft(
        sender, subject, M.brand_body(f, core, greet=M.GREET_NEUTRAL), ["save_receipt", "contact_support"]
    )


def bill_styled_as_receipt(f: Fields) -> Draft:
    f.set_brand(
        *f.pick(
            V.COMPANIES
            + (("Squarespace", "squarespace.com"), ("Atlassian", "atlassian.com"), ("GoDaddy", "godaddy.com"))
        )
    )
    f["due"] = f.dstr(f.day(4, 20))
    f["pay"] = f.link(f"invoices/{f['invoice_no']}/pay")
    subject = f.one(
        (
            "Thank you for your business - invoice {invoice_no}",
            "Your receipt and invoice {invoice_no}",
            "Thanks for being a {brand} customer",
            "Order summary and invoice {invoice_no}",
        )
    )
    core = [
        f.one(
            (
                "Thank you for your business! Please find your invoice below.",
                "Thanks for choosing {brand}. Here's your invoice summary.",
            )
        ),
        f.fmt(
            "Invoice: {invoice_no}\nDescription: Annual plan renewal\nAmount due: {amount}\nDue date: {due}\nStatus: OPEN"
        ),
        f.one(
            (
                "Please pay by {due} to avoid interruption of service.",
                "Payment is due by {due}. Pay online: {pay}",
                "Your card on file could not be charged, so this invoice is still open. Please pay by {due}.",
            )
        ),
    ]
    sender = M.brand_sender(f, ("billing", "receipts", "accounts"))

    return Draft(
        sender, subject, M.brand_body(f, core, greet=M.GREET_NEUTRAL), ["pay_invoice", "set_payment_reminder"]
    )


# --- promo_as_account_notice -----------------------------------------------------------------


def promo_as_account_notice(f: Fields) -> Draft:
    f.set_brand(
        *f.pick(
            V.ACCOUNT_SERVICES[:16]
            + (("Hulu", "hulu.com"), ("Xfinity", "xfinity.com"), ("Verizon", "verizon.com"))
        )
    )
    f["offer"] = f.link(f.pick(("upgrade", "account/offer", "plans/premium")))
    subject = f.one(
        (
            "Important update about your account",
            "Account notice: your plan is eligible for an upgrade",
            "Action recommended on your {brand} account",
            "Your account status has changed",
            "Notice regarding your {brand} subscription",
        )
    )
    core = [
        f.one(
            (
                "Your account has been selected for an exclusive upgrade: get Premium for {pct}% off for the next 3 months.",
                "As a valued customer, your account qualifies for our best-ever price on the annual plan - save {pct}% today.",
                "Good news about your account: you've unlocked a limited-time offer of 3 months of Premium for just {small_amount}.",
            )
        ),
        f.one(
            (
                "Upgrade now before the offer ends on {date}: {offer}",
                "Claim your offer in Account settings or at {offer}",
                "Activate it in one click: {offer}",
            )
        ),
        "Offer available to eligible accounts only. Terms apply.",
    ]
    sender = M.brand_sender(
        f, ("account-services", "account", "notices", "offers"), display=f"{f['brand']} Account Services"
    )
    return Draft(
        sender,
        subject,
        M.brand_body(f, core, greet=M.GREET_NEUTRAL, footer=M.FOOT_MKT, p_foot=0.9),
        ["view_offer", "unsubscribe", "delete"],
    )


# --- phishing_as_security_alert --------------------------------------------------------------


def phishing_as_security_alert(f: Fields) -> Draft:
    M.phish_domain(f, "account")
    subject = f.one(
        (
            "Security alert: new sign-in to your {brand} account",
            "Unusual sign-in activity detected",
            "New login from {device}",
            "Your {brand} account was accessed from a new device",
            "Was this you? Sign-in attempt blocked",
        )
    )
    core = [
        f.one(
            (
                "We detected a new sign-in to your {brand} account from {device} in {city}, {country}.",
                "Someone just signed in to your account from an unrecognized device ({device}).",
            )
        ),
        f.fmt("Location: {city}, {country}\nIP: {ip}\nTime: {today} {time}") if f.chance(0.6) else None,
        f.one(
            (
                "If this wasn't you, verify your account immediately at {bad} or it will be locked within 24 hours.",
                "Secure your account now: {bad}\nYou will be asked to confirm your email, password and the code we send you.",
                "To keep your account, sign in here and confirm your identity: {bad}",
            )
        ),
        f.one(
            ("Failure to verify will result in permanent suspension.", "Do not ignore this message.", None)
        ),
    ]
    sender = f"{f['brand']} Security <{f.pick(('security', 'no-reply', 'account-security', 'alert'))}@{f['domain']}>"
    return Draft(
        sender, subject, M.brand_body(f, core, greet=M.PHISH_GREET, p_foot=0.5), ["report_phishing", "delete"]
    )


# --- newsletter_vs_promotion -----------------------------------------------------------------


def newsletter_with_shopping(f: Fields) -> Draft:
    f.set_brand(*f.pick(V.NEWSLETTERS))
    f["sponsor"] = f.pick(V.RETAILERS)[0]
    heads = [
        f.pick(
            (
                "Why retailers are discounting earlier every year",
                "The economics of the Black Friday sale",
                "Is the coupon dead? What shoppers actually do",
                "How flash sales hack your brain",
                "The real cost of free shipping",
                "Inside the subscription-box boom",
            )
        )
    ] + M._headlines(f, 2)
    subject = f.one(("{brand}: " + heads[0], heads[0], "Deals, discounts and what they really cost you"))
    core = [
        f.one(
            (
                "Good morning. Today we're looking at sales - not selling you anything, promise.",
                "This week's issue is about shopping, and why everything seems to be on sale all the time.",
            )
        ),
        "\n\n".join(f"{h}\n{f.one(M._BLURBS)}" for h in heads),
        f.fmt("Sponsored: this issue is supported by {sponsor}.") if f.chance(0.5) else None,
        f.one(
            (
                "Unsubscribe: {unsub}",
                "You're receiving this because you subscribed to {brand}. Unsubscribe: {unsub}",
            )
        ),
    ]
    sender = f"{f['brand']} <{f.pick(('newsletter', 'hello', 'editor'))}@{f['domain']}>"
    return Draft(sender, subject, "\n\n".join(c for c in core if c), ["read_later", "unsubscribe"])


def promotion_styled_as_newsletter(f: Fields) -> Draft:
    f.set_brand(*f.pick(V.RETAILERS))
    f["issue"] = str(f.r.randint(8, 160))
    f["shop"] = f.link("journal/" + f.code(6).lower())
    f["line"] = f.pick(V.PRODUCT_LINES)
    subject = f.one(
        (
            "The {brand} Journal | Issue {issue}",
            "The Edit: {line}",
            "Our weekly stories: {line}",
            "{brand} Notes - Issue {issue}",
        )
    )
    core = [
        f.one(
            (
                "In this issue: how to style {line}, plus our team's favorite picks.",
                "Stories from our studio, and the pieces we can't stop wearing.",
            )
        ),
        f.fmt("Editor's picks:\n- {product} - {small_amount}\n- {product2} - {amount}"),
        f.one(
            (
                "Everything in this edit is {pct}% off until {date} with code {promo_code}.",
                "Shop the edit now and get free shipping: {shop}",
                "Readers get {pct}% off this week only: {shop}",
            )
        ),
    ]
    sender = M.brand_sender(f, ("journal", "stories", "news", "hello"), display=f"{f['brand']} Journal")
    return Draft(
        sender,
        subject,
        M.brand_body(f, core, footer=M.FOOT_MKT, p_greet=0.3, p_sign=0.3, p_foot=0.9),
        ["view_offer", "unsubscribe", "delete"],
    )


# --- shipping_vs_receipt ---------------------------------------------------------------------


def order_confirmation_with_delivery(f: Fields) -> Draft:
    f.set_brand(*f.pick(V.RETAILERS))
    f["eta"] = f.dstr(f.day(2, 7))
    subject = f.one(
        (
            "Order {order} confirmed - arriving {eta}",
            "Your order is confirmed! Estimated delivery {eta}",
            "Thanks for your order - delivery by {eta}",
        )
    )
    core = [
        f.one(
            (
                "Thanks for your order! We've received it and it will be delivered by {eta}.",
                "Your order {order} is confirmed. Estimated delivery: {eta}.",
            )
        ),
        f.fmt(
            "{qty} x {product}\nOrder total: {amount}\nPaid with card ending in {last4}\nShipping to: {street_addr}"
        ),
        f.one(
            (
                "We'll email you a tracking number as soon as it ships.",
                "You'll get another email when your package is on its way.",
            )
        ),
    ]
    sender = M.brand_sender(f, ("orders", "auto-confirm", "no-reply"))
    return Draft(sender, subject, M.brand_body(f, core), ["save_receipt", "contact_support"])


def shipped_with_order_summary(f: Fields) -> Draft:
    f.set_brand(*f.pick(V.RETAILERS))
    carrier, domain, pattern = f.pick(V.CARRIERS)
    f["carrier"] = carrier
    f["tracking"] = pattern.format(a=f.code(6), b=f.digits(8), c=f.digits(4))
    f["track"] = f.link(f"track?num={f['tracking']}", domain=domain)
    subject = f.one(
        (
            "Your order {order} has shipped",
            "Shipped! Order {order} - {amount}",
            "On its way: your {brand} order",
        )
    )
    core = [
        f.one(
            (
                "Good news! Your order {order} has shipped with {carrier} and is on its way.",
                "Your package is on its way. Expected delivery: {date}.",
            )
        ),
        f.fmt("Order {order}\n{qty} x {product}\nOrder total: {amount}\nPayment: card ending in {last4}"),
        f.fmt("Tracking number: {tracking}\nTrack your package: {track}"),
    ]
    sender = M.brand_sender(f, ("shipping", "orders", "no-reply"))
    return Draft(sender, subject, M.brand_body(f, core), ["track_package", "contact_support"])


# --- invite_in_work_thread ------------------------------------------------------------------


def invite_in_work_thread(f: Fields) -> Draft:
    first, full, addr = M._colleague(f)
    f["q"] = str(f.r.randint(1, 4))
    f["when_date"] = f.dstr(f.day(1, 9))
    f["room"] = f.pick(("Zoom", "Room 3A", "Teams", "the big conference room", "Google Meet"))
    subject = f.one(("Re: {topic}", "RE: {topic} - next steps", "Re: Re: {topic}", "Fwd: {topic}"))
    earlier = f.one(
        (
            "I think we need to decide on {topic} this week. There are still open questions about scope and budget.",
            "Attached are the latest numbers for {topic}. We're about 10% over, mostly because of vendor costs.",
            "Can we get everyone aligned on {topic}? The client is asking for a date.",
        )
    )
    core = [
        f.one(
            (
                "Thanks all. Rather than going back and forth here, let's discuss live.",
                "Good points. I think this needs a proper conversation.",
                "Agree with the above.",
            )
        ),
        f.one(
            (
                "I've sent an invite for {when_date} at {time} ({room}, 30 min). Please accept or propose another time.",
                "Invitation below for {when_date}, {time} - please RSVP so I can book {room}.",
                "Can you all make {when_date} at {time}? Calendar invite attached, please accept or decline.",
            )
        ),
        f.fmt(
            "Invitation: {topic} sync\nWhen: {when_date} {time} - {time_end}\nWhere: {room}\nAccept | Tentative | Decline"
        ),
    ]
    body = M.person_body(
        f,
        core,
        M.work_signature(f, first, full, f["company"]),
        greet=("Hi all,", "Team,", "Hi {name},"),
        signoffs=M.SIGNOFF_WORK,
    )
    f.person("prev")
    body += "\n\n" + M.quoted(f, f["prev_full"], work_address(f, f["prev"], "x", f["cdomain"]), earlier)
    return Draft(f"{full} <{addr}>", subject, body, ["rsvp", "add_to_calendar", "reply"])


def invite_in_personal_thread(f: Fields) -> Draft:
    first, last = f.person("pal")
    when = f.day(3, 12)
    f["when_date"] = f.dstr(when)
    f["rsvp_by"] = f.dstr(when - timedelta(days=1))
    subject = f.one(("Re: catching up", "Re: long time!", "Re: summer plans", "Re: photos"))
    core = [
        f.one(
            (
                "So good to hear from you! Everything's fine here, just busy.",
                "Haha yes, it's been way too long.",
            )
        ),
        f.one(
            (
                "Let's actually do something about it: come for dinner at ours on {when_date} at {time2}? Can you make it? Let me know by {rsvp_by}.",
                "We're having a few people over on {when_date} from {time2} for my birthday - you're invited! RSVP so I know numbers.",
                "Are you free {when_date}? We'd love to have you over for lunch at {time2}. Just reply yes or no.",
            )
        ),
        f.one(("Bring the kids!", "No need to bring anything.", None)),
    ]
    body = M.person_body(f, core, first)
    body += "\n\n" + M.quoted(
        f,
        f["full"],
        f["email"],
        f.one(
            (
                "It's been ages! How are you all?",
                "We should really catch up soon.",
                "Loved the photos, the kids have grown so much!",
            )
        ),
    )
    return Draft(
        f"{first} {last} <{personal_address(f, first, last)}>",
        subject,
        body,
        ["rsvp", "reply", "add_to_calendar"],
    )


# --- fraud_vs_phishing ----------------------------------------------------------------------


def urgent_genuine_fraud_alert(f: Fields) -> Draft:
    f.set_brand(*f.pick(V.BANKS))
    f["merchant"] = f.pick(
        ("ONLINE PMT ELECTRONICS", "GIFT CARD MALL", "CRYPTO.COM", "WALMART.COM", "TICKETMASTER", "AMZN Mktp")
    )
    f["fraud_amount"] = f.money(200, 2500)
    subject = f.one(
        (
            "URGENT: suspicious activity on your card",
            "Immediate action required: fraud alert",
            "Your card is blocked - confirm recent activity",
            "ALERT: Did you authorize {fraud_amount}?",
        )
    )
    core = [
        f.one(
            (
                "We've detected suspicious activity on your {brand} card ending in {last4} and have blocked it to protect you.",
                "URGENT: a charge of {fraud_amount} at {merchant} was attempted on your card ending in {last4}.",
            )
        ),
        f.fmt("Merchant: {merchant}\nAmount: {fraud_amount}\nDate: {today}"),
        f.one(
            (
                "Please confirm whether you made this transaction in the {brand} mobile app, or call the number on the back of your card.",
                "Reply Y if you made this purchase or N if you didn't to our text message from 72166.",
            )
        ),
        f.one(
            (
                "We will never ask for your PIN, password or one-time passcode. Do not share them with anyone.",
                "Never share your online banking password, even with us.",
            )
        ),
    ]
    sender = M.brand_sender(f, ("fraud-alerts", "alerts"), subdomains=("", "alerts."))
    return Draft(
        sender,
        subject,
        M.brand_body(f, core, greet=M.GREET_NEUTRAL, p_foot=0.5),
        ["verify_transaction", "contact_support", "review_security"],
    )


def phishing_as_fraud_alert(f: Fields) -> Draft:
    M.phish_domain(f, "account")
    f["fraud_amount"] = f.money(300, 2500)
    f["merchant"] = f.pick(
        ("APPLE.COM/BILL", "BESTBUY", "WALMART #2291", "ZELLE TRANSFER", "GOOGLE *SERVICES")
    )
    subject = f.one(
        (
            "Did you authorize this transaction of {fraud_amount}?",
            "Fraud alert: unauthorized charge on your card",
            "Your card has been suspended - suspicious transaction",
            "Transaction alert: {merchant}",
        )
    )
    core = [
        f.one(
            (
                "A transaction of {fraud_amount} at {merchant} was flagged on your {brand} account.",
                "We have suspended your card after an unauthorized payment of {fraud_amount}.",
            )
        ),
        f.one(
            (
                "If you did NOT authorize this payment, click here to cancel it: {bad}\nYou will need to enter your card number, expiry date and CVV to confirm your identity.",
                "To dispute the charge, log in with your online banking username and password at {bad}",
                "Call us now at {phone} and read out the security code we send you so we can reverse the payment.",
            )
        ),
        f.one(
            (
                "If we don't hear from you within 24 hours the charge will be final.",
                "Act now to avoid losing your funds.",
            )
        ),
    ]
    sender = f"{f['brand']} Fraud Department <{f.pick(('fraud', 'alerts', 'security'))}@{f['domain']}>"
    return Draft(
        sender, subject, M.brand_body(f, core, greet=M.PHISH_GREET, p_foot=0.3), ["report_phishing", "delete"]
    )


# --- statement_vs_bill ----------------------------------------------------------------------


def statement_with_autopay(f: Fields) -> Draft:
    f.set_brand(*f.pick(V.BANKS))
    f["card"] = f.pick(V.CARDS)
    f["autopay"] = f.dstr(f.day(5, 20))
    f["acct"] = f.digits(4)
    f["stmt"] = f.link("statements")
    subject = f.one(
        (
            "Your {card} statement is ready",
            "Your {month} statement is available",
            "New statement: card ending in {last4}",
            "Your statement balance is {big_amount}",
        )
    )
    core = [
        f.one(
            (
                "Your {month} statement for the {brand} {card} ending in {last4} is now available.",
                "Your latest statement is ready to view online.",
            )
        ),
        f.fmt(
            "Statement balance: {big_amount}\nAutoPay: ON (full balance)\nAutoPay date: {autopay}\nFrom: checking account ending in {acct}"
        ),
        f.one(
            (
                "Because AutoPay is on, the full balance will be paid automatically. You don't need to do anything.",
                "No payment is needed from you: your AutoPay will cover the statement balance on {autopay}.",
            )
        ),
        f.fmt("View your statement: {stmt}"),
    ]

    sender = M.brand_sender(f, ("statements", "no-reply", "alerts"))
    return Draft(
        sender, subject, M.brand_body(f, core, greet=M.GREET_NEUTRAL), ["view_statement", "save_document"]
    )


def bill_styled_as_statement(f: Fields) -> Draft:
    if f.chance(0.5):
        f.set_brand(*f.pick(V.BANKS))
        f["what"] = f"{f.pick(V.CARDS)} ending in {f['last4']}"
    else:
        brand, domain, what = f.pick(V.BILLERS)
        f.set_brand(brand, domain)
        f["what"] = f"{what} account {f['account_no']}"
    f["due"] = f.dstr(f.day(5, 20))
    f["min"] = f.money(25, 120)
    f["pay"] = f.link("pay")
    subject = f.one(
        (
            "Your {month} statement is available",
            "Your e-statement is ready",
            "Statement ready for {what}",
            "Your monthly statement",
        )
    )
    core = [
        f.one(("Your statement for {what} is ready.", "Your {month} statement is now available online.")),
        f.fmt("New balance: {amount}\nMinimum payment due: {min}\nPayment due date: {due}"),
        f.one(
            (
                "Please make at least the minimum payment by {due} to avoid a late fee.",
                "Pay now: {pay}",
                "AutoPay is not set up for this account. Pay by {due} to avoid late charges.",
            )
        ),
    ]

    sender = M.brand_sender(f, ("statements", "estatements", "no-reply"))
    return Draft(
        sender,
        subject,
        M.brand_body(f, core, greet=M.GREET_NEUTRAL),
        ["pay_invoice", "view_statement", "set_payment_reminder"],
    )


# --- webinar_vs_invite ----------------------------------------------------------------------


def webinar_styled_as_invite(f: Fields) -> Draft:
    org, domain, _ = f.pick([e for e in V.EVENT_ORGANIZERS if e[2] in ("webinar", "conference")])
    f.set_brand(org, domain)
    f["etopic"] = f.pick(V.EVENT_TOPICS)
    f["ev_date"] = f.dstr(f.day(3, 30))
    f["reg"] = f.link("webinar/register")
    first, _last = f.person("host")
    subject = f.one(
        (
            "Invitation: {etopic} @ {ev_date} {time}",
            "You're invited: {etopic} - {ev_date}",
            "{name}, you're invited to join us on {ev_date}",
            "Calendar hold: {etopic}",
        )
    )
    core = [
        f.one(
            (
                "{host_full} from {brand} would like to invite you to a live session: {etopic}.",
                "You're invited! Join {host_full} and guests for {etopic}.",
            )
        ),
        f.fmt("When: {ev_date}, {time} - {time_end}\nWhere: Online (link after registration)"),
        f.one(
            (
                "Save your seat: {reg}",
                "Register now and add it to your calendar: {reg}",
                "Spots are limited - register here: {reg}",
            )
        ),
        "Add to calendar: Google | Outlook | iCal",
    ]
    sender = f"{f['host_full']} at {org} <{f.pick(('events', 'webinars', first.lower()))}@{f.pick(('', 'info.', 'go.'))}{domain}>"
    return Draft(
        sender,
        subject,
        M.brand_body(
            f, core, greet=("Hi {name},", "Hello {name},"), footer=M.FOOT_MKT, p_sign=0.0, p_foot=0.85
        ),
        ["register_event", "unsubscribe", "delete"],
    )


def internal_event_invite(f: Fields) -> Draft:
    first, full, addr = M._colleague(f)
    f["etopic"] = f.pick(V.EVENT_TOPICS)
    when = f.day(3, 14)
    f["when_date"] = f.dstr(when)
    f["rsvp_by"] = f.dstr(when - timedelta(days=1))
    f["fmt_"] = f.pick(("Lunch & Learn", "Brown bag session", "Tech talk", "Team workshop"))
    subject = f.one(
        (
            "Invitation: {fmt_}: {etopic} @ {when_date} {time}",
            "{fmt_}: {etopic}",
            "Invitation: {fmt_} - {when_date}",
        )
    )
    core = [
        f.one(
            (
                "I'm hosting a {fmt_} on {etopic} for our team and would love for you to join.",
                "Inviting a few of you to an informal {fmt_}: {etopic}. Lunch is on us!",
            )
        ),
        f.fmt("When: {when_date}, {time} - {time_end}\nWhere: Room 2C / Zoom"),
        f.one(
            (
                "Please accept or decline so I can order the right amount of food.",
                "RSVP by {rsvp_by}.",
                "Accept | Tentative | Decline",
            )
        ),
    ]
    body = M.person_body(
        f,
        core,
        M.work_signature(f, first, full, f["company"]),
        greet=("Hi all,", "Hi {name},", "Hey team,"),
        signoffs=M.SIGNOFF_WORK,
    )
    return Draft(f"{full} <{addr}>", subject, body, ["rsvp", "add_to_calendar", "reply"])


# --- loyalty_vs_promotion -------------------------------------------------------------------


def loyalty_with_sales_tone(f: Fields) -> Draft:
    prog, domain, unit = f.pick(V.LOYALTY)
    f.set_brand(prog, domain)
    f["unit"] = unit
    f["points"] = f"{f.r.randint(500, 60000):,}"
    f["rew"] = f.link("rewards/redeem")
    f["tier"] = f.pick(V.TIERS)
    subject = f.one(
        (
            "Don't miss out! Your {points} {unit} expire soon 🔥",
            "LAST CHANCE: use your {unit} before {date}",
            "Treat yourself - you've got {points} {unit} waiting!",
            "Your reward is about to expire!",
        )
    )
    core = [
        f.one(
            (
                "Your {points} {unit} expire on {date}. Redeem them now for free rewards!",
                "You have {points} {unit} - enough for a free reward. Don't let them go to waste!",
            )
        ),
        f.one(("Redeem now: {rew}", "Browse rewards and redeem: {rew}")),
        f.one(("Your {tier} member benefits are listed in the app.", "Points balance as of {today}.", None)),
    ]
    sender = M.brand_sender(f, ("rewards", "members"))

    return Draft(
        sender, subject, M.brand_body(f, core, footer=M.FOOT_MKT, p_foot=0.85), ["view_offer", "unsubscribe"]
    )


def promotion_for_members(f: Fields) -> Draft:
    prog, domain, unit = f.pick(V.LOYALTY)
    f.set_brand(prog.split(" ")[0], domain)
    f["prog"] = prog
    f["unit"] = unit
    f["shop"] = f.link("members-sale")
    subject = f.one(
        (
            "Members save {pct}% this weekend",
            "Exclusive for {prog} members: {pct}% off",
            "Member-only sale starts now",
            "Your member price is waiting",
        )
    )
    core = [
        f.one(
            (
                "As a {prog} member, take {pct}% off sitewide this weekend only.",
                "Members get early access to our biggest sale: up to {pct}% off.",
            )
        ),
        f.one(("Use code {promo_code} at checkout. Shop now: {shop}", "Shop the sale: {shop} (ends {date})")),
        f.one(("Plus earn double {unit} on every purchase.", "Exclusions apply.", None)),
    ]
    sender = M.brand_sender(f, ("offers", "news", "deals"))
    return Draft(
        sender,
        subject,
        M.brand_body(f, core, footer=M.FOOT_MKT, p_foot=0.9),
        ["view_offer", "unsubscribe", "delete"],
    )


# --- social_vs_personal ---------------------------------------------------------------------


def social_message_notification(f: Fields) -> Draft:
    f.set_brand(
        *f.pick(
            (
                ("LinkedIn", "linkedin.com"),
                ("Facebook", "facebookmail.com"),
                ("Instagram", "mail.instagram.com"),
                ("Discord", "discord.com"),
                ("Meetup", "meetup.com"),
            )
        )
    )
    first, _last = f.person("who")
    f["view"] = f.link("messages")
    subject = f.one(
        (
            "{who_full} sent you a message",
            "New message from {who}",
            '{who}: "Hey {name}! Long time..."',
            "You have 1 new message",
        )
    )
    core = [
        f.one(("{who_full} sent you a message:", "{who} messaged you on {brand}:")),
        f.one(
            (
                '"Hey {name}! Long time no see, how are you doing? We should catch up soon!"',
                '"Hi {name}, congrats on the new role! Would love to hear how it\'s going."',
                '"Hey! Are you still in {city}? I\'ll be in town next month."',
            )
        ),
        f.fmt("Reply on {brand}: {view}"),
        f.one(
            ("You're receiving message notifications. Unsubscribe: {unsub}", "Manage notifications: {unsub}")
        ),
    ]
    sender = f"{f['who_full']} via {f['brand']} <{f.pick(('messages-noreply', 'notification', 'noreply'))}@{f['domain']}>"
    return Draft(sender, subject, "\n\n".join(core), ["view_post", "unsubscribe"])


def personal_mentioning_social(f: Fields) -> Draft:
    first, last = f.person("pal")
    f["net"] = f.pick(("Instagram", "Facebook", "LinkedIn", "Strava", "TikTok"))
    subject = f.one(("saw your post!", "Your {net} post 😍", "Re: your post", "Congrats!!"))
    core = [
        f.one(
            (
                "Just saw your post on {net} about the new apartment - congrats!! It looks amazing.",
                "Saw on {net} that you ran the half marathon, that's incredible!",
                "Your {net} photos from the trip are gorgeous. I'm so jealous.",
            )
        ),
        f.one(
            (
                "I commented but wanted to write properly. How are you really doing?",
                "Tell me everything when you have a minute.",
                "We need to catch up properly, it's been too long.",
            )
        ),
        f.one(("Say hi to {kid} from me.", "Miss you!", None)),
    ]
    return Draft(
        f"{first} {last} <{personal_address(f, first, last)}>",
        subject,
        M.person_body(f, core, first),
        ["reply", "read_later"],
    )


# --- travel_vs_receipt ----------------------------------------------------------------------


def travel_booking_payment(f: Fields) -> Draft:
    airline, domain, iata = f.pick(V.AIRLINES)
    f.set_brand(airline, domain)
    (o_code, o_city), (d_code, d_city) = f.r.sample(V.AIRPORTS, 2)
    f["orig"], f["dest"], f["flight"] = o_city, d_city, f"{iata} {f.r.randint(10, 2999)}"
    f["dep_date"] = f.dstr(f.day(5, 60))
    f["conf"] = f.code(6)
    subject = f.one(
        (
            "Payment confirmation - booking {conf}",
            "Receipt for your booking {conf}",
            "Your payment of {big_amount} was successful",
            "Purchase confirmation: {orig} - {dest}",
        )
    )
    core = [
        f.one(
            (
                "Thank you for your payment. Your booking is confirmed.",
                "We've received your payment of {big_amount}.",
            )
        ),
        f.fmt(
            "Booking reference: {conf}\nFlight {flight}: {orig} → {dest}\nDeparture: {dep_date} at {time}\nTotal paid: {big_amount}\nPayment: Visa ending in {last4}"
        ),
        f.one(
            (
                "Check-in opens 24 hours before departure.",
                "Manage your booking online to select seats.",
                "Please arrive at the airport 2 hours before departure.",
            )
        ),
    ]
    sender = M.brand_sender(f, ("payments", "confirmation", "no-reply"))
    return Draft(sender, subject, M.brand_body(f, core), ["view_itinerary", "add_to_calendar", "check_in"])


def ride_or_trip_receipt(f: Fields) -> Draft:
    brand, domain = f.pick(
        (
            ("Uber", "uber.com"),
            ("Lyft", "lyft.com"),
            ("Bolt", "bolt.eu"),
            ("FREE NOW", "free-now.com"),
            ("Gogo Inflight", "gogoair.com"),
            ("Airport Parking Co", "airportparking.com"),
        )
    )
    f.set_brand(brand, domain)
    f["from_"] = f.pick(
        ("Home", "Terminal 2 Arrivals", f"{f.r.randint(1, 900)} {f.pick(V.STREETS)}", "Central Station")
    )
    f["to_"] = f.pick(
        ("Airport Departures", "Office", "Hotel Lumen", f"{f.r.randint(1, 900)} {f.pick(V.STREETS)}")
    )
    f["day_part"] = f.pick(("Monday morning", "Friday evening", "Sunday afternoon", "Thursday night"))
    subject = f.one(
        (
            "Your {day_part} trip with {brand}",
            "Your receipt from {brand}",
            "Thanks for riding, {name}",
            "{brand} receipt - {today}",
        )
    )
    core = [
        f.one(("Thanks for riding with {brand}. Here's your receipt.", "We hope you enjoyed your trip.")),
        f.fmt(
            "Trip fare: {small_amount}\nTotal: {small_amount}\nPickup: {from_}, {time}\nDrop-off: {to_}\nPaid with card ending in {last4}"
        ),
        f.one(
            (
                "Lost an item? Contact your driver through the app.",
                "Download a PDF of this receipt for expenses.",
                None,
            )
        ),
    ]
    sender = M.brand_sender(f, ("receipts", "noreply", "no-reply"))
    return Draft(
        sender, subject, M.brand_body(f, core), ["save_receipt", "request_refund", "contact_support"]
    )


# --- appointment_vs_invite ------------------------------------------------------------------


def appointment_as_calendar_event(f: Fields) -> Draft:
    kind_p, prov, domain = f.pick(V.PROVIDERS)
    f.set_brand(prov, domain)
    f["service"] = f.pick(V.APPOINTMENT_SERVICES[kind_p])
    f["appt_date"] = f.dstr(f.day(2, 20))
    subject = f.one(
        (
            "Invitation: {service} @ {appt_date} {time}",
            "Event: {service} at {brand}",
            "Calendar: {service} on {appt_date}",
            "{service} - {appt_date} {time} (please confirm)",
        )
    )
    core = [
        f.one(
            (
                "Your {service} at {brand} is booked for {appt_date} at {time}.",
                "You have a {service} scheduled with {brand}.",
            )
        ),
        f.fmt("When: {appt_date}, {time} - {time_end}\nWhere: {street_addr}"),
        f.one(
            (
                "Please confirm your attendance: Confirm | Reschedule | Cancel",
                "An .ics file is attached - add it to your calendar.",
                "Accept this event to add it to your calendar, and confirm by replying C.",
            )
        ),
    ]
    sender = M.brand_sender(f, ("appointments", "calendar", "bookings"))
    return Draft(
        sender,
        subject,
        M.brand_body(f, core, greet=M.GREET_NEUTRAL, p_foot=0.3),
        ["confirm_appointment", "add_to_calendar", "reschedule_appointment"],
    )


def meeting_invite_with_appointment_words(f: Fields) -> Draft:
    first, full, addr = M._colleague(f)
    f["when_date"] = f.dstr(f.day(1, 10))
    f["mt"] = f.pick(
        (
            "Check-in appointment with {name}",
            "1:1 appointment: mid-year review",
            "Consultation: {topic}",
            "Appointment slot: {topic} walkthrough",
        )
    )
    f["mt"] = f.fmt(f["mt"])
    subject = f.one(("Invitation: {mt} @ {when_date} {time}", "{mt}", "Updated invitation: {mt}"))
    core = [
        f.one(
            (
                "Booking us in for a quick chat about {topic}.",
                "I've grabbed a slot for us to go through {topic}.",
                "Sending a calendar invite for our conversation.",
            )
        ),
        f.fmt("When: {when_date}, {time} - {time_end}\nWhere: my office / Teams"),
        "Accept | Tentative | Decline | Propose new time",
    ]
    body = M.person_body(f, core, first, greet=("Hi {name},", "{name},"), signoffs=M.SIGNOFF_WORK)
    return Draft(f"{full} <{addr}>", subject, body, ["rsvp", "add_to_calendar", "reply"])


# --- account_update_vs_security -------------------------------------------------------------


def account_notice_with_security_words(f: Fields) -> Draft:
    f.set_brand(*f.pick(V.ACCOUNT_SERVICES))
    f["eff"] = f.dstr(f.day(10, 40))
    subject, lead = f.variant(
        (
            (
                ("Your data export is ready", "Your archive is ready to download"),
                (
                    "The data export you requested on {past} is ready. For your security, the download link expires in 7 days and you'll need to sign in to access it.",
                ),
            ),
            (
                (
                    "We've updated our Privacy Policy and security practices",
                    "Important: privacy and security update",
                ),
                (
                    "We're updating our Privacy Policy, effective {eff}, to describe our new encryption and security practices in more detail.",
                ),
            ),
            (
                ("Security improvements to your {brand} account", "We're changing how you sign in"),
                (
                    "Starting {eff}, {brand} will support passkeys for all accounts. Your current sign-in method keeps working.",
                ),
            ),
        )
    )
    core = [
        lead,
        f.one(
            (
                "No action is required.",
                "You don't need to do anything right now.",
                "You can review your settings anytime in your account.",
            )
        ),
        f.one(("Learn more: {help}", None)),
    ]
    sender = M.brand_sender(f, ("no-reply", "privacy", "account"))
    return Draft(
        sender, subject, M.brand_body(f, core, greet=M.GREET_NEUTRAL), ["review_account", "save_document"]
    )


def security_change_styled_as_notice(f: Fields) -> Draft:
    f.set_brand(*f.pick(V.ACCOUNT_SERVICES + V.BANKS[:6]))
    f["secure"] = f.link("security")
    subject = f.one(
        (
            "Your account information was updated",
            "Account update confirmation",
            "Your profile has been updated",
            "Changes to your {brand} account",
        )
    )
    core = [
        f.one(
            (
                "This is a confirmation that the email address on your {brand} account was changed to a new address on {today}.",
                "The phone number used for sign-in codes on your {brand} account was updated on {today} at {time}.",
                "A new password was set for your {brand} account on {today}.",
            )
        ),
        f.one(
            (
                "If you made this change, no further action is needed.",
                "If this was you, you can ignore this email.",
            )
        ),
        f.one(
            (
                "If you didn't make this change, secure your account immediately at {secure} and contact support.",
                "Didn't make this change? Your account may be compromised - review your security settings now: {secure}",
            )
        ),
    ]
    sender = M.brand_sender(f, ("account-update", "no-reply", "accounts"))
    return Draft(
        sender,
        subject,
        M.brand_body(f, core, greet=M.GREET_NEUTRAL),
        ["review_security", "change_password", "contact_support"],
    )


# --- survey_vs_receipt ----------------------------------------------------------------------


def survey_with_order_summary(f: Fields) -> Draft:
    f.set_brand(*f.pick(V.RETAILERS + V.FOOD_APPS))
    f["survey"] = f.link(f"review?order={f.code(8).lower()}")
    subject = f.one(
        (
            "How was your order {order}?",
            "Rate your purchase: {product}",
            "Your order {order} - tell us what you think",
            "Tell us about order {order}",
        )
    )
    core = [
        f.one(("Thanks for your recent order. How did we do?", "We hope you're enjoying your purchase!")),
        f.fmt("Order {order}\n{qty} x {product}\nOrder total: {amount}"),
        f.one(
            (
                "Rate your purchase: ★★★★★ {survey}",
                "Take our 2-minute survey: {survey}",
                "Write a review and help other shoppers: {survey}",
            )
        ),
    ]
    sender = M.brand_sender(f, ("reviews", "feedback", "survey"))
    return Draft(
        sender, subject, M.brand_body(f, core, footer=M.FOOT_MKT), ["take_survey", "unsubscribe", "delete"]
    )


def receipt_with_survey_footer(f: Fields) -> Draft:
    d = M.receipt(f)
    f["survey"] = f.link(f"feedback?r={f.code(8).lower()}")
    tail = f.one(
        (
            "How did we do? Tell us in our 1-minute survey: {survey}",
            "Rate your experience ★★★★★ {survey}",
            "We value your feedback - take a quick survey: {survey}",
        )
    )
    return Draft(d.sender, d.subject, f"{d.body}\n\n{tail}", d.actions)


# --- quoted_reply_noise ---------------------------------------------------------------------


def work_forwarding_promotion(f: Fields) -> Draft:
    first, full, addr = M._colleague(f)
    vendor, vdomain = f.pick(
        (
            ("Notion", "makenotion.com"),
            ("Zoom", "zoom.us"),
            ("Asana", "asana.com"),
            ("Miro", "miro.com"),
            ("Dropbox", "dropbox.com"),
            ("Canva", "canva.com"),
        )
    )
    f["vendor"] = vendor
    f["deadline"] = f.pick(("Thursday", "tomorrow", "EOD Friday"))
    subject = f.one(
        (
            "FW: {pct}% off annual plans - ends Friday",
            "Fwd: Last chance: save {pct}% on {vendor} Business",
            "FW: Special offer for your team",
        )
    )
    core = [
        f.one(
            (
                "Should we lock this in before the budget freeze? Can you check with finance and let me know by {deadline}?",
                "Is this worth it for us? We're renewing {vendor} next month anyway. Please look at our seat count and reply by {deadline}.",
            )
        ),
        None,
    ]
    body = M.person_body(f, core, first, greet=("{name},", "Hi {name},"), signoffs=M.SIGNOFF_WORK)
    promo = "\n".join(
        [
            "---------- Forwarded message ---------",
            f"From: {vendor} <offers@{vdomain}>",
            f.fmt("Date: {past}"),
            f.fmt("Subject: Last chance: save {pct}% on {vendor} Business"),
            "",
            f.fmt("Upgrade your whole team and save {pct}% on annual billing. Offer ends Friday."),
            f.fmt("✓ Unlimited workspaces\n✓ Admin controls\n✓ Priority support"),
            f"Claim the offer: https://{vdomain}/pricing?promo={f.code(6)}",
            "",
            f.fmt(
                "You are receiving this because you're a {vendor} admin. Unsubscribe | Privacy | © {year} {vendor} Inc."
            ),
        ]
    )
    body = f"{body}\n\n{promo}"
    if f.chance(0.6):
        body += "\n\n" + M.WORK_DISCLAIMER[0]
    return Draft(f"{full} <{addr}>", subject, body, ["reply", "read_later"])


def work_reply_quoting_newsletter(f: Fields) -> Draft:
    first, full, addr = M._colleague(f)
    f.set_brand(*f.pick(V.NEWSLETTERS))
    heads = M._headlines(f, 3)
    subject = f.one(("Re: interesting read", "RE: FW: " + heads[0], "Re: " + heads[1]))
    core = [
        f.one(
            (
                "Good find. Can you pull our numbers for the same period so we can compare before Thursday's review?",
                "This is relevant to {topic}. Could you draft two slides summarising it for the team meeting?",
            )
        )
    ]
    body = M.person_body(f, core, first, greet=("{name},", "Hi {name},"), signoffs=M.SIGNOFF_WORK)
    nl = "\n\n".join(f"{h}\n{f.one(M._BLURBS)}" for h in heads) + f.fmt(
        "\n\nUnsubscribe from {brand}: {unsub}"
    )
    body += "\n\n" + M.quoted(
        f,
        f["full"],
        f"{f['name'].lower()}@{f['cdomain']}",
        f.fmt("FYI, from this morning's {brand}:\n\n") + nl,
    )
    return Draft(f"{full} <{addr}>", subject, body, ["reply", "save_document"])


def personal_forwarding_article(f: Fields) -> Draft:
    first, last = f.person("pal")
    f.set_brand(*f.pick(V.NEWSLETTERS))
    heads = M._headlines(f, 3)
    subject = f.one(("Fwd: " + heads[0], "thought of you", "you have to read this"))
    core = [
        f.one(
            (
                "Thought of you when I read this! Especially the second bit. How are you guys?",
                "This is exactly what we were arguing about at dinner haha. Call me this weekend?",
            )
        )
    ]
    body = M.person_body(f, core, first)
    fwd = "---------- Forwarded message ---------\n" + f.fmt(
        f"From: {{brand}} <newsletter@{{domain}}>\nSubject: {heads[0]}\n\n"
    )
    fwd += "\n\n".join(f"{h}\n{f.one(M._BLURBS)}" for h in heads) + f.fmt(
        "\n\nYou're receiving this because you subscribed. Unsubscribe: {unsub}"
    )
    return Draft(
        f"{first} {last} <{personal_address(f, first, last)}>",
        subject,
        f"{body}\n\n{fwd}",
        ["reply", "read_later"],
    )


def school_thread_with_replies(f: Fields) -> Draft:
    school, domain = f.pick(V.SCHOOLS[:7])
    f.set_brand(school, domain)
    first, last = f.person("parent")
    f["teacher"] = f"{f.pick(('Ms.', 'Mr.', 'Mrs.'))} {f.pick(V.LAST_NAMES)}"
    f["date2_short"] = f.dstr(f.day(1, 5))
    subject = f.one(
        ("Re: Re: {grade} zoo trip", "Re: class party + trip forms", "RE: Reminder from {teacher}")
    )
    core = [
        f.one(
            (
                "Forwarding {teacher}'s reminder since a few of us missed it: permission slips for the zoo trip on {date} must be signed and returned by {date2_short}.",
                "Quick reminder from {teacher}: the trip form needs a signature by Friday or the kids can't go!",
            )
        )
    ]
    body = M.person_body(f, core, first, greet=("Hi all,", "Hi everyone,"))

    replies = []
    for _ in range(f.r.randint(2, 4)):
        who = f"{f.pick(V.FIRST_NAMES)} {f.pick(V.LAST_NAMES)}"
        replies.append(
            M.quoted(
                f,
                who,
                f"{who.split()[0].lower()}@{f.pick(V.PERSONAL_DOMAINS)}",
                f.pick(
                    (
                        "Thanks! Does anyone know if they need packed lunches?",
                        "Mia is so excited 😄",
                        "Can someone share the form again? I can't find it.",
                        "We're in, happy to drive two kids.",
                        "Sorry for the reply-all everyone!",
                    )
                ),
            )
        )
    return Draft(
        f"{first} {last} <{personal_address(f, first, last)}>",
        subject,
        body + "\n\n" + "\n\n".join(replies),
        ["sign_form", "reply"],
    )


# --- non_english ----------------------------------------------------------------------------


def de_bill(f: Fields) -> Draft:
    f.set_brand(
        *f.pick(
            (
                ("Stadtwerke München", "swm.de"),
                ("Telekom", "telekom.de"),
                ("Vodafone", "vodafone.de"),
                ("E.ON", "eon.de"),
            )
        )
    )
    f["cur"] = "€"
    f["due"] = f.dstr(f.day(5, 20))
    subject = f.one(
        ("Ihre Rechnung für {month}", "Ihre {brand} Rechnung ist da", "Zahlungserinnerung: {amount} fällig")
    )
    body = f.fmt(
        f.pick(
            (
                "Guten Tag {full},\n\nIhre aktuelle Rechnung über {amount} ist am {due} fällig. Bitte überweisen Sie den Betrag bis zum Fälligkeitsdatum.\n\n"
                "Rechnungsnummer: {invoice_no}\nKundennummer: {account_no}\n\nMit freundlichen Grüßen\nIhr {brand} Kundenservice",
                "Sehr geehrte Kundin, sehr geehrter Kunde,\n\nleider konnten wir noch keinen Zahlungseingang für Ihre Rechnung {invoice_no} feststellen. "
                "Offener Betrag: {amount}. Bitte zahlen Sie bis spätestens {due}.\n\nFreundliche Grüße\n{brand}",
            )
        )
    )
    return Draft(
        f"{f['brand']} <rechnung@{f['domain']}>",
        subject,
        body,
        ["pay_invoice", "set_payment_reminder", "view_statement"],
    )


def es_shipping(f: Fields) -> Draft:
    f.set_brand(
        *f.pick(
            (("Correos", "correos.es"), ("SEUR", "seur.com"), ("Amazon.es", "amazon.es"), ("MRW", "mrw.es"))
        )
    )
    f["tracking"] = f"PQ{f.digits(10)}ES"
    subject = f.one(
        (
            "Tu pedido ha sido enviado",
            "Tu paquete está en camino",
            "Entrega prevista: {date}",
            "Tu envío está en reparto",
        )
    )
    body = f.fmt(
        f.pick(
            (
                "Hola {name}:\n\nTu pedido {order} ha sido enviado y llegará el {date}.\n\nNúmero de seguimiento: {tracking}\n"
                "Sigue tu envío aquí: https://{domain}/seguimiento\n\nGracias,\nEl equipo de {brand}",
                "Hola {name},\n\nTu paquete {tracking} está en reparto hoy. Si no vas a estar en casa, puedes cambiar la entrega en https://{domain}/entrega\n\n{brand}",
            )
        )
    )
    return Draft(
        f"{f['brand']} <envios@{f['domain']}>", subject, body, ["track_package", "reschedule_delivery"]
    )


def fr_security(f: Fields) -> Draft:
    f.set_brand(
        *f.pick(
            (
                ("Google", "google.com"),
                ("Orange", "orange.fr"),
                ("Microsoft", "microsoft.com"),
                ("Free", "free.fr"),
            )
        )
    )
    subject = f.one(
        ("Nouvelle connexion à votre compte", "Alerte de sécurité", "Votre mot de passe a été modifié")
    )
    body = f.fmt(
        f.pick(
            (
                "Bonjour {name},\n\nNous avons détecté une nouvelle connexion à votre compte {brand} depuis {device} à {city}.\n\n"
                "Si c'était vous, aucune action n'est nécessaire. Sinon, sécurisez votre compte : https://{domain}/securite\n\nL'équipe {brand}",
                "Bonjour,\n\nLe mot de passe de votre compte {brand} a été modifié le {today}. Si vous n'êtes pas à l'origine de ce changement, "
                "réinitialisez-le immédiatement et vérifiez vos paramètres de sécurité.\n\n{brand}",
            )
        )
    )
    return Draft(
        f"{f['brand']} <no-reply@{f['domain']}>", subject, body, ["review_security", "change_password"]
    )


def de_appointment(f: Fields) -> Draft:
    f.set_brand(
        *f.pick(
            (
                ("Zahnarztpraxis Dr. Weber", "zahnarzt-weber.de"),
                ("Hausarztpraxis Am Markt", "praxis-ammarkt.de"),
                ("Autohaus Becker", "autohaus-becker.de"),
            )
        )
    )
    subject = f.one(
        ("Terminbestätigung für {date}", "Erinnerung an Ihren Termin", "Ihr Termin wurde verschoben")
    )
    body = f.fmt(
        f.pick(
            (
                "Guten Tag {full},\n\nhiermit bestätigen wir Ihren Termin am {date} um {time}.\n\nBitte sagen Sie mindestens 24 Stunden vorher ab, "
                "falls Sie den Termin nicht wahrnehmen können.\n\nMit freundlichen Grüßen\n{brand}",
                "Hallo {name},\n\nwir möchten Sie an Ihren Termin am {date} um {time} erinnern. Bitte bestätigen Sie kurz per Antwort.\n\n{brand}",
            )
        )
    )
    return Draft(
        f"{f['brand']} <termine@{f['domain']}>",
        subject,
        body,
        ["confirm_appointment", "reschedule_appointment", "add_to_calendar"],
    )


def es_promotion(f: Fields) -> Draft:
    f.set_brand(
        *f.pick(
            (
                ("Zara", "zara.com"),
                ("El Corte Inglés", "elcorteingles.es"),
                ("Mango", "mango.com"),
                ("Decathlon", "decathlon.es"),
            )
        )
    )
    f["cur"] = "€"
    subject = f.one(
        (
            "¡Rebajas! Hasta {pct}% de descuento",
            "Solo hoy: envío gratis",
            "Tu código de descuento: {promo_code}",
        )
    )
    body = f.fmt(
        f.pick(
            (
                "¡Empiezan las rebajas! Hasta un {pct}% de descuento en toda la colección.\n\nCompra ahora: https://{domain}/rebajas\n\n"
                "Si no quieres recibir más correos, date de baja aquí.",
                "Hola {name},\n\nUsa el código {promo_code} y consigue un {pct}% de descuento en tu próxima compra. Válido hasta el {date}.\n\n{brand}",
            )
        )
    )
    return Draft(f"{f['brand']} <news@{f['domain']}>", subject, body, ["view_offer", "unsubscribe", "delete"])


def fr_receipt(f: Fields) -> Draft:
    f.set_brand(
        *f.pick(
            (
                ("Fnac", "fnac.com"),
                ("SNCF Connect", "sncf-connect.com"),
                ("Darty", "darty.com"),
                ("Carrefour", "carrefour.fr"),
            )
        )
    )
    f["cur"] = "€"
    subject = f.one(("Confirmation de paiement", "Votre reçu de commande {order}", "Merci pour votre achat"))
    body = f.fmt(
        "Bonjour {name},\n\nNous confirmons la réception de votre paiement de {amount} pour la commande {order}.\n\n"
        "Montant payé : {amount}\nMoyen de paiement : carte se terminant par {last4}\n\nConservez ce courriel comme justificatif.\n\n{brand}"
    )
    return Draft(f"{f['brand']} <commandes@{f['domain']}>", subject, body, ["save_receipt", "request_refund"])


def es_personal(f: Fields) -> Draft:
    first, last = f.person("pal")
    subject = f.one(("¿Qué tal?", "Fotos del finde", "¡Cuánto tiempo!", "Novedades"))
    body = f.fmt(
        f.pick(
            (
                "¡Hola {name}!\n\n¿Cómo estás? Hace mucho que no hablamos. Te mando las fotos del fin de semana, salieron genial.\n\n"
                "Dale un abrazo a todos de mi parte.\n\nBesos,\n{pal}",
                "Hola {name},\n\nSolo quería contarte que por fin nos mudamos al piso nuevo. Todavía hay cajas por todas partes, jaja.\n\n"
                "Escríbeme cuando puedas.\n{pal}",
            )
        )
    )
    return Draft(
        f"{first} {last} <{personal_address(f, first, last)}>", subject, body, ["reply", "read_later"]
    )


def de_phishing(f: Fields) -> Draft:
    brand, bad = f.pick(
        (
            ("Sparkasse", "sparkasse-sicherheit.info"),
            ("PayPal", "paypal-konto-verifizierung.com"),
            ("DHL", "dhl-paket-zustellung.net"),
            ("Commerzbank", "commerzbank-pushtan-update.de.com"),
        )
    )
    f.set_brand(brand, bad)
    f["bad"] = f"https://{bad}/login?id={f.code(8).lower()}"
    subject = f.one(
        (
            "Ihr Konto wurde gesperrt",
            "Sicherheitswarnung: ungewöhnliche Aktivität",
            "Dringend: Bestätigen Sie Ihre Daten",
        )
    )
    body = f.fmt(
        f.pick(
            (
                "Sehr geehrter Kunde,\n\nwir haben ungewöhnliche Aktivitäten auf Ihrem {brand} Konto festgestellt. Ihr Konto wurde vorübergehend gesperrt.\n\n"
                "Bitte bestätigen Sie Ihre Identität innerhalb von 24 Stunden mit Ihren Zugangsdaten: {bad}\n\nAndernfalls wird Ihr Konto dauerhaft geschlossen.",
                "Hallo,\n\nIhre pushTAN-Registrierung läuft heute ab. Aktualisieren Sie jetzt Ihre Daten und geben Sie Ihr Passwort ein: {bad}\n\nIhr {brand} Team",
            )
        )
    )
    return Draft(f"{brand} <sicherheit@{bad}>", subject, body, ["report_phishing", "delete"])


# --- more quoted-reply noise and personal-toned marketing -----------------------------------


def bec_thread_hijack(f: Fields) -> Draft:
    """Business e-mail compromise: a hijacked invoice thread asking to pay a new account."""
    company, domain = f.pick(V.COMPANIES)
    stem, tld = domain.rsplit(".", 1)
    bad = f.pick(
        (
            f"{stem}-billing.{tld}",
            f"{stem}s.{tld}",
            f"{stem}.{tld}-invoices.com",
            f"{stem.replace('o', '0', 1)}.{tld}",
        )
    )
    first, last = f.person("ap")
    f["company"] = company
    f["acct_new"] = (
        f"{f.pick(('GB29 NWBK', 'DE89 3704', 'US Routing 0260'))} {f.digits(4)} {f.digits(4)} {f.digits(2)}"
    )
    subject = f.one(
        (
            "RE: Invoice {invoice_no} - updated remittance details",
            "Re: Payment for invoice {invoice_no}",
            "RE: Outstanding invoice {invoice_no} - new bank account",
        )
    )
    core = [
        f.one(
            (
                "Please note our bank details have changed due to an ongoing audit. Kindly process the outstanding payment of {big_amount} "
                "to our new account below today and send me the remittance advice.",
                "Following up on the thread below: the payment of {big_amount} could not be received on our old account. "
                "Please send it urgently to our updated account and keep this confidential until the audit is complete.",
            )
        ),
        f.fmt("New account: {acct_new}\nBeneficiary: {company} Ltd"),
        "Do not use the old details. Confirm once done.",
    ]
    body = M.person_body(
        f,
        core,
        f"{first} {last}\nAccounts Receivable | {company}",
        greet=("Hi {name},", "Hello,", "Dear {name},"),
        signoffs=("Regards,", "Best regards,", "Thanks,"),
    )
    earlier = f.fmt(
        "Hi, attached is invoice {invoice_no} for last month's services. Payment terms are 30 days. Thanks!"
    )
    body += "\n\n" + M.quoted(f, f"{first} {last}", f"{first.lower()}@{domain}", earlier)
    return Draft(
        f"{first} {last} <{first.lower()}.{last.lower().replace(chr(39), '')}@{bad}>",
        subject,
        body,
        ["report_phishing", "delete"],
    )


def support_ticket_survey(f: Fields) -> Draft:
    f.set_brand(
        *f.pick(
            (
                ("Ledgerly", "ledgerly.io"),
                ("Notion", "makenotion.com"),
                ("Zendesk", "zendesk.com"),
                ("Dropbox", "dropbox.com"),
                ("Canva", "canva.com"),
                ("Xfinity", "xfinity.com"),
            )
        )
    )
    f["ticket"] = f.digits(5)
    f["agent"] = f.pick(V.FIRST_NAMES)
    f["survey"] = f.link(f"csat?ticket={f['ticket']}")
    f["issue"] = f.pick(
        (
            "Can't export to PDF",
            "Login problems",
            "Question about my invoice",
            "Sync not working",
            "Refund request",
        )
    )
    f["issue_l"] = f["issue"][0].lower() + f["issue"][1:]
    subject = f.one(
        (
            "Re: [#{ticket}] {issue} - how did we do?",
            "[#{ticket}] Your request was solved - rate our support",
            "Re: [#{ticket}] {issue}",
        )
    )
    core = [
        f.one(
            (
                "Your request #{ticket} has been marked as solved. How would you rate the support you received?",
                "We'd love to know how {agent} did on your recent request.",
            )
        ),
        f.fmt("Good, I'm satisfied: {survey}&r=good\nBad, I'm unsatisfied: {survey}&r=bad"),
    ]
    body = (
        "\n\n".join(core)
        + "\n\n"
        + M.quoted(
            f,
            f"{f['agent']} ({f['brand']} Support)",
            f"support@{f['domain']}",
            f.fmt(
                "Hi {name},\n\nThanks for your patience. The issue was caused by a browser extension; disabling it should fix {issue_l}.\n\n"
                "If anything else comes up, just reply to this email.\n\n{agent}"
            ),
        )
    )
    return Draft(
        f"{f['brand']} Support <support@{f['domain']}>", subject, body, ["take_survey", "unsubscribe"]
    )


def sales_dinner_invite(f: Fields) -> Draft:
    org, domain, _ = f.pick(V.EVENT_ORGANIZERS[:9])
    f.set_brand(org, domain)
    first, last = f.person("rep")
    f["ev_date"] = f.dstr(f.day(5, 30))
    f["industry"] = f.pick(("fintech", "retail", "healthcare", "logistics", "SaaS"))
    f["reg"] = f.link("events/roundtable")
    subject = f.one(
        (
            "quick question - coffee chat with our CEO next week?",
            "Invitation: private dinner for {industry} leaders",
            "{name}, would you join us on {ev_date}?",
            "Exclusive roundtable - saving you a seat",
        )
    )
    core = [
        f.one(
            (
                "I'm putting together a small roundtable for {industry} leaders on {ev_date} with our CEO and a few customers.",
                "We're hosting an intimate dinner in {city} on {ev_date} to talk about where {industry} is heading.",
            )
        ),
        f.one(
            (
                "Seats are limited - can I save one for you? Reserve here: {reg}",
                "If you're interested, grab a spot here: {reg}",
            )
        ),
        f"{first} {last}\nSenior Account Executive, {org}",
        f.one(
            (
                "If you'd rather not hear from me, just let me know or unsubscribe here: {unsub}",
                "Unsubscribe: {unsub}",
            )
        ),
    ]
    return Draft(
        f"{first} {last} <{first.lower()}@{domain}>",
        subject,
        M.person_body(f, core, "", greet=("Hi {name},", "{name},")).rstrip(),
        ["register_event", "delete", "unsubscribe"],
    )


_NON_ENGLISH_CONFUSABLE = {
    "security_alert": "account_update",
    "phishing": "security_alert",
    "bill_due": "receipt",
    "fraud_alert": "receipt",
    "receipt": "bill_due",
    "shipping_update": "receipt",
    "calendar_invite": "personal",
    "travel": "security_alert",
    "appointment": "calendar_invite",
    "work": "personal",
    "personal": "social_notification",
    "financial_statement": "bill_due",
    "account_update": "promotion",
    "school_family": "calendar_invite",
    "social_notification": "personal",
    "promotion": "newsletter",
    "newsletter": "promotion",
    "loyalty_rewards": "promotion",
    "event_marketing": "promotion",
    "survey_request": "promotion",
}


def _foreign_variant(category: str) -> Variant:
    def variant(f: Fields) -> Draft:
        return render_foreign(f, category)

    variant.__name__ = f"foreign_{category}"
    return variant


# --- registry -------------------------------------------------------------------------------

# (true category, problem area) -> [(renderer, confusable category)]
VARIANTS: dict[tuple[str, str], tuple[tuple[Variant, str], ...]] = {
    ("receipt", "receipt_vs_bill"): ((receipt_styled_as_bill, "bill_due"),),
    ("bill_due", "receipt_vs_bill"): ((bill_styled_as_receipt, "receipt"),),
    ("promotion", "promo_as_account_notice"): ((promo_as_account_notice, "account_update"),),
    ("phishing", "phishing_as_security_alert"): ((phishing_as_security_alert, "security_alert"),),
    ("newsletter", "newsletter_vs_promotion"): ((newsletter_with_shopping, "promotion"),),
    ("promotion", "newsletter_vs_promotion"): ((promotion_styled_as_newsletter, "newsletter"),),
    ("receipt", "shipping_vs_receipt"): ((order_confirmation_with_delivery, "shipping_update"),),
    ("shipping_update", "shipping_vs_receipt"): ((shipped_with_order_summary, "receipt"),),
    ("calendar_invite", "invite_in_work_thread"): (
        (invite_in_work_thread, "work"),
        (invite_in_personal_thread, "personal"),
    ),
    ("fraud_alert", "fraud_vs_phishing"): ((urgent_genuine_fraud_alert, "phishing"),),
    ("phishing", "fraud_vs_phishing"): ((phishing_as_fraud_alert, "fraud_alert"),),
    ("financial_statement", "statement_vs_bill"): ((statement_with_autopay, "bill_due"),),
    ("bill_due", "statement_vs_bill"): ((bill_styled_as_statement, "financial_statement"),),
    ("event_marketing", "webinar_vs_invite"): ((webinar_styled_as_invite, "calendar_invite"),),
    ("calendar_invite", "webinar_vs_invite"): ((internal_event_invite, "event_marketing"),),
    ("loyalty_rewards", "loyalty_vs_promotion"): ((loyalty_with_sales_tone, "promotion"),),
    ("promotion", "loyalty_vs_promotion"): ((promotion_for_members, "loyalty_rewards"),),
    ("social_notification", "social_vs_personal"): ((social_message_notification, "personal"),),
    ("personal", "social_vs_personal"): ((personal_mentioning_social, "social_notification"),),
    ("travel", "travel_vs_receipt"): ((travel_booking_payment, "receipt"),),
    ("receipt", "travel_vs_receipt"): ((ride_or_trip_receipt, "travel"),),
    ("appointment", "appointment_vs_invite"): ((appointment_as_calendar_event, "calendar_invite"),),
    ("calendar_invite", "appointment_vs_invite"): ((meeting_invite_with_appointment_words, "appointment"),),
    ("account_update", "account_update_vs_security"): (
        (account_notice_with_security_words, "security_alert"),
    ),
    ("security_alert", "account_update_vs_security"): ((security_change_styled_as_notice, "account_update"),),
    ("survey_request", "survey_vs_receipt"): ((survey_with_order_summary, "receipt"),),
    ("receipt", "survey_vs_receipt"): ((receipt_with_survey_footer, "survey_request"),),
    ("work", "quoted_reply_noise"): (
        (work_forwarding_promotion, "promotion"),
        (work_reply_quoting_newsletter, "newsletter"),
    ),
    ("personal", "quoted_reply_noise"): ((personal_forwarding_article, "newsletter"),),
    ("school_family", "quoted_reply_noise"): ((school_thread_with_replies, "personal"),),
    ("phishing", "quoted_reply_noise"): ((bec_thread_hijack, "bill_due"),),
    ("survey_request", "quoted_reply_noise"): ((support_ticket_survey, "work"),),
}
# Hand-written foreign emails add to the generic per-language templates of every category.
_EXTRA_FOREIGN: dict[str, Variant] = {
    "bill_due": de_bill,
    "shipping_update": es_shipping,
    "security_alert": fr_security,
    "appointment": de_appointment,
    "promotion": es_promotion,
    "receipt": fr_receipt,
    "personal": es_personal,
    "phishing": de_phishing,
}
for _cat, _conf in _NON_ENGLISH_CONFUSABLE.items():
    _extra = ((_EXTRA_FOREIGN[_cat], _conf),) if _cat in _EXTRA_FOREIGN else ()
    # The generic templates (four languages) are listed twice so they outweigh the single hand-written one.
    VARIANTS[(_cat, "non_english")] = (
        (_foreign_variant(_cat), _conf),
        (_foreign_variant(_cat), _conf),
        *_extra,
    )
VARIANTS[("event_marketing", "webinar_vs_invite")] += ((sales_dinner_invite, "calendar_invite"),)
