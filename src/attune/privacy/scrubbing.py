"""Scrub personal data out of free-text values: emails, phone numbers, payment cards.

Applied at ingestion to event properties, event context and user traits (setting
``scrub_personal_data``: ``redact``, the default, or ``off``). What is recognised:

* emails: ``local@domain.tld`` → ``[email]``;
* payment cards: 13–19 digits, bare or in groups split by single spaces or dashes, that
  pass the Luhn check and start with a card network's digit (2–6) → ``[card]``; integers
  that are card numbers too. Millisecond timestamps (they start with 1) are left alone;
* phone numbers in international (``+44 20 7946 0958``, ``+1 (555) 123-4567``) or national
  written forms (``(555) 123-4567``, ``555-123-4567``, ``020 7946 0958``) → ``[phone]``.
  A bare run of digits is never taken for a phone number (ids, counts, Unix times), nor
  are dates and times (``2026-11-27``, ``10:00:00``).

Keys are kept; only values change. Matching is linear-time (no nested unbounded
repetition), so hostile input cannot make ingestion slow.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal

EMAIL_MARK = "[email]"
PHONE_MARK = "[phone]"
CARD_MARK = "[card]"

_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]"  # RFC 5322 local-part characters
URL_PUNCTUATION = re.compile(r"^.*[/=?]")
EMAIL = re.compile(
    rf"(?<!{_LOCAL}){_LOCAL}+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z][A-Za-z0-9-]*[A-Za-z0-9]"
    r"(?![A-Za-z0-9-])"
)

# not glued to a word or a longer number (ids, UUIDs), nor a decimal fraction ("0.41111…")
CARD = re.compile(r"(?<![\w.,])(?:\d{13,19}|\d{1,6}(?:[ -]\d{1,6}){2,7})(?!\w|[.,]\d)")
CARD_NETWORK_DIGITS = frozenset("23456")

_EDGE_BEFORE = r"(?<![\w+.-])"
_EDGE_AFTER = r"(?!\w|[.-]\d)"
# international: +CC then 1-6 groups, with spaces, dots, dashes or an (area code);
# matched before cards, so a "+CC …" number is never taken for one
PHONE_INTERNATIONAL = re.compile(
    r"(?<![\w+])\+\d{1,4}+(?:[ .-]?\(?\d{1,5}+\)?){1,6}+" + _EDGE_AFTER
)
PHONE_NATIONAL = re.compile(
    "|".join(
        [
            # an area code in parentheses: (555) 123-4567, (020) 7946 0958
            _EDGE_BEFORE + r"\(\d{2,5}\)[ .-]?\d{2,4}(?:[ .-]?\d{2,4}){1,3}" + _EDGE_AFTER,
            # North American: 555-123-4567, 555.123.4567, 555 123 4567
            _EDGE_BEFORE + r"\d{3}([ .-])\d{3}\1\d{4}" + _EDGE_AFTER,
            # trunk prefix 0: 020 7946 0958, 06 12 34 56 78, 030-12345678
            _EDGE_BEFORE + r"0\d{1,4}(?:[ .-]\d{2,8}){1,4}" + _EDGE_AFTER,
        ]
    )
)
PHONE_DIGITS = (9, 15)
"""Digits a written phone number has (E.164 allows at most 15); fewer is a date or a code."""

ScrubMode = Literal["redact", "off"]


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) checksum every payment card number satisfies."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def is_card_number(digits: str) -> bool:
    """13–19 digits from a card network's range that pass the Luhn check."""
    return (
        13 <= len(digits) <= 19
        and digits.isascii()
        and digits.isdigit()
        and digits[0] in CARD_NETWORK_DIGITS
        and luhn_valid(digits)
    )


def _email(match: re.Match[str]) -> str:
    """``[email]``, keeping URL text glued before the address: ``?q=a@b.io`` → ``?q=[email]``.

    "/", "=" and "?" are legal in an address but rare, and common in URLs; the address is
    taken to start after the last of them, unless nothing but them precedes the "@".
    """
    text = match.group(0)
    local = text[: text.index("@")]
    glued = URL_PUNCTUATION.match(local)
    if glued is None or glued.end() == len(local):
        return EMAIL_MARK
    return local[: glued.end()] + EMAIL_MARK


def _card(match: re.Match[str]) -> str:
    """Replace the longest run of digit groups in the match that is a card number.

    A candidate may hold more than the card (``4111 1111 1111 1111 2`` pieces, a number
    before it), so every run of consecutive groups is tried, longest first.
    """
    text = match.group(0)
    parts = re.split(r"([ -])", text)  # groups at even positions, separators between
    groups = parts[0::2]
    for size in range(len(groups), 0, -1):
        for start in range(len(groups) - size + 1):
            if is_card_number("".join(groups[start : start + size])):
                head = "".join(parts[: 2 * start])
                tail = "".join(parts[2 * (start + size) - 1 :])
                return head + CARD_MARK + tail
    return text


def _phone(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = sum(c.isdigit() for c in text)
    low, high = PHONE_DIGITS
    if text.startswith("+"):
        low = 8  # "+CC" and a short subscriber number, as in small countries
    return PHONE_MARK if low <= digits <= high else text


def scrub_text(text: str) -> str:
    """``text`` with every email, card number and phone number replaced by its mark."""
    if "@" in text:
        text = EMAIL.sub(_email, text)
    if sum(c.isdigit() for c in text) < 8:  # fast path: too few digits for a card or phone
        return text
    text = PHONE_INTERNATIONAL.sub(_phone, text)
    text = CARD.sub(_card, text)
    return PHONE_NATIONAL.sub(_phone, text)


def scrub_value(value: Any) -> Any:
    """Scrub every string (and card-number integer) inside ``value``; keys are kept."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return CARD_MARK if is_card_number(str(abs(value))) else value
    if isinstance(value, dict):
        return {key: scrub_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_value(item) for item in value]
    return value


def scrubber(mode: ScrubMode) -> Callable[[Any], Any]:
    """The function applied to free-text fields under policy ``mode``."""
    return scrub_value if mode == "redact" else _unchanged


def _unchanged(value: Any) -> Any:
    return value
