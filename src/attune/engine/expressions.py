"""A small, safe filter language over item fields: ``"Comedy" in categories and available``.

Filters are parsed by a hand-written tokenizer and recursive-descent parser into the tree
of :mod:`attune.engine.expression_tree` and evaluated by :mod:`attune.engine.expression_eval`;
user text is never handed to ``eval``, ``compile`` or Python's ``ast``.

Grammar (EBNF; keywords are case-insensitive, field names are not)::

    filter     := or_expr EOF
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | comparison
    comparison := sum [ ("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not" "in") sum ]
    sum        := value (("+" | "-") value)*
    value      := literal | list | "now" | name | "(" or_expr ")"
    literal    := string | ["-"] number | ["-"] duration | "true" | "false" | "null"
    list       := "[" [literal ("," literal)* [","]] "]"
    name       := field | "properties" ("." word | "[" string "]")+
    field      := "available" | "categories" | "created_at" | "item_id" | "language"
                | "price" | "regions" | "tags" | "title"
    string     := '"' chars '"' | "'" chars "'"    escapes: \\" \\' \\\\ \\n \\t \\r \\/ \\uXXXX
    number     := digits ["." digits] [("e" | "E") ["+" | "-"] digits]
    duration   := number ("s" | "m" | "h" | "d" | "w")       e.g. 7d, 24h, 30m, 1.5h

Precedence, tightest first: ``+``/``-``, comparisons, ``not``, ``and``, ``or``. So
``not "Drama" in categories`` means ``not ("Drama" in categories)``, as in Python and
SQL; comparisons do not chain (``1 < price < 5`` is an error: join them with ``and``).

Meaning:

- ``x == y`` / ``x != y`` compare values of the same type exactly (strings are
  case-sensitive); ``<``, ``<=``, ``>``, ``>=`` order numbers or strings.
- ``x in list`` is true when an element equals ``x`` exactly (``"Comedy" in categories``,
  ``language in ["en", "fr"]``); ``x in text`` is a substring test; ``not in`` negates.
- A comparison involving null or values of different types is **false** (never an error):
  ``price < 10`` is false for an item without a price, and so is ``price != 10``; use
  ``price == null`` / ``price != null`` to test for absence (a comparison with the
  literal ``null`` is the one exception). ``regions`` is null for "available everywhere",
  so write ``regions == null or "FR" in regions``.
- ``available`` or any true/false value stands alone as a condition; a condition holds
  only for the value ``true``.
- ``now`` is the evaluation time and durations are seconds, so
  ``created_at > now - 7d`` keeps items created in the last week (times are UTC Unix
  seconds). Arithmetic on anything but numbers gives null.
- ``properties.color`` (or ``properties["a key"]``) reads the item's free properties;
  a missing key is null.

Limits: at most :data:`MAX_LENGTH` characters, :data:`MAX_DEPTH` levels of parentheses
and ``not``, and :data:`MAX_LIST` entries per list. Every error is a
:class:`~attune.errors.ValidationError` naming the 1-based character position and reason.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from attune.engine.expression_eval import (
    Condition,
    clean_row,
    compile_condition,
    frame_records,
)
from attune.engine.expression_tree import (
    DURATION_SECONDS,
    FIELDS,
    KEYWORDS,
    And,
    Arith,
    Compare,
    Duration,
    Field,
    Kind,
    ListLiteral,
    Literal,
    Node,
    Not,
    Now,
    Or,
    Property,
    Scalar,
    kind_of,
    to_text,
    walk,
)
from attune.errors import ValidationError

MAX_LENGTH = 2_000
MAX_DEPTH = 32
MAX_LIST = 1_000

_OPERATORS = ("==", "!=", "<=", ">=", "<", ">", "(", ")", "[", "]", ",", "+", "-", ".")
_MISTAKES = {
    "=": "use '==' to compare",
    "!": "use 'not' to negate",
    "&": "use 'and'",
    "|": "use 'or'",
}
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "/": "/", "n": "\n", "t": "\t", "r": "\r"}
_WORD_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_WORD = _WORD_START | frozenset("0123456789")
_DIGITS = frozenset("0123456789")
_SPACE = frozenset(" \t\n\r")


def filter_error(position: int, reason: str) -> ValidationError:
    """The 422 a malformed filter gets; ``position`` is 0-based, the message 1-based."""
    message = f"position {position + 1}: {reason}"
    detail = {"loc": ["query", "filter"], "msg": message, "type": "filter_syntax"}
    return ValidationError(f"invalid filter: {message}", details=[detail])


# -- tokens -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Token:
    """``kind`` is one of: number, duration, string, word, op, end."""

    kind: str
    value: Any
    pos: int
    text: str

    def describe(self) -> str:
        if self.kind == "end":
            return "end of input"
        shown = self.text if len(self.text) <= 24 else self.text[:21] + "..."
        return f"'{shown}'"

    def is_word(self, *words: str) -> bool:
        return self.kind == "word" and self.value.lower() in words


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens, ending with an ``end`` token."""
    tokens: list[Token] = []
    i, size = 0, len(text)
    while i < size:
        char = text[i]
        if char in _SPACE:
            i += 1
        elif char in _DIGITS:
            token, i = _number(text, i)
            tokens.append(token)
        elif char in "\"'":
            token, i = _string(text, i)
            tokens.append(token)
        elif char in _WORD_START:
            end = i + 1
            while end < size and text[end] in _WORD:
                end += 1
            tokens.append(Token("word", text[i:end], i, text[i:end]))
            i = end
        else:
            op = next((o for o in _OPERATORS if text.startswith(o, i)), None)
            if op is None:
                hint = _MISTAKES.get(char)
                if hint is None:
                    raise filter_error(i, f"unexpected character {char!r}")
                raise filter_error(i, f"unexpected {char!r}: {hint}")
            tokens.append(Token("op", op, i, op))
            i += len(op)
    tokens.append(Token("end", None, size, ""))
    return tokens


def _number(text: str, start: int) -> tuple[Token, int]:
    i = _digits(text, start)
    is_float = False
    if text.startswith(".", i) and i + 1 < len(text) and text[i + 1] in _DIGITS:
        i, is_float = _digits(text, i + 1), True
    if i < len(text) and text[i] in "eE":
        j = i + 1
        if j < len(text) and text[j] in "+-":
            j += 1
        if j >= len(text) or text[j] not in _DIGITS:
            raise filter_error(start, f"malformed number {text[start : j + 1]!r}")
        i, is_float = _digits(text, j), True
    literal = text[start:i]
    number: int | float = float(literal) if is_float else int(literal)
    out_of_range = not np.isfinite(number) if is_float else len(literal) > 300
    if out_of_range:
        raise filter_error(start, f"number {literal[:24]!r} is out of range")
    if i < len(text) and text[i] in _WORD_START:
        end = i
        while end < len(text) and text[end] in _WORD:
            end += 1
        unit, word = text[i:end], text[start:end]
        if unit not in DURATION_SECONDS:
            raise filter_error(
                start, f"bad duration {word[:24]!r}: write a number then s, m, h, d or w (e.g. 7d)"
            )
        if not np.isfinite(float(number) * DURATION_SECONDS[unit]):
            raise filter_error(start, f"duration {word[:24]!r} is out of range")
        return Token("duration", (number, unit), start, word), end
    return Token("number", number, start, literal), i


def _digits(text: str, i: int) -> int:
    while i < len(text) and text[i] in _DIGITS:
        i += 1
    return i


def _string(text: str, start: int) -> tuple[Token, int]:
    quote_char = text[start]
    out: list[str] = []
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == quote_char:
            return Token("string", "".join(out), start, text[start : i + 1]), i + 1
        if char != "\\":
            out.append(char)
            i += 1
            continue
        escape = text[i + 1 : i + 2]
        if escape in _ESCAPES and escape:
            out.append(_ESCAPES[escape])
            i += 2
        elif escape == "u":
            code = text[i + 2 : i + 6]
            if len(code) != 4 or any(c not in "0123456789abcdefABCDEF" for c in code):
                raise filter_error(i, "'\\u' needs four hex digits")
            if 0xD800 <= int(code, 16) <= 0xDFFF:
                raise filter_error(i, f"'\\u{code}' is a lone surrogate, not a character")
            out.append(chr(int(code, 16)))
            i += 6
        elif not escape:
            break
        else:
            raise filter_error(i, f"unknown escape '\\{escape}' in a string")
    raise filter_error(start, f"unclosed string: no closing {quote_char} for the quote here")


# -- parser -----------------------------------------------------------------------------


class _Parser:
    """Recursive descent over the token list; depth is bounded by :data:`MAX_DEPTH`."""

    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        token = self.tokens[self.i]
        if token.kind != "end":
            self.i += 1
        return token

    def after(self) -> str:
        """Where we are, for error messages: "after '<'" or "at the start"."""
        if self.i == 0:
            return "at the start"
        return f"after {self.tokens[self.i - 1].describe()}"

    def fail(self, reason: str, token: Token | None = None) -> ValidationError:
        return filter_error((token or self.token).pos, reason)

    def enter(self, token: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"nested more than {MAX_DEPTH} levels deep", token)

    def parse(self) -> Node:
        if self.token.kind == "end":
            raise filter_error(0, "the filter is empty")
        node = self.or_expr()
        if self.token.kind != "end":
            if self.token.kind == "op" and self.token.value in ("==", "!=", "<", "<=", ">", ">="):
                raise self.fail("comparisons do not chain: join them with 'and'")
            previous = self.tokens[self.i - 1]
            if previous.kind == "number" and self.token.value in DURATION_SECONDS:
                raise self.fail(f"write a duration without a space, e.g. {previous.text}d")
            raise self.fail(
                f"expected 'and', 'or' or the end {self.after()}, found {self.token.describe()}"
            )
        return self.condition(node)

    def condition(self, node: Node) -> Node:
        kind = kind_of(node)
        if kind not in (Kind.BOOL, Kind.ANY):
            subject = to_text(node)
            subject = subject if len(subject) <= 24 else subject[:21] + "..."
            raise filter_error(
                node.pos,
                f"{subject} is {kind.value}, not a condition: compare it (e.g. price < 10)",
            )
        return node

    def or_expr(self) -> Node:
        return self.chain("or", self.and_expr, Or)

    def and_expr(self) -> Node:
        return self.chain("and", self.not_expr, And)

    def chain(self, word: str, operand: Callable[[], Node], node: type[And | Or]) -> Node:
        """``operand (word operand)*`` as one n-ary node (flat, so long chains stay shallow)."""
        start = self.token.pos
        operands = [operand()]
        while self.token.is_word(word):
            self.advance()
            operands.append(operand())
        if len(operands) == 1:
            return operands[0]
        return node(tuple(self.condition(o) for o in operands), start)

    def not_expr(self) -> Node:
        if not self.token.is_word("not"):
            return self.comparison()
        token = self.advance()
        self.enter(token)
        operand = self.condition(self.not_expr())
        self.depth -= 1
        return Not(operand, token.pos)

    def comparison(self) -> Node:
        left = self.sum()
        token = self.token
        if token.kind == "op" and token.value in ("==", "!=", "<", "<=", ">", ">="):
            op = self.advance().value
        elif token.is_word("in"):
            self.advance()
            op = "in"
        elif token.is_word("not") and self.tokens[self.i + 1].is_word("in"):
            self.advance()
            self.advance()
            op = "not in"
        else:
            return left
        right = self.sum()
        if op in ("in", "not in") and kind_of(right) in (Kind.NUMBER, Kind.BOOL, Kind.NULL):
            raise filter_error(
                right.pos,
                f"'{op}' needs a list or text on its right, found {kind_of(right).value}",
            )
        return Compare(op, left, right, left.pos)

    def sum(self) -> Node:
        first = self.value()
        rest: list[tuple[str, Node]] = []
        while self.token.kind == "op" and self.token.value in ("+", "-"):
            op = self.advance().value
            rest.append((op, self.value()))
        if not rest:
            return first
        for term in (first, *(t for _, t in rest)):
            if kind_of(term) not in (Kind.NUMBER, Kind.ANY):
                raise filter_error(
                    term.pos, f"'+' and '-' work on numbers and times, not {kind_of(term).value}"
                )
        return Arith(first, tuple(rest), first.pos)

    def value(self) -> Node:
        token = self.token
        if token.kind == "op" and token.value == "(":
            self.advance()
            self.enter(token)
            node = self.or_expr()
            self.depth -= 1
            if self.token.kind == "op" and self.token.value == ")":
                self.advance()
                return node
            raise self.fail(
                f"expected ')' to close the '(' at position {token.pos + 1}, "
                f"found {self.token.describe()}"
            )
        if token.kind == "op" and token.value == "[":
            return self.list_literal()
        if token.kind == "word" and token.value.lower() not in ("true", "false", "null"):
            return self.name()
        return self.literal("a value")

    def literal(self, what: str) -> Node:
        token = self.token
        if token.kind == "op" and token.value == "-":
            following = self.tokens[self.i + 1]
            if following.kind in ("number", "duration"):
                self.advance()
                node = self.literal(what)
                if isinstance(node, Duration):
                    return Duration(-node.amount, node.unit, token.pos)
                assert isinstance(node, Literal) and isinstance(node.value, int | float)
                return Literal(-node.value, token.pos)
        if token.kind in ("number", "string"):
            self.advance()
            return Literal(token.value, token.pos)
        if token.kind == "duration":
            self.advance()
            return Duration(*token.value, token.pos)
        if token.is_word("true", "false", "null"):
            self.advance()
            return Literal(
                {"true": True, "false": False, "null": None}[token.value.lower()], token.pos
            )
        raise self.fail(f"expected {what} {self.after()}, found {token.describe()}")

    def list_literal(self) -> Node:
        start = self.advance()
        items: list[Scalar] = []
        while not (self.token.kind == "op" and self.token.value == "]"):
            if self.token.kind == "end":
                raise self.fail(f"unclosed list: no ']' for the '[' at position {start.pos + 1}")
            node = self.literal("a string, number, true, false or null in the list")
            if isinstance(node, Duration):
                items.append(node.seconds)
            else:
                assert isinstance(node, Literal)
                items.append(node.value)
            if len(items) > MAX_LIST:
                raise filter_error(start.pos, f"a list holds at most {MAX_LIST} entries")
            if self.token.kind == "op" and self.token.value == ",":
                self.advance()
            elif self.token.kind == "end":
                raise self.fail(f"unclosed list: no ']' for the '[' at position {start.pos + 1}")
            elif not (self.token.kind == "op" and self.token.value == "]"):
                raise self.fail(f"expected ',' or ']' in the list, found {self.token.describe()}")
        self.advance()
        return ListLiteral(tuple(items), start.pos)

    def name(self) -> Node:
        where = self.after()
        token = self.advance()
        word = token.value
        if word.lower() == "now":
            return Now(token.pos)
        if word.lower() in KEYWORDS:
            raise filter_error(token.pos, f"expected a value {where}, found '{word}'")
        if word in FIELDS:
            if self.token.kind == "op" and self.token.value in (".", "["):
                raise self.fail(f"{word} has no sub-fields (only properties does)")
            return Field(word, token.pos)
        if word != "properties":
            known = ", ".join([*sorted(FIELDS), "now", "properties.<key>"])
            close = difflib.get_close_matches(word, [*FIELDS, "properties"], n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise filter_error(token.pos, f"unknown name '{word}'{hint}; known names: {known}")
        path: list[str] = []
        while self.token.kind == "op" and self.token.value in (".", "["):
            if self.advance().value == ".":
                if self.token.kind != "word":
                    raise self.fail(
                        f"expected a property name after '.', found {self.token.describe()}"
                    )
                path.append(self.advance().value)
                continue
            if self.token.kind != "string":
                raise self.fail(
                    f"expected a quoted property name after '[', found {self.token.describe()}"
                )
            path.append(self.advance().value)
            if not (self.token.kind == "op" and self.token.value == "]"):
                raise self.fail(
                    f"expected ']' after the property name, found {self.token.describe()}"
                )
            self.advance()
        if not path:
            raise filter_error(token.pos, "properties needs a key, e.g. properties.color")
        return Property(tuple(path), token.pos)


# -- the public face --------------------------------------------------------------------


@dataclass(frozen=True)
class Filter:
    """A parsed filter: test single items or whole catalog frames.

    Attributes:
        text: the expression as given.
        tree: its parse tree.
        uses_fields: whether it reads any item field (if not, it is a constant).
        uses_now: whether it reads the clock (so its result changes with time).
    """

    text: str
    tree: Node
    uses_fields: bool
    uses_now: bool
    _timeless: Condition | None  # compiled once, for filters that do not read ``now``

    def condition(self, now: float | None = None) -> Condition:
        """The compiled test ``item -> bool`` at time ``now`` (default: the current time).

        Items must hold plain Python values (see ``clean_row`` / ``frame_records``).
        Filters that read ``now`` are compiled for each time (a few microseconds), so
        ``now - 7d`` is computed once per call rather than once per item.
        """
        if self._timeless is not None:
            return self._timeless
        return compile_condition(self.tree, time.time() if now is None else now)

    def matches(self, item: Mapping[str, Any], now: float | None = None) -> bool:
        """Whether one item (a catalog row: item_id, categories, price, …) matches.

        Args:
            item: field name → value; missing fields are null.
            now: evaluation time in UTC Unix seconds (default: the current time).
        """
        return self.condition(now)(clean_row(item))

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

    def __str__(self) -> str:
        return to_text(self.tree)


def parse_expression(text: str) -> Node:
    """The parse tree of ``text``; raises :class:`ValidationError` if it is malformed."""
    if not isinstance(text, str):
        raise filter_error(0, "a filter must be text")
    if len(text) > MAX_LENGTH:
        raise filter_error(MAX_LENGTH, f"a filter is at most {MAX_LENGTH} characters")
    return _Parser(text).parse()


def parse_filter(text: str) -> Filter:
    """Parse and compile a filter expression (see the module docstring for the grammar).

    Raises:
        ValidationError: with the 1-based position and reason, and details located at
            ``["query", "filter"]``.
    """
    tree = parse_expression(text)
    nodes = walk(tree)
    uses_fields = any(isinstance(n, Field | Property) for n in nodes)
    uses_now = any(isinstance(n, Now) for n in nodes)
    timeless = None if uses_now else compile_condition(tree, 0.0)
    return Filter(text, tree, uses_fields, uses_now, timeless)


__all__ = [
    "MAX_DEPTH",
    "MAX_LENGTH",
    "MAX_LIST",
    "And",
    "Arith",
    "Compare",
    "Duration",
    "Field",
    "Filter",
    "ListLiteral",
    "Literal",
    "Not",
    "Now",
    "Or",
    "Property",
    "parse_expression",
    "parse_filter",
    "to_text",
    "tokenize",
]
