"""Boosts: ``boost <factor> if <item condition>``, their errors, binding and fuzzing."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attune.engine.expression_tree import to_text
from attune.engine.expressions import MAX_BOOST, parse_boost, parse_filter
from attune.errors import ValidationError
from tests.engine.test_expressions_vocabulary import TOKENS, item_trees

NOW = 1_700_000_000.0
DAY = 86_400

FRESH_HORROR = {"categories": ["Horror"], "created_at": NOW - DAY, "regions": ["EU"]}
OLD_COMEDY = {"categories": ["Comedy"], "created_at": NOW - 30 * DAY, "regions": None}


@pytest.mark.parametrize(
    ("text", "factor", "condition", "fresh_horror", "old_comedy"),
    [
        (
            "boost 1.5 if item.created_at > now - 7d",
            1.5,
            "created_at > now - 7d",
            1.5,
            1.0,
        ),
        ('boost 0.5 if "Horror" in categories', 0.5, '"Horror" in categories', 0.5, 1.0),
        ('BOOST 2 IF not "Horror" in item.categories', 2.0, 'not "Horror" in categories', 1, 2),
        ("Boost 100 If true", 100.0, "true", 100.0, 100.0),
        ("boost 1e-3 if regions == null", 0.001, "regions == null", 1.0, 0.001),
        ("  boost\n3 if(available)  ", 3.0, "available", 1.0, 1.0),
        ("boost 1.25 if context.region in regions", 1.25, "context.region in regions", 1, 1),
    ],
)
def test_a_boost_multiplies_matching_items(text, factor, condition, fresh_horror, old_comedy):
    boost = parse_boost(text)
    assert boost.factor == factor and isinstance(boost.factor, float)
    assert boost.text == text
    assert boost.condition.text == condition  # canonical, so equal conditions share masks
    assert boost.weight(FRESH_HORROR, now=NOW) == fresh_horror
    assert boost.weight(OLD_COMEDY, now=NOW) == old_comedy
    weights = boost.weights([FRESH_HORROR, OLD_COMEDY], now=NOW)
    assert weights.tolist() == [fresh_horror, old_comedy]
    assert str(parse_boost(str(boost))) == str(boost)


def test_canonical_text_round_trips():
    boost = parse_boost("BOOST 2 IF item.properties['a b'] == 1 AND context.device=='ios'")
    assert str(boost) == 'boost 2.0 if properties["a b"] == 1 and context.device == "ios"'
    again = parse_boost(str(boost))
    assert again.factor == boost.factor and again.condition.tree == boost.condition.tree


def test_binding_a_boost_binds_its_condition():
    boost = parse_boost("boost 1.5 if user.region in regions")
    assert boost.condition.externals == ("user.region",)
    eu = boost.bind({"user": {"region": "EU"}})
    assert eu.text == 'boost 1.5 if "EU" in regions' == str(eu)
    assert eu.condition.text == '"EU" in regions'
    assert eu.weight(FRESH_HORROR) == 1.5 and boost.weight(FRESH_HORROR) == 1.0  # unbound: null
    assert eu == boost.bind({"user": {"region": "EU", "age": 31}})
    plain = parse_boost("boost 2 if available")
    assert plain.bind({"user": {"region": "EU"}}) is plain


def test_a_boost_condition_masks_like_the_same_filter():
    boost = parse_boost('boost 3 if "Comedy" in item.categories or price < 5')
    same = parse_filter('"Comedy" in categories or price < 5')
    rows = [OLD_COMEDY, FRESH_HORROR, {"price": 1}]
    assert boost.condition.tree == same.tree
    assert boost.condition.mask_records(rows).tolist() == same.mask_records(rows).tolist()
    assert boost.weights(rows).tolist() == [3.0, 1.0, 3.0]


@pytest.mark.parametrize(
    ("text", "position", "reason"),
    [
        ("", 1, "the boost is empty"),
        ("   ", 1, "the boost is empty"),
        ("boots 2 if true", 1, "a boost starts with 'boost', e.g. boost 1.5 if price < 10"),
        ('"Horror" in categories', 1, "a boost starts with 'boost'"),
        ("boost", 6, "expected the boost factor (a number) after 'boost', found end of input"),
        ("boost if true", 7, "expected the boost factor (a number) after 'boost', found 'if'"),
        ("boost 0 if true", 7, f"a boost factor must be above 0 and at most {MAX_BOOST}"),
        ("boost 0.0 if true", 7, "found '0.0'"),
        ("boost -1 if true", 7, "at most 100, not negative"),
        ("boost 100.5 if true", 7, "must be above 0 and at most 100, found '100.5'"),
        ("boost 1" + "0" * 400 + " if true", 7, "out of range"),
        ("boost 1" + "0" * 200 + " if true", 7, "at most 100, found '100000000000000000000..."),
        ("boost 2d if true", 7, "a boost factor is a plain number, not a duration: '2d'"),
        ("boost 2 d if true", 9, "expected 'if' after '2', found 'd'"),
        ("boost 2x if true", 7, "bad duration '2x'"),
        ("boost 2 true", 9, "expected 'if' after '2', found 'true'"),
        ("boost 2 if", 11, "expected a value after 'if', found end of input"),
        ("boost 2 if price", 12, "price is a number, not a condition"),
        ("boost 2 if prices > 1", 12, "unknown name 'prices' (did you mean 'price'?)"),
        ("boost 2 if events > 1", 12, "unknown name 'events'"),
        ("boost 2 if item.prices > 1", 17, "unknown item field 'prices'"),
        ("boost 2 if available available", 22, "expected 'and', 'or' or the end"),
        ("boost 2 if (available", 22, "expected ')' to close the '(' at position 12"),
        ("boost 2 if boost 3 if true", 12, "unknown name 'boost'"),
    ],
)
def test_malformed_boosts_name_the_position_and_reason(text, position, reason):
    with pytest.raises(ValidationError) as caught:
        parse_boost(text)
    message = caught.value.message
    assert message.startswith(f"invalid boost: position {position}: "), message
    assert reason in message, message
    assert caught.value.status_code == 422
    [detail] = caught.value.details
    assert detail["loc"] == ["body", "boost"] and detail["type"] == "filter_syntax"


def test_errors_point_at_the_callers_field_and_limits_hold():
    with pytest.raises(ValidationError) as caught:
        parse_boost("boost 2 if", loc=("body", "boosts", 1))
    assert caught.value.details[0]["loc"] == ["body", "boosts", 1]
    with pytest.raises(ValidationError, match="a boost is at most 2000 characters"):
        parse_boost("boost 2 if " + " or ".join(["available"] * 300))
    with pytest.raises(ValidationError, match="a boost must be text"):
        parse_boost(None)  # type: ignore[arg-type]


# -- fuzzing ------------------------------------------------------------------------------

BOOST_TOKENS = [*TOKENS, "boost", "BOOST", "if", "IF", "2", "0", "101", "-"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.text(max_size=80),
        st.text(max_size=60).map(lambda tail: "boost 2 if " + tail),
        st.lists(st.sampled_from(BOOST_TOKENS), max_size=20).map(" ".join),
        st.lists(st.sampled_from(BOOST_TOKENS), max_size=12).map(lambda t: "boost " + " ".join(t)),
    )
)
def test_any_text_only_raises_validation_error(text):
    try:
        boost = parse_boost(text)
    except ValidationError as error:
        assert re.match(r"invalid boost: position \d+: ", error.message)
        return
    assert 0 < boost.factor <= MAX_BOOST
    assert isinstance(boost.weight({"price": 1, "regions": ["EU"]}, now=NOW), float)


factors = st.floats(min_value=1e-6, max_value=MAX_BOOST, allow_nan=False) | st.integers(1, 100)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(factors, item_trees)
def test_generated_boosts_round_trip(factor, tree):
    text = f"boost {factor!r} if {to_text(tree)}"
    boost = parse_boost(text)
    assert boost.factor == float(factor)
    assert boost.condition.tree == tree
    again = parse_boost(str(boost))
    assert again.factor == boost.factor and again.condition.tree == tree
    assert str(again) == str(boost)
