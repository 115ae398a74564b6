"""The tree a filter expression parses into, its vocabularies, static types, canonical text.

Nodes are frozen dataclasses compared by value (the source position is carried along for
error messages but ignored by ``==``), so ``parse(to_text(tree)) == tree`` can be tested.
See :mod:`attune.engine.expressions` for the grammar.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

Scalar = str | int | float | bool | None

DURATION_SECONDS: dict[str, int] = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}
"""Duration units and their length in seconds."""

KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false", "null", "now"})
"""Reserved words (matched case-insensitively)."""

COMPARISONS = ("==", "!=", "<=", ">=", "<", ">", "in", "not in")

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_NUMBER_TEXT = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*\Z")


def number_in_text(text: str) -> float | None:
    """The number ``text`` writes ("1995", " 2.5 "), or None: text that writes a number
    compares with a number as that number (a property imported from a CSV, a
    ``context.hour``)."""
    if len(text) > 64 or not _NUMBER_TEXT.match(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


class Kind(Enum):
    """What a node evaluates to, as far as the parser can tell."""

    BOOL = "a true/false value"
    NUMBER = "a number"
    TEXT = "text"
    LIST = "a list"
    NULL = "null"
    ANY = "a value of any type"


FIELDS: dict[str, Kind] = {
    "available": Kind.BOOL,
    "categories": Kind.LIST,
    "created_at": Kind.NUMBER,
    "item_id": Kind.TEXT,
    "language": Kind.TEXT,
    "price": Kind.NUMBER,
    "regions": Kind.LIST,
    "tags": Kind.LIST,
    "title": Kind.TEXT,
}
"""Item fields a filter may name (besides ``properties.<key>``), with their kind."""

ITEM_FIELDS = FIELDS
"""The item vocabulary's fields (the same dict as :data:`FIELDS`)."""

USER_FIELDS: dict[str, Kind] = {
    "events": Kind.NUMBER,
    "first_seen_at": Kind.NUMBER,
    "last_purchase_at": Kind.NUMBER,
    "last_seen_at": Kind.NUMBER,
    "purchases": Kind.NUMBER,
    "user_id": Kind.TEXT,
}
"""User-record fields a segment rule may name (besides ``traits.<key>``, ``context.<key>``);
times are UTC Unix seconds or null."""

FIELD_KINDS: dict[str, Kind] = {**ITEM_FIELDS, **USER_FIELDS}
"""Every field of every vocabulary (their names are distinct), for :func:`kind_of`."""


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: there are two
class Vocabulary:
    """The names an expression may use, and what each means.

    Attributes:
        name: what the expression runs over ("item" or "user"), for messages.
        fields: plain fields of the record, with their kind.
        maps: fields holding a map of free keys, read with a path (``properties.color``).
        scopes: request-bound maps, not fields of the record (``context.region``): they
            parse to :class:`External` and are null until bound.
        alias: a prefix that may precede any field or map (``item.created_at``), or None.
        example: a condition over this vocabulary, shown in error messages.
    """

    name: str
    fields: Mapping[str, Kind]
    maps: tuple[str, ...]
    scopes: tuple[str, ...] = ()
    alias: str | None = None
    example: str = "price < 10"

    def known_names(self) -> list[str]:
        """The names to list in an "unknown name" message, fields first."""
        names = [*sorted(self.fields), "now"]
        names += [f"{root}.<key>" for root in (*self.maps, *self.scopes)]
        if self.alias:
            names.append(f"{self.alias}.<field>")
        return names


ITEM_VOCABULARY = Vocabulary(
    "item", ITEM_FIELDS, maps=("properties",), scopes=("context", "user"), alias="item"
)
"""Catalog filters and boost conditions: item fields, ``properties.<key>``, ``item.<field>``,
and the request-bound ``context.<key>`` (request context) and ``user.<key>`` (the
requesting user's traits)."""

USER_VOCABULARY = Vocabulary("user", USER_FIELDS, maps=("traits", "context"), example="events < 3")
"""Segment rules over a user record: its fields, ``traits.<key>`` and ``context.<key>``."""


def _pos() -> Any:
    return field(default=-1, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Literal:
    """A string, number, ``true``, ``false`` or ``null``."""

    value: Scalar
    pos: int = _pos()


@dataclass(frozen=True, slots=True)
class ListLiteral:
    """``["a", 1, null]``: literals only, no nesting."""

    items: tuple[Scalar, ...]
    pos: int = _pos()


@dataclass(frozen=True, slots=True)
class Duration:
    """``7d``: ``amount`` units of ``unit`` (s, m, h, d, w); evaluates to seconds."""

    amount: int | float
    unit: str
    pos: int = _pos()

    @property
    def seconds(self) -> int | float:
        return self.amount * DURATION_SECONDS[self.unit]


@dataclass(frozen=True, slots=True)
class Now:
    """``now``: the evaluation time, UTC Unix seconds."""

    pos: int = _pos()


@dataclass(frozen=True, slots=True)
class Field:
    """An item field such as ``price``."""

    name: str
    pos: int = _pos()


@dataclass(frozen=True, slots=True)
class Property:
    """``properties.a.b`` or ``traits["a b"]``: a path into a map field of the record.

    ``root`` is the map field read (``properties`` for items, ``traits`` or ``context`` for
    users); a missing key, or a step into something that is not a map, is null.
    """

    path: tuple[str, ...]
    root: str = "properties"
    pos: int = _pos()


@dataclass(frozen=True, slots=True)
class External:
    """``context.region`` or ``user.region`` in an item filter: a value of the request, not
    of the item. Null until ``bind_tree`` (``Filter.bind``) puts the request's value in."""

    scope: str
    path: tuple[str, ...]
    pos: int = _pos()


@dataclass(frozen=True, slots=True)
class Arith:
    """``first (+|-) term ...``: numbers and times added left to right."""

    first: Node
    rest: tuple[tuple[str, Node], ...]
    pos: int = _pos()


@dataclass(frozen=True, slots=True)
class Compare:
    """``left op right`` with ``op`` one of :data:`COMPARISONS`."""

    op: str
    left: Node
    right: Node
    pos: int = _pos()


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node
    pos: int = _pos()


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[Node, ...]
    pos: int = _pos()


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Node, ...]
    pos: int = _pos()


Node = (
    Literal
    | ListLiteral
    | Duration
    | Now
    | Field
    | Property
    | External
    | Arith
    | Compare
    | Not
    | And
    | Or
)


def kind_of(node: Node) -> Kind:
    """The static kind of ``node`` (``ANY`` where only the item can tell)."""
    match node:
        case Literal(value=value):
            if value is None:
                return Kind.NULL
            if isinstance(value, bool):
                return Kind.BOOL
            return Kind.TEXT if isinstance(value, str) else Kind.NUMBER
        case ListLiteral():
            return Kind.LIST
        case Duration() | Now() | Arith():
            return Kind.NUMBER
        case Field(name=name):
            return FIELD_KINDS.get(name, Kind.ANY)
        case Compare() | Not() | And() | Or():
            return Kind.BOOL
    return Kind.ANY


def children(node: Node) -> tuple[Node, ...]:
    """The direct sub-expressions of ``node``."""
    match node:
        case Arith(first=first, rest=rest):
            return (first, *(term for _, term in rest))
        case Compare(left=left, right=right):
            return (left, right)
        case Not(operand=operand):
            return (operand,)
        case And(operands=operands) | Or(operands=operands):
            return operands
    return ()


def walk(node: Node) -> list[Node]:
    """Every node of the tree, parents before children (iterative: no recursion limit)."""
    out, stack = [], [node]
    while stack:
        current = stack.pop()
        out.append(current)
        stack.extend(reversed(children(current)))
    return out


# -- canonical text ---------------------------------------------------------------------

# binding strength: a child printed inside a parent must bind at least this tightly
_OR, _AND, _NOT, _COMPARE, _ARITH, _ATOM = range(6)


def _strength(node: Node) -> int:
    match node:
        case Or():
            return _OR
        case And():
            return _AND
        case Not():
            return _NOT
        case Compare():
            return _COMPARE
        case Arith():
            return _ARITH
    return _ATOM


def quote(text: str) -> str:
    """``text`` as a double-quoted filter string literal."""
    out = ['"']
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif char == "\r":
            out.append("\\r")
        elif ord(char) < 0x20 or 0xD800 <= ord(char) <= 0xDFFF:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def scalar_text(value: Scalar) -> str:
    """A literal value as filter text."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return quote(value)
    return repr(value)


def to_text(node: Node) -> str:
    """Canonical filter text for ``node``; parsing it gives back an equal tree."""
    match node:
        case Literal(value=value):
            return scalar_text(value)
        case ListLiteral(items=items):
            return "[" + ", ".join(scalar_text(v) for v in items) + "]"
        case Duration(amount=amount, unit=unit):
            return f"{amount!r}{unit}"
        case Now():
            return "now"
        case Field(name=name):
            return name
        case Property(path=path, root=root) | External(scope=root, path=path):
            return root + "".join(
                f".{key}" if _IDENTIFIER.match(key) else f"[{quote(key)}]" for key in path
            )
        case Arith(first=first, rest=rest):
            parts = [_child(first, _ATOM)]
            parts += [f"{op} {_child(term, _ATOM)}" for op, term in rest]
            return " ".join(parts)
        case Compare(op=op, left=left, right=right):
            return f"{_child(left, _ARITH)} {op} {_child(right, _ARITH)}"
        case Not(operand=operand):
            return f"not {_child(operand, _NOT)}"
        case And(operands=operands):
            return " and ".join(_child(o, _NOT) for o in operands)
        case Or(operands=operands):
            return " or ".join(_child(o, _AND) for o in operands)
    raise TypeError(f"not a filter node: {node!r}")


def _child(node: Node, weakest: int) -> str:
    text = to_text(node)
    return text if _strength(node) >= weakest else f"({text})"
