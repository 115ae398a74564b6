"""Vocabularies (items, users), item aliases, request-bound names and binding them."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attune.engine.expression_eval import clean_row
from attune.engine.expression_tree import (
    ITEM_VOCABULARY,
    USER_FIELDS,
    USER_VOCABULARY,
    External,
    Property,
    to_text,
)
from attune.engine.expressions import (
    Filter,
    parse_expression,
    parse_filter,
    parse_segment_rule,
)
from attune.engine.filtering import CatalogFilters
from attune.errors import ValidationError
from tests.engine.test_expressions import json_values, trees

NOW = 1_700_000_000.0
DAY = 86_400

NEWCOMER = {
    "user_id": "u1",
    "events": 2,
    "purchases": 0,
    "first_seen_at": NOW - DAY,
    "last_seen_at": NOW - 3_600,
    "last_purchase_at": None,
    "traits": {"region": "EU", "segment": "new", "a b": 1, "langs": ["fr", "en"]},
    "context": {"device": "ios"},
}
REGULAR = {
    "user_id": "u2",
    "events": 340,
    "purchases": 12,
    "first_seen_at": NOW - 400 * DAY,
    "last_seen_at": NOW - 2 * DAY,
    "last_purchase_at": NOW - 10 * DAY,
    "traits": {"region": "US", "tier": "gold"},
    "context": {},
}


def in_segment(text: str, user: dict) -> bool:
    return parse_segment_rule(text).matches(user, now=NOW)


# -- the USER vocabulary ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "newcomer", "regular"),
    [
        ("events < 3", True, False),
        ("purchases == 0", True, False),
        ("events >= 100 and purchases > 10", False, True),
        ('traits.region == "EU"', True, False),
        ('traits["region"] != "EU"', False, True),
        ('traits["a b"] == 1', True, False),
        ('"fr" in traits.langs', True, False),
        ("traits.tier == null", True, False),
        ("not traits.missing.deep == 1", True, True),  # a path through nothing is null
        ("last_purchase_at > now - 30d", False, True),
        ("last_purchase_at == null", True, False),
        ("last_purchase_at < now - 30d", False, False),  # null compares false
        ("first_seen_at > now - 7d", True, False),
        ("last_seen_at > now - 1d and last_seen_at - first_seen_at < 2d", True, False),
        ('context.device == "ios"', True, False),
        ('context["device"] == null', False, True),
        ('user_id in ["u1", "u3"]', True, False),
        ('"u" in user_id', True, True),
        ('EVENTS < 3 OR traits.tier == "gold"', None, None),  # names are case-sensitive
    ],
)
def test_segment_rules_read_user_records(text, newcomer, regular):
    if newcomer is None:
        with pytest.raises(ValidationError, match="unknown name 'EVENTS'"):
            parse_segment_rule(text)
        return
    assert in_segment(text, NEWCOMER) is newcomer
    assert in_segment(text, REGULAR) is regular


def test_segment_rules_take_frames_and_odd_values():
    frame = pd.DataFrame(
        {
            "user_id": ["a", "b", "c"],
            "events": [1, 5, 0],
            "last_purchase_at": [NOW - DAY, float("nan"), NOW - 90 * DAY],
            "traits": [{"region": "EU"}, None, "not a map"],
        }
    )
    rule = parse_segment_rule('traits.region == "EU" or last_purchase_at > now - 30d')
    assert rule.mask(frame, now=NOW).tolist() == [True, False, False]
    assert parse_segment_rule("last_purchase_at == null").mask(frame).tolist() == [
        False,
        True,
        False,
    ]
    assert rule.uses_fields and rule.uses_now and rule.externals == ()


def test_the_same_text_means_different_things_in_each_vocabulary():
    # context is a map of the user record for segments, a request-bound scope for items
    assert parse_expression("context.device", USER_VOCABULARY) == Property(("device",), "context")
    assert parse_expression("context.device") == External("context", ("device",))
    assert Property(("region",), "traits") != Property(("region",))
    assert parse_filter("events < 3", USER_VOCABULARY).matches({"events": 1})


# -- item aliases -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alias", "plain"),
    [
        ("item.created_at > now - 7d", "created_at > now - 7d"),
        ('"Comedy" in item.categories and item.available', '"Comedy" in categories and available'),
        ('item.properties.color == "red"', 'properties.color == "red"'),
        ('item.properties["a b"].c == 1', 'properties["a b"].c == 1'),
        ("item.price < price + 1", "price < price + 1"),
    ],
)
def test_item_prefix_is_an_alias(alias, plain):
    assert parse_expression(alias) == parse_expression(plain)
    assert to_text(parse_expression(alias)) == plain
    item = {"created_at": NOW, "categories": ["Comedy"], "available": True, "price": 3}
    item["properties"] = {"color": "red", "a b": {"c": 1}}
    assert parse_filter(alias).matches(item, now=NOW)


# -- request-bound names ------------------------------------------------------------------


def test_externals_are_listed_and_null_until_bound():
    rule = parse_filter(
        'regions == null or context.region in regions and user["home town"] != "x"'
        " and context.region != null"
    )
    assert rule.externals == ("context.region", 'user["home town"]')
    assert rule.uses_fields and not rule.uses_now
    assert not rule.matches({"regions": ["EU"]})  # context.region is null, so != null is false
    assert rule.matches({"regions": None})
    assert parse_filter("context.region == null").matches({})
    assert not parse_filter("context.region").uses_fields  # a constant until bound
    assert parse_filter("price < 3").externals == ()


def test_bind_gives_one_canonical_text_per_value():
    rule = parse_filter("regions == null or context.region in regions")
    eu = rule.bind({"context": {"region": "EU", "device": "ios"}})
    eu_again = parse_filter("regions==null OR context.region  in regions").bind(
        {"context": {"region": "EU", "channel": "web"}, "user": {"region": "US"}}
    )
    us = rule.bind({"context": {"region": "US"}})
    assert eu.text == eu_again.text == 'regions == null or "EU" in regions'
    assert us.text == 'regions == null or "US" in regions' != eu.text
    assert eu.externals == () and eu.tree == parse_filter(eu.text).tree
    assert eu.matches({"regions": ["EU"]}) and not us.matches({"regions": ["EU"]})
    assert eu.matches({"regions": None}) and us.matches({"regions": None})
    unbound = rule.bind({})
    assert unbound.text == "regions == null or null in regions"
    assert not unbound.matches({"regions": ["EU"]})


def test_a_filter_without_externals_binds_to_itself():
    rule = parse_filter('"Comedy" in categories')
    assert rule.bind({"context": {"region": "EU"}}) is rule


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("EU", '"EU"'),
        ('say "hi"\n', '"say \\"hi\\"\\n"'),
        (3, "3"),
        (2.5, "2.5"),
        (True, "true"),
        (None, "null"),
        (["EU", "US"], '["EU", "US"]'),
        (("EU", 1, None, False), '["EU", 1, null, false]'),
        (np.array(["a", "b"]), '["a", "b"]'),
        (np.int64(7), "7"),
        (np.float32(0.5), "0.5"),
        ([], "[]"),
        (float("nan"), "null"),
        (float("inf"), "null"),
        ({"nested": "map"}, "null"),
        ([["nested"]], "null"),
        ([{"a": 1}], "null"),
        ([1, float("nan")], "[1, null]"),  # NaN is a missing value, as in catalog rows
        (10**400, "null"),  # no literal can say it
        (object(), "null"),
    ],
)
def test_bound_values_become_literals_or_null(value, literal):
    assert parse_filter("user.x == 1").bind({"user": {"x": value}}).text == f"{literal} == 1"


def test_bind_follows_paths_and_tolerates_missing_scopes():
    rule = parse_filter('user.address.city == "Lyon" and context["a b"] == 1')
    values = {"user": {"address": {"city": "Lyon"}}, "context": {"a b": 1}}
    assert rule.bind(values).text == '"Lyon" == "Lyon" and 1 == 1'
    assert rule.bind(values).matches({})
    assert rule.bind({"user": {"address": "not a map"}}).text == 'null == "Lyon" and null == 1'
    assert rule.bind({"user": None}).text == 'null == "Lyon" and null == 1'  # type: ignore[dict-item]


def test_bound_externals_work_in_arithmetic_and_lists():
    rule = parse_filter("created_at > now - user.window and price in context.prices")
    bound = rule.bind({"user": {"window": 86_400}, "context": {"prices": [5, 10]}})
    assert bound.text == "created_at > now - 86400 and price in [5, 10]"
    assert bound.uses_now and bound.matches({"created_at": NOW - 60, "price": 5}, now=NOW)
    assert not bound.matches({"created_at": NOW - 2 * DAY, "price": 5}, now=NOW)
    # a value of the wrong type is not an error: the comparison is false, as with fields
    odd = rule.bind({"user": {"window": "a day"}, "context": {"prices": "5"}})
    assert odd.text == 'created_at > now - "a day" and price in "5"'
    assert not odd.matches({"created_at": NOW, "price": 5}, now=NOW)


class FakeCatalog:
    def __init__(self, rows: list[dict]) -> None:
        self.rows = rows
        self.frames_read = 0

    def content_stamp(self) -> str:
        return "1"

    def item_frame(self) -> pd.DataFrame:
        self.frames_read += 1
        return pd.DataFrame(self.rows)


def test_catalog_masks_are_cached_by_the_bound_text():
    catalog = FakeCatalog(
        [
            {"item_id": "world", "regions": None},
            {"item_id": "eu", "regions": ["EU"]},
            {"item_id": "us", "regions": ["US"]},
        ]
    )
    filters = CatalogFilters(catalog)
    rule = filters.parse("regions == null or context.region in regions")
    items = np.array(["us", "eu", "world"])
    eu = filters.allowed(rule.bind({"context": {"region": "EU"}}), items, "v1")
    eu_again = filters.allowed(rule.bind({"context": {"region": "EU", "page": "p"}}), items, "v1")
    us = filters.allowed(rule.bind({"context": {"region": "US"}}), items, "v1")
    assert eu.mask.tolist() == [False, True, True]
    assert eu_again is eu  # the second EU request reuses the first one's mask
    assert us.mask.tolist() == [True, False, True]
    assert filters.allowed(rule, items, "v1").mask.tolist() == [False, False, True]  # unbound
    assert catalog.frames_read == 1


# -- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vocabulary", "text", "position", "reason"),
    [
        (ITEM_VOCABULARY, "item", 1, "item needs a field, e.g. item.created_at"),
        (ITEM_VOCABULARY, 'item["price"] > 1', 1, "item needs a field"),
        (ITEM_VOCABULARY, "item.", 6, "expected a field name after 'item.', found end of input"),
        (ITEM_VOCABULARY, "item.prices > 2", 6, "unknown item field 'prices' (did you mean"),
        (ITEM_VOCABULARY, "item.now > 2", 6, "unknown item field 'now'"),
        (ITEM_VOCABULARY, "item.price.amount > 1", 11, "price has no sub-fields"),
        (ITEM_VOCABULARY, "item.properties", 6, "properties needs a key"),
        (ITEM_VOCABULARY, "item.price", 1, "price is a number, not a condition"),
        (ITEM_VOCABULARY, "context == 1", 1, "context needs a key, e.g. context.device"),
        (ITEM_VOCABULARY, "user.", 6, "expected a key after '.', found end of input"),
        (ITEM_VOCABULARY, "user[1] == 2", 6, "expected a quoted key after '['"),
        (ITEM_VOCABULARY, 'user["a" == 1', 10, "expected ']' after the key, found '=='"),
        (ITEM_VOCABULARY, "contxt.region == 1", 1, "unknown name 'contxt' (did you mean 'context'"),
        (
            ITEM_VOCABULARY,
            "events < 3",
            1,
            "known names: available, categories, created_at, item_id, language, price, regions,"
            " tags, title, now, properties.<key>, context.<key>, user.<key>, item.<field>",
        ),
        (ITEM_VOCABULARY, 'traits.region == "EU"', 1, "unknown name 'traits'"),
        (USER_VOCABULARY, "event < 3", 1, "unknown name 'event' (did you mean 'events'?)"),
        (
            USER_VOCABULARY,
            "price < 3",
            1,
            "known names: events, first_seen_at, last_purchase_at, last_seen_at, purchases,"
            " user_id, now, traits.<key>, context.<key>",
        ),
        (USER_VOCABULARY, "traits", 1, "traits needs a key, e.g. traits.region"),
        (USER_VOCABULARY, "traits. == 1", 9, "expected a key after '.', found '=='"),
        (USER_VOCABULARY, 'traits["a" == 1', 12, "expected ']' after the key"),
        (USER_VOCABULARY, "events.count > 1", 7, "events has no sub-fields"),
        (USER_VOCABULARY, "events.count > 1", 7, "(only traits and context take keys)"),
        (USER_VOCABULARY, "item.events > 1", 1, "unknown name 'item'"),
        (USER_VOCABULARY, 'user.region == "EU"', 1, "unknown name 'user'"),
        (USER_VOCABULARY, 'properties.color == "red"', 1, "unknown name 'properties'"),
        (USER_VOCABULARY, "events", 1, "events is a number, not a condition: compare it"),
        (USER_VOCABULARY, "user_id", 1, "(e.g. events < 3)"),
        (USER_VOCABULARY, "events < 3 3", 12, "expected 'and', 'or' or the end after '3'"),
    ],
)
def test_malformed_names_give_the_position_and_reason(vocabulary, text, position, reason):
    with pytest.raises(ValidationError) as caught:
        parse_filter(text, vocabulary)
    message = caught.value.message
    assert message.startswith(f"invalid filter: position {position}: "), message
    assert reason in message, message
    assert caught.value.details[0]["loc"] == ["query", "filter"]


def test_segment_rule_errors_say_so_and_point_where_asked():
    with pytest.raises(ValidationError) as caught:
        parse_segment_rule("")
    assert caught.value.message == "invalid segment rule: position 1: the segment rule is empty"
    assert caught.value.details[0]["loc"] == ["body", "rule"]
    with pytest.raises(ValidationError) as caught:
        parse_segment_rule("events <", loc=("body", "segments", 2, "rule"))
    assert caught.value.message.startswith("invalid segment rule: position 9: expected a value")
    assert caught.value.details[0]["loc"] == ["body", "segments", 2, "rule"]
    assert caught.value.status_code == 422


# -- fuzzing ------------------------------------------------------------------------------

VOCABULARIES = [ITEM_VOCABULARY, USER_VOCABULARY]

TOKENS = [
    *ITEM_VOCABULARY.fields,
    *USER_FIELDS,
    "item.",
    "item",
    "properties",
    "traits",
    "context",
    "user",
    ".region",
    '["a b"]',
    ".",
    "now",
    "and",
    "or",
    "not",
    "in",
    "null",
    "==",
    "<",
    ">=",
    "(",
    ")",
    "[",
    "]",
    ",",
    "-",
    "+",
    '"x"',
    "'",
    "7d",
    "1.5",
    "3",
    "=",
    "é",
]

KEYS = ["a", "region", "b c", "in", "x-1"]
keys = st.sampled_from(KEYS)  # few, so that paths meet the records' keys
maps = st.dictionaries(st.sampled_from(KEYS), json_values, max_size=4)
records = st.fixed_dictionaries(
    {},
    optional={
        **{name: json_values for name in [*ITEM_VOCABULARY.fields, *USER_FIELDS]},
        "properties": maps,
        "traits": maps,
        "context": maps,
    },
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(VOCABULARIES),
    st.one_of(
        st.text(max_size=80),
        st.lists(st.sampled_from(TOKENS), max_size=20).map(" ".join),
        st.lists(st.sampled_from(TOKENS), max_size=20).map("".join),
    ),
    records,
)
def test_any_text_in_either_vocabulary_only_raises_validation_error(vocabulary, text, record):
    try:
        parsed = parse_filter(text, vocabulary)
    except ValidationError as error:
        assert re.match(r"invalid filter: position \d+: ", error.message)
        return
    assert isinstance(parsed.matches(record, now=NOW), bool)
    bound = parsed.bind({"context": {"region": "EU"}, "user": {"a": [1, 2]}})
    assert isinstance(bound.matches(record, now=NOW), bool)


item_trees = trees(ITEM_VOCABULARY, st.sampled_from(KEYS))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(VOCABULARIES).flatmap(lambda v: st.tuples(st.just(v), trees(v, keys))),
    st.lists(records, min_size=1, max_size=4),
)
def test_generated_trees_round_trip_in_their_vocabulary(vocabulary_and_tree, rows):
    vocabulary, tree = vocabulary_and_tree
    text = to_text(tree)
    parsed = parse_filter(text, vocabulary)
    assert parsed.tree == tree, text
    assert to_text(parsed.tree) == text
    verdicts = [parsed.matches(row, now=NOW) for row in rows]
    assert parsed.mask_records([clean_row(r) for r in rows], now=NOW).tolist() == verdicts


# values that look alike but are not equal (1, 1.0, True, "1") must not share a cache key
bound_values = st.sampled_from(["EU", "US", "1", 1, 1.0, True, None, ["EU", 1], [1]]) | json_values
request_values = st.fixed_dictionaries(
    {
        "context": st.dictionaries(st.sampled_from(KEYS), bound_values, min_size=2),
        "user": st.dictionaries(st.sampled_from(KEYS), bound_values, min_size=2),
    }
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(item_trees, request_values, request_values, st.lists(records, min_size=1, max_size=4))
def test_equal_bound_text_means_equal_verdicts(tree, first, second, rows):
    rule = Filter.of(to_text(tree), tree)
    a, b = rule.bind(first), rule.bind(second)
    assert a.externals == () and a.text == to_text(a.tree)
    assert rule.bind(dict(first)).text == a.text  # deterministic
    plain = [clean_row(r) for r in rows]
    if a.text == b.text:  # the caches would share one mask: it must be right for both
        assert a.mask_records(plain, now=NOW).tolist() == b.mask_records(plain, now=NOW).tolist()
    try:
        reparsed = parse_filter(a.text)
    except ValidationError:
        return  # e.g. '"x" in 3': a bound value of a type the parser would refuse
    assert reparsed.tree == a.tree
