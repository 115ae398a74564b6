"""The filter language's tokenizer: text → numbers, durations, strings, words, operators.

Part of :mod:`attune.engine.expressions` (which documents the grammar). Problems are raised
as :class:`SyntaxProblem` with a 0-based position; the public parse functions turn them into
a :class:`~attune.errors.ValidationError` that names the 1-based position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from attune.engine.expression_tree import DURATION_SECONDS


class SyntaxProblem(Exception):
    """Malformed expression text at 0-based ``position`` (internal; see the module doc)."""

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(f"position {position + 1}: {reason}")
        self.position = position
        self.reason = reason


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
                    raise SyntaxProblem(i, f"unexpected character {char!r}")
                raise SyntaxProblem(i, f"unexpected {char!r}: {hint}")
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
            raise SyntaxProblem(start, f"malformed number {text[start : j + 1]!r}")
        i, is_float = _digits(text, j), True
    literal = text[start:i]
    number: int | float = float(literal) if is_float else int(literal)
    out_of_range = not np.isfinite(number) if is_float else len(literal) > 300
    if out_of_range:
        raise SyntaxProblem(start, f"number {literal[:24]!r} is out of range")
    if i < len(text) and text[i] in _WORD_START:
        end = i
        while end < len(text) and text[end] in _WORD:
            end += 1
        unit, word = text[i:end], text[start:end]
        if unit not in DURATION_SECONDS:
            raise SyntaxProblem(
                start, f"bad duration {word[:24]!r}: write a number then s, m, h, d or w (e.g. 7d)"
            )
        if not np.isfinite(float(number) * DURATION_SECONDS[unit]):
            raise SyntaxProblem(start, f"duration {word[:24]!r} is out of range")
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
                raise SyntaxProblem(i, "'\\u' needs four hex digits")
            if 0xD800 <= int(code, 16) <= 0xDFFF:
                raise SyntaxProblem(i, f"'\\u{code}' is a lone surrogate, not a character")
            out.append(chr(int(code, 16)))
            i += 6
        elif not escape:
            break
        else:
            raise SyntaxProblem(i, f"unknown escape '\\{escape}' in a string")
    raise SyntaxProblem(start, f"unclosed string: no closing {quote_char} for the quote here")
