"""The filter language's parser: tokens → tree, by recursive descent over a vocabulary.

Part of :mod:`attune.engine.expressions` (which documents the grammar); problems are
raised as :class:`~attune.engine.expression_tokens.SyntaxProblem`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import replace

from attune.engine.expression_tokens import SyntaxProblem, Token, tokenize
from attune.engine.expression_tree import (
    DURATION_SECONDS,
    KEYWORDS,
    And,
    Arith,
    Compare,
    Duration,
    External,
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
    Vocabulary,
    kind_of,
    number_in_text,
    to_text,
)

MAX_DEPTH = 32
MAX_LIST = 1_000
MAX_BOOST = 100

_EXAMPLE_KEYS = {
    "properties": "color",
    "traits": "region",
    "context": "device",
    "user": "region",
    "item": "created_at",
}
"""What follows each map, scope or alias name in the examples of error messages."""


class Parser:
    """Recursive descent over the token list, knowing the names ``vocabulary`` allows.

    ``what`` ("filter", "boost", "segment rule") names the text in messages; nesting is
    bounded by :data:`MAX_DEPTH`.
    """

    def __init__(self, text: str, vocabulary: Vocabulary, what: str = "filter") -> None:
        self.tokens = tokenize(text)
        self.vocabulary = vocabulary
        self.what = what
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

    def fail(self, reason: str, token: Token | None = None) -> SyntaxProblem:
        return SyntaxProblem((token or self.token).pos, reason)

    def enter(self, token: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"nested more than {MAX_DEPTH} levels deep", token)

    def parse(self) -> Node:
        """The whole text as one condition."""
        if self.token.kind == "end":
            raise SyntaxProblem(0, f"the {self.what} is empty")
        return self.rest()

    def parse_boost(self) -> tuple[float, Node]:
        """``boost <factor> if <condition>``: the factor and the condition's tree."""
        if self.token.kind == "end":
            raise SyntaxProblem(0, f"the {self.what} is empty")
        if not self.token.is_word("boost"):
            raise self.fail(
                f"a boost starts with 'boost', e.g. boost 1.5 if {self.vocabulary.example}; "
                f"found {self.token.describe()}"
            )
        self.advance()
        factor = self.factor()
        if not self.token.is_word("if"):
            raise self.fail(f"expected 'if' {self.after()}, found {self.token.describe()}")
        self.advance()
        return factor, self.rest()

    def factor(self) -> float:
        token = self.token
        negative = token.kind == "op" and token.value == "-"
        if negative and self.tokens[self.i + 1].kind in ("number", "duration"):
            raise self.fail(f"a boost factor must be above 0 and at most {MAX_BOOST}, not negative")
        if token.kind == "duration":
            raise self.fail(f"a boost factor is a plain number, not a duration: {token.describe()}")
        if token.kind != "number":
            raise self.fail(
                f"expected the boost factor (a number) {self.after()}, found {token.describe()}"
            )
        if not 0 < token.value <= MAX_BOOST:  # compared before float(): ints may be huge
            raise self.fail(
                f"a boost factor must be above 0 and at most {MAX_BOOST}, found {token.describe()}"
            )
        self.advance()
        return float(token.value)

    def rest(self) -> Node:
        """A condition running to the end of the text."""
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
            raise SyntaxProblem(
                node.pos,
                f"{subject} is {kind.value}, not a condition: "
                f"compare it (e.g. {self.vocabulary.example})",
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
            raise SyntaxProblem(
                right.pos,
                f"'{op}' needs a list or text on its right, found {kind_of(right).value}",
            )
        if op not in ("in", "not in"):
            problem = comparison_problem(op, left, right)
            if problem is not None:
                raise SyntaxProblem(token.pos, problem)
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
                raise SyntaxProblem(
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
                raise SyntaxProblem(start.pos, f"a list holds at most {MAX_LIST} entries")
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
            raise SyntaxProblem(token.pos, f"expected a value {where}, found '{word}'")
        vocabulary = self.vocabulary
        if word in vocabulary.fields or word in vocabulary.maps:
            return self.record_name(word, token)
        if word in vocabulary.scopes:
            return External(word, self.path(word, token), token.pos)
        if word == vocabulary.alias:
            return self.alias(token)
        choices = [*vocabulary.fields, *vocabulary.maps, *vocabulary.scopes]
        choices += [vocabulary.alias] if vocabulary.alias else []
        known = ", ".join(vocabulary.known_names())
        raise SyntaxProblem(
            token.pos, f"unknown name '{word}'{_hint(word, choices)}; known names: {known}"
        )

    def record_name(self, word: str, token: Token) -> Node:
        """A field (``price``) or a path into a map field (``properties.color``)."""
        if word in self.vocabulary.maps:
            return Property(self.path(word, token), word, token.pos)
        if self.token.kind == "op" and self.token.value in (".", "["):
            keyed = [*self.vocabulary.maps, *self.vocabulary.scopes]
            only = f" (only {_join(keyed)} take keys)" if keyed else ""
            raise self.fail(f"{word} has no sub-fields{only}")
        return Field(word, token.pos)

    def alias(self, token: Token) -> Node:
        """``item.<field>`` or ``item.properties.<key>``: the same as without ``item.``."""
        alias, vocabulary = token.value, self.vocabulary
        if not (self.token.kind == "op" and self.token.value == "."):
            example = _EXAMPLE_KEYS.get(alias, min(vocabulary.fields))
            raise SyntaxProblem(token.pos, f"{alias} needs a field, e.g. {alias}.{example}")
        self.advance()
        if self.token.kind != "word":
            found = self.token.describe()
            raise self.fail(f"expected a field name after '{alias}.', found {found}")
        field_token = self.advance()
        word = field_token.value
        if word in vocabulary.fields or word in vocabulary.maps:
            node = self.record_name(word, field_token)
            return replace(node, pos=token.pos)
        hint = _hint(word, [*vocabulary.fields, *vocabulary.maps])
        known = ", ".join([*sorted(vocabulary.fields), *(f"{m}.<key>" for m in vocabulary.maps)])
        raise SyntaxProblem(
            field_token.pos,
            f"unknown {vocabulary.name} field '{word}'{hint}; after '{alias}.' come: {known}",
        )

    def path(self, root: str, token: Token) -> tuple[str, ...]:
        """The keys after a map name: ``.word`` or ``["any text"]``, one or more."""
        noun = "property name" if root == "properties" else "key"
        path: list[str] = []
        while self.token.kind == "op" and self.token.value in (".", "["):
            if self.advance().value == ".":
                if self.token.kind != "word":
                    raise self.fail(f"expected a {noun} after '.', found {self.token.describe()}")
                path.append(self.advance().value)
                continue
            if self.token.kind != "string":
                raise self.fail(
                    f"expected a quoted {noun} after '[', found {self.token.describe()}"
                )
            path.append(self.advance().value)
            if not (self.token.kind == "op" and self.token.value == "]"):
                raise self.fail(f"expected ']' after the {noun}, found {self.token.describe()}")
            self.advance()
        if not path:
            example = _EXAMPLE_KEYS.get(root, "name")
            raise SyntaxProblem(token.pos, f"{root} needs a key, e.g. {root}.{example}")
        return tuple(path)


def _hint(word: str, choices: list[str]) -> str:
    """`` (did you mean 'price'?)`` when one of ``choices`` is close to ``word``."""
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _join(names: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


ORDERED_KINDS = (Kind.NUMBER, Kind.TEXT)


def comparison_problem(op: str, left: Node, right: Node) -> str | None:
    """Why ``left op right`` can never hold whatever the item, where the kinds of both
    sides are known (a field against a literal, say); None when it may hold."""
    a, b = kind_of(left), kind_of(right)
    if Kind.ANY in (a, b) or Kind.NULL in (a, b):
        return None  # only the item can tell (properties, context), or a test for absence
    if op in ("<", "<=", ">", ">=") and (a not in ORDERED_KINDS or b not in ORDERED_KINDS):
        odd = left if a not in ORDERED_KINDS else right
        return f"'{op}' orders numbers or text, and {_brief(odd)} is {kind_of(odd).value}"
    if a is b:
        return None
    hint = ""
    if Kind.NUMBER in (a, b) and Kind.TEXT in (a, b):
        # text that writes a number compares as that number: only a literal that does
        # not (a date, a word) can never match; a text field may hold digits (ids)
        text, number = (left, right) if a is Kind.TEXT else (right, left)
        if not isinstance(text, Literal) or number_in_text(str(text.value)) is not None:
            return None
        timely = isinstance(number, Field) and number.name.endswith("_at")
        if timely or isinstance(number, Now | Arith | Duration):
            hint = " (times are Unix seconds: write e.g. now - 30d, or a number)"
        else:
            hint = " (write a number)"
    return (
        f"{_brief(left)} is {a.value} and {_brief(right)} is {b.value}: "
        f"'{op}' between them is never true{hint}"
    )


def _brief(node: Node) -> str:
    text = to_text(node)
    return text if len(text) <= 24 else text[:21] + "..."
