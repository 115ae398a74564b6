"""Scrubbing personal data from free text: what is replaced, and what must stay as it is."""

from __future__ import annotations

import string
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attune.privacy.scrubbing import (
    CARD_MARK,
    EMAIL_MARK,
    PHONE_MARK,
    is_card_number,
    luhn_valid,
    scrub_text,
    scrub_value,
    scrubber,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to john.doe+shop@example.co.uk today", "write to [email] today"),
        ("Mail: ANNA_B@Mail.Example.COM.", "Mail: [email]."),
        ("visa 4111 1111 1111 1111 expires", "visa [card] expires"),
        ("4111-1111-1111-1111", "[card]"),
        ("amex 378282246310005", "amex [card]"),
        ("3782 822463 10005", "[card]"),
        ("mc 5555555555554444.", "mc [card]."),
        ("call +44 20 7946 0958 now", "call [phone] now"),
        ("+1 (555) 123-4567", "[phone]"),
        ("tel:+4915123456789", "tel:[phone]"),
        ("(555) 123-4567", "[phone]"),
        ("555-123-4567 or 555.123.4567", "[phone] or [phone]"),
        ("020 7946 0958", "[phone]"),
        ("06 12 34 56 78", "[phone]"),
    ],
)
def test_personal_data_is_replaced_by_its_mark(text: str, expected: str) -> None:
    assert scrub_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-27",
        "2026-11-27T10:00:00Z",
        "2026-11-27T10:00:00.123456+01:00",
        "2026-11-27 10:00:00",
        "27/11/2026",
        "11-27-2026",
        "27.11.2026",
        "1764237600",  # Unix seconds
        "1764237600000",  # milliseconds: 13 digits, but no card network starts with 1
        "4111111111111112",  # 16 digits that fail the Luhn check
        "order 12345678",
        "sku-123-456",
        "0.4111111111111111",  # a decimal fraction
        "192.168.100.200",
        "v1.2.3",
        "550e8400-e29b-41d4-a716-446655440000",
        "+1",
        "3+4=7",
        "user@localhost",
        "price 12 999 EUR",
    ],
)
def test_ordinary_values_are_left_alone(text: str) -> None:
    assert scrub_text(text) == text


def test_luhn_and_card_ranges() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert is_card_number("6011111111111117")
    assert not is_card_number("4111111111")  # too short
    assert not is_card_number("1000000000000008")  # passes Luhn, but no network's range


def test_values_are_scrubbed_deep_and_keys_are_kept() -> None:
    value = {
        "note": "reach me at a@b.io",
        "contacts": ["+33 6 12 34 56 78", {"card": 4111111111111111}],
        "count": 3,
        "ok": True,
        "ratio": 0.5,
        "a@b.io": None,
    }
    assert scrub_value(value) == {
        "note": "reach me at [email]",
        "contacts": ["[phone]", {"card": "[card]"}],
        "count": 3,
        "ok": True,
        "ratio": 0.5,
        "a@b.io": None,
    }
    assert scrubber("off")(value) is value


def _card_with_check_digit(prefix: str, length: int, filler: int) -> str:
    body = (prefix + str(filler).zfill(length))[: length - 1]
    for check in "0123456789":
        if luhn_valid(body + check):
            return body + check
    raise AssertionError("unreachable: one check digit always fits")


cards = st.builds(
    _card_with_check_digit,
    st.sampled_from(["4", "51", "55", "2221", "34", "37", "6011", "65", "35", "62"]),
    st.integers(13, 19),
    st.integers(0, 10**19),
)
words = st.text(alphabet=string.ascii_letters + " ,;:!?", max_size=20)


@settings(max_examples=300, deadline=None)
@given(email=st.emails(), before=words, after=words)
def test_generated_emails_are_always_scrubbed(email: str, before: str, after: str) -> None:
    scrubbed = scrub_text(f"{before} {email} {after}")
    assert EMAIL_MARK in scrubbed
    assert email not in scrubbed


@settings(max_examples=300, deadline=None)
@given(card=cards, grouped=st.booleans(), separator=st.sampled_from([" ", "-"]), before=words)
def test_generated_card_numbers_are_always_scrubbed(
    card: str, grouped: bool, separator: str, before: str
) -> None:
    text = separator.join(card[i : i + 4] for i in range(0, len(card), 4)) if grouped else card
    scrubbed = scrub_text(f"{before} {text} end")
    assert CARD_MARK in scrubbed and card not in scrubbed.replace(separator, "")
    assert scrub_value(int(card)) == CARD_MARK


@settings(max_examples=300, deadline=None)
@given(
    number=st.integers(-(10**12), 10**12) | st.floats(allow_nan=False, allow_infinity=False),
    moment=st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)),
    identifier=st.uuids()
    | st.text(alphabet=string.ascii_letters + string.digits + "_-", max_size=30),
)
def test_ordinary_ids_numbers_and_dates_are_never_changed(number, moment, identifier) -> None:
    aware = moment.replace(tzinfo=UTC) + timedelta(microseconds=0)
    values = [
        str(number),
        number,
        aware.isoformat(),
        aware.strftime("%Y-%m-%d %H:%M:%S"),
        aware.date().isoformat(),
        str(int(aware.timestamp())),
        str(identifier),
        f"order {identifier} at {aware.isoformat()}",
    ]
    assert scrub_value(values) == values


def test_uuid_ids_survive() -> None:
    ids = [str(uuid.uuid4()) for _ in range(200)]
    assert scrub_value(ids) == ids


phones = st.builds(
    lambda cc, groups, sep: f"+{cc} " + sep.join(groups),
    st.integers(1, 999),
    st.lists(st.from_regex(r"\A[0-9]{2,4}\Z"), min_size=3, max_size=4),
    st.sampled_from([" ", "-", "."]),
).filter(lambda phone: 8 <= sum(c.isdigit() for c in phone) <= 15)  # E.164 lengths


@settings(max_examples=200, deadline=None)
@given(phone=phones, before=words)
def test_generated_international_phone_numbers_are_always_scrubbed(phone: str, before: str):
    scrubbed = scrub_text(f"{before} {phone} end")
    assert PHONE_MARK in scrubbed and phone not in scrubbed
