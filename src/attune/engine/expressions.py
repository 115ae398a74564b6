"""A small, safe expression language: item filters, boosts and user segment rules.

``"Comedy" in categories and available`` (a filter over catalog items),
``boost 1.5 if item.created_at > now - 7d`` (a boost), ``events < 3 and traits.region ==
"EU"`` (a segment rule over a user record). Text is split by
:mod:`attune.engine.expression_tokens`, parsed by the recursive-descent parser of
:mod:`attune.engine.expression_parser` into the tree of
:mod:`attune.engine.expression_tree`, and evaluated by :mod:`attune.engine.expression_eval`;
user text is never handed to ``eval``, ``compile`` or Python's ``ast``.

Grammar (EBNF; keywords are case-insensitive, names are not)::

    filter     := or_expr EOF                         (filters and segment rules)
    boost      := "boost" number "if" or_expr EOF     (0 < number <= 100)
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | comparison
    comparison := sum [ ("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not" "in") sum ]
    sum        := value (("+" | "-") value)*
    value      := literal | list | "now" | name | "(" or_expr ")"
    literal    := string | ["-"] number | ["-"] duration | "true" | "false" | "null"
    list       := "[" [literal ("," literal)* [","]] "]"
    name       := field | map path | scope path | alias "." (field | map path)
    path       := ("." word | "[" string "]")+
    string     := '"' chars '"' | "'" chars "'"    escapes: \\" \\' \\\\ \\n \\t \\r \\/ \\uXXXX
    number     := digits ["." digits] [("e" | "E") ["+" | "-"] digits]
    duration   := number ("s" | "m" | "h" | "d" | "w")       e.g. 7d, 24h, 30m, 1.5h

The names come from a *vocabulary* (:mod:`attune.engine.expression_tree`):

============  ==========================================  ==========  ================  =====
vocabulary    field                                       map         scope             alias
============  ==========================================  ==========  ================  =====
ITEM          available categories created_at item_id     properties  context user      item
              language price regions tags title
USER          user_id events purchases first_seen_at      traits
              last_seen_at last_purchase_at               context
============  ==========================================  ==========  ================  =====

Precedence, tightest first: ``+``/``-``, comparisons, ``not``, ``and``, ``or``. So
``not "Drama" in categories`` means ``not ("Drama" in categories)``, as in Python and
SQL; comparisons do not chain (``1 < price < 5`` is an error: join them with ``and``).

Meaning:

- ``x == y`` / ``x != y`` compare values of the same type exactly (strings are
  case-sensitive); ``<``, ``<=``, ``>``, ``>=`` order numbers or strings.
- ``x in list`` is true when an element equals ``x`` exactly (``"Comedy" in categories``,
  ``language in ["en", "fr"]``); ``x in text`` is a substring test; ``not in`` negates.
- Where the parser knows both sides' types (a field against a literal: ``price >
  "abc"``, ``available == 1``) and they can never compare, the text is refused with the
  operator's position (text and a number compare when the text writes a number, so
  only a text literal that does not is refused). Otherwise a comparison involving null
  or values of different types is **false** (never an error): ``price < 10`` is false
  for an item without a price, and so is ``price != 10``; use ``price == null`` /
  ``price != null`` to test for absence (a comparison with the literal ``null`` is the
  one exception). ``regions`` is null for "available everywhere", so write
  ``regions == null or "FR" in regions``.
- Text that writes a number (``"1995"``, ``" 2.5"``) compared with a number, or looked
  for in a list of numbers, is read as that number: CSV imports make properties text,
  and request context values are text (``context.hour >= 18``).
- ``available`` or any true/false value stands alone as a condition; a condition holds
  only for the value ``true``.
- ``now`` is the evaluation time and durations are seconds, so
  ``created_at > now - 7d`` keeps items created in the last week (times are UTC Unix
  seconds). Arithmetic on anything but numbers gives null.
- A map path (``properties.color``, ``properties["a key"]``, ``traits.region``) reads a
  key of that map field of the record; a missing key is null.
- ``item.<field>`` is the same as ``<field>`` (``item.properties.x`` as ``properties.x``).
- A scope path (``context.region``: the request's context; ``user.region``: the
  requesting user's traits) is a value of the request, not of the item: null until
  :meth:`Filter.bind` replaces it with the request's value. So
  ``regions == null or context.region in regions`` bound to region "EU" becomes
  ``regions == null or "EU" in regions``, with that canonical text as its cache key.
- ``boost 1.5 if <condition>``: items matching the condition (ITEM vocabulary, scopes
  included) get their score multiplied by 1.5.

Limits: at most :data:`MAX_LENGTH` characters, :data:`MAX_DEPTH` levels of parentheses
and ``not``, and :data:`MAX_LIST` entries per list. Every error is a
:class:`~attune.errors.ValidationError` naming the 1-based character position and reason.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from attune.engine.expression_eval import (
    Condition,
    bind_tree,
    clean_row,
    compile_condition,
    frame_records,
)
from attune.engine.expression_parser import MAX_BOOST, MAX_DEPTH, MAX_LIST, Parser
from attune.engine.expression_tokens import SyntaxProblem, tokenize
from attune.engine.expression_tree import (
    ITEM_VOCABULARY,
    USER_VOCABULARY,
    And,
    Arith,
    Compare,
    Duration,
    External,
    Field,
    ListLiteral,
    Literal,
    Node,
    Not,
    Now,
    Or,
    Property,
    Vocabulary,
    to_text,
    walk,
)
from attune.errors import ValidationError

MAX_LENGTH = 2_000

Loc = Sequence[str | int]


def expression_error(
    position: int, reason: str, what: str = "filter", loc: Loc = ("query", "filter")
) -> ValidationError:
    """The 422 a malformed expression gets; ``position`` is 0-based, the message 1-based.

    Args:
        position: where the problem is, 0-based.
        reason: what is wrong, for people.
        what: the kind of expression ("filter", "boost", "segment rule"), for the message.
        loc: the field path the error detail points at (e.g. ``["body", "boosts", 0]``).
    """
    message = f"position {position + 1}: {reason}"
    detail = {"loc": list(loc), "msg": message, "type": "filter_syntax"}
    return ValidationError(f"invalid {what}: {message}", details=[detail])


@dataclass(frozen=True)
class Filter:
    """A parsed filter or segment rule: test single records or whole catalog frames.

    Attributes:
        text: the expression as given (for a bound filter, the bound tree's canonical text).
        tree: its parse tree.
        uses_fields: whether it reads any field of the record (if not, it is a constant).
        uses_now: whether it reads the clock (so its result changes with time).
        externals: the request-bound names it reads (``context.region``, ``user.region``),
            sorted; empty once bound.
    """

    text: str
    tree: Node
    uses_fields: bool
    uses_now: bool
    externals: tuple[str, ...]
    # compiled once, for filters that do not read ``now``; equal filters compile alike
    _timeless: Condition | None = field(compare=False, repr=False)

    @classmethod
    def of(cls, text: str, tree: Node) -> Filter:
        """The filter for a parsed ``tree`` (flags computed, compiled if time-independent)."""
        nodes = walk(tree)
        uses_fields = any(isinstance(n, Field | Property) for n in nodes)
        uses_now = any(isinstance(n, Now) for n in nodes)
        externals = tuple(sorted({to_text(n) for n in nodes if isinstance(n, External)}))
        timeless = None if uses_now else compile_condition(tree, 0.0)
        return cls(text, tree, uses_fields, uses_now, externals, timeless)

    def condition(self, now: float | None = None) -> Condition:
        """The compiled test ``record -> bool`` at time ``now`` (default: the current time).

        Records must hold plain Python values (see ``clean_row`` / ``frame_records``).
        Filters that read ``now`` are compiled for each time (a few microseconds), so
        ``now - 7d`` is computed once per call rather than once per record.
        """
        if self._timeless is not None:
            return self._timeless
        return compile_condition(self.tree, time.time() if now is None else now)

    def matches(self, record: Mapping[str, Any], now: float | None = None) -> bool:
        """Whether one record matches: a catalog item (item_id, categories, price, …) for a
        filter, a user record (user_id, events, traits, …) for a segment rule.

        Args:
            record: field name → value; missing fields are null.
            now: evaluation time in UTC Unix seconds (default: the current time).
        """
        return self.condition(now)(clean_row(record))

    def matches_unknown_item(self) -> bool:
        """The answer for an item absent from the catalog: no field can match, so only a
        filter that reads no field (e.g. ``true``) admits it."""
        return not self.uses_fields and self.condition()({})

    def mask(self, items: pd.DataFrame, now: float | None = None) -> np.ndarray:
        """A bool array, one entry per row of ``items`` (columns as :meth:`matches` reads)."""
        return self.mask_records(frame_records(items), now)

    def mask_records(self, records: list[dict[str, Any]], now: float | None = None) -> np.ndarray:
        """:meth:`mask` over rows of plain values (from ``frame_records`` or ``clean_row``)."""
        condition = self.condition(now)
        return np.fromiter(map(condition, records), dtype=bool, count=len(records))

    def bind(self, values: Mapping[str, Mapping[str, Any]]) -> Filter:
        """This filter with each request-bound name replaced by its value for one request.

        Args:
            values: scope → map, e.g. ``{"context": {"region": "EU"}, "user": traits}``.
                Strings, numbers, booleans, null and lists of those become literals;
                anything else, and a missing scope or key, becomes null.

        Returns:
            ``self`` when there is nothing to bind; otherwise a new filter whose ``text`` is
            the canonical text of the bound tree, so equal values give equal text (the key
            of the catalog-mask caches) and different values different text.
        """
        if not self.externals:
            return self
        tree = bind_tree(self.tree, values)
        return Filter.of(to_text(tree), tree)

    def __str__(self) -> str:
        return to_text(self.tree)


@dataclass(frozen=True)
class Boost:
    """``boost <factor> if <condition>``: multiply the score of matching items.

    Attributes:
        factor: the multiplier, above 0 and at most :data:`MAX_BOOST`.
        condition: the items it applies to (ITEM vocabulary; its ``text`` is canonical).
        text: the boost as given (for a bound boost, its canonical text).
    """

    factor: float
    condition: Filter
    text: str

    def weight(self, item: Mapping[str, Any], now: float | None = None) -> float:
        """``factor`` if ``item`` matches the condition, else 1.0."""
        return self.factor if self.condition.matches(item, now) else 1.0

    def weights(self, records: list[dict[str, Any]], now: float | None = None) -> np.ndarray:
        """(n_records,) float: ``factor`` where the record matches, 1.0 elsewhere."""
        return np.where(self.condition.mask_records(records, now), self.factor, 1.0)

    def bind(self, values: Mapping[str, Mapping[str, Any]]) -> Boost:
        """This boost with its condition bound (see :meth:`Filter.bind`)."""
        if not self.condition.externals:
            return self
        condition = self.condition.bind(values)
        return Boost(self.factor, condition, _boost_text(self.factor, condition.tree))

    def __str__(self) -> str:
        return _boost_text(self.factor, self.condition.tree)


def _boost_text(factor: float, tree: Node) -> str:
    return f"boost {factor!r} if {to_text(tree)}"


def _parser(text: object, vocabulary: Vocabulary, what: str) -> Parser:
    if not isinstance(text, str):
        raise SyntaxProblem(0, f"a {what} must be text")
    if len(text) > MAX_LENGTH:
        raise SyntaxProblem(MAX_LENGTH, f"a {what} is at most {MAX_LENGTH} characters")
    return Parser(text, vocabulary, what)


def parse_expression(
    text: str,
    vocabulary: Vocabulary = ITEM_VOCABULARY,
    *,
    what: str = "filter",
    loc: Loc = ("query", "filter"),
) -> Node:
    """The parse tree of ``text``; raises :class:`ValidationError` if it is malformed."""
    try:
        return _parser(text, vocabulary, what).parse()
    except SyntaxProblem as problem:
        raise expression_error(problem.position, problem.reason, what, loc) from None


def parse_filter(
    text: str, vocabulary: Vocabulary = ITEM_VOCABULARY, *, loc: Loc = ("query", "filter")
) -> Filter:
    """Parse and compile a filter expression (see the module docstring for the grammar).

    Args:
        text: the expression.
        vocabulary: the names it may use: :data:`ITEM_VOCABULARY` (catalog items) or
            :data:`USER_VOCABULARY` (user records).
        loc: the field path error details point at.

    Raises:
        ValidationError: with the 1-based position and reason, and details located at
            ``loc``.
    """
    return Filter.of(text, parse_expression(text, vocabulary, loc=loc))


def parse_segment_rule(text: str, *, loc: Loc = ("body", "rule")) -> Filter:
    """Parse a segment rule: a condition over a user record (:data:`USER_VOCABULARY`),
    e.g. ``events < 3 and traits.region == "EU"``; raises ``ValidationError``."""
    return Filter.of(text, parse_expression(text, USER_VOCABULARY, what="segment rule", loc=loc))


def parse_boost(text: str, *, loc: Loc = ("body", "boost")) -> Boost:
    """Parse ``boost <factor> if <item condition>``, e.g. ``boost 0.5 if "Horror" in
    categories``; raises ``ValidationError`` (1-based position and reason)."""
    try:
        factor, tree = _parser(text, ITEM_VOCABULARY, "boost").parse_boost()
    except SyntaxProblem as problem:
        raise expression_error(problem.position, problem.reason, "boost", loc) from None
    return Boost(factor, Filter.of(to_text(tree), tree), text)


__all__ = [
    "ITEM_VOCABULARY",
    "MAX_BOOST",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "MAX_LIST",
    "USER_VOCABULARY",
    "And",
    "Arith",
    "Boost",
    "Compare",
    "Duration",
    "External",
    "Field",
    "Filter",
    "ListLiteral",
    "Literal",
    "Not",
    "Now",
    "Or",
    "Property",
    "Vocabulary",
    "expression_error",
    "parse_boost",
    "parse_expression",
    "parse_filter",
    "parse_segment_rule",
    "to_text",
    "tokenize",
]
