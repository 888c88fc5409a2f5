"""Normalised tokens of one answer cell, each with where it came from (for highlighting).

Python goes through :mod:`tokenize`: every identifier that is not a keyword, a builtin or an
attribute name (what follows a ``.``: library API, which renaming one's variables does not change)
becomes ``V``; numbers become ``N``; a string, docstrings included, becomes ``S`` (its content
dropped); comments, blank lines and the layout of a line go; logical line ends (and ``;``) and
indentation changes stay, as tokens. So renamed variables, changed comments, changed spacing and
changed literals give the same stream. IPython's ``%magic`` and ``!shell`` lines are blanked
first; a cell that still does not tokenize (unfinished code) is cut into tokens by a regular
expression with the same mapping.

Written answers (Markdown) are lower-cased words; LaTeX commands and Markdown markup are words or
dropped punctuation like any other.
"""

from __future__ import annotations

import builtins
import io
import keyword
import re
import tokenize
from dataclasses import dataclass

_KEEP_NAMES = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | frozenset(
    name for name in dir(builtins) if not name.startswith("_"))
_MAGIC_LINE = re.compile(r"^[ \t]*[%!].*$", re.MULTILINE)
# The fallback: strings (triple quoted first), comments, names, numbers, operators.
_FALLBACK = re.compile(r"""
    (?P<string>[rRbBuUfF]{0,2}(?:'''[\s\S]*?(?:'''|$(?![\s\S]))|\"\"\"[\s\S]*?(?:\"\"\"|$(?![\s\S]))
        |'(?:\\.|[^'\\\n])*'?|"(?:\\.|[^"\\\n])*"?))
  | (?P<comment>\#[^\n]*)
  | (?P<name>[^\W\d]\w*)
  | (?P<number>\d[\w.]*(?:[eE][+-]?\d+)?|\.\d[\w]*)
  | (?P<newline>\n)
  | (?P<op>\*\*=?|//=?|>>=?|<<=?|->|:=|[-+*/%@&|^=<>!]=|[^\s\w])
""", re.VERBOSE)
_WORD = re.compile(r"[^\W_]+")

NEWLINE, INDENT, DEDENT = "⏎", "→", "←"


@dataclass(frozen=True)
class Token:
    """One normalised token: its text, and the span of the cell's source it stands for."""

    text: str
    cell: int  # index into the document's cells
    start: int  # character offsets into that cell's source
    end: int


def _name(text: str, previous: str) -> str:
    return text if previous == "." or text in _KEEP_NAMES else "V"


def code_tokens(source: str, cell: int) -> list[Token]:
    """The normalised tokens of a code cell."""
    blanked = _MAGIC_LINE.sub(lambda match: " " * len(match.group()), source)
    try:
        return _tokenize(blanked, cell)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return _fallback(blanked, cell)


def _tokenize(source: str, cell: int) -> list[Token]:
    line_starts = [0]
    for line in io.StringIO(source):
        line_starts.append(line_starts[-1] + len(line))

    def offset(position: tuple[int, int]) -> int:
        row, column = position
        return line_starts[row - 1] + column if row - 1 < len(line_starts) else len(source)

    tokens: list[Token] = []
    previous = ""
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        kind, text = tok.type, tok.string
        if kind == tokenize.NAME:
            out = _name(text, previous)
        elif kind == tokenize.NUMBER:
            out = "N"
        elif kind == tokenize.STRING:
            out = "S"
        elif kind == tokenize.OP:
            out = NEWLINE if text == ";" else text
        elif kind == tokenize.NEWLINE:
            out = NEWLINE
        elif kind == tokenize.INDENT:
            out = INDENT
        elif kind == tokenize.DEDENT:
            out = DEDENT
        elif kind == tokenize.ERRORTOKEN and not text.isspace():
            out = text
        else:  # comments, NL, ENCODING, ENDMARKER, stray whitespace
            continue
        if out == NEWLINE and (not tokens or tokens[-1].text == NEWLINE):
            continue
        start, end = offset(tok.start), offset(tok.end)
        if kind in (tokenize.INDENT, tokenize.DEDENT, tokenize.NEWLINE):
            end = start  # nothing visible to highlight
        tokens.append(Token(out, cell, start, end))
        previous = text
    return tokens


def _fallback(source: str, cell: int) -> list[Token]:
    tokens: list[Token] = []
    previous = ""
    for match in _FALLBACK.finditer(source):
        kind, text = match.lastgroup, match.group()
        if kind == "comment":
            continue
        out = {"string": "S", "number": "N", "newline": NEWLINE}.get(kind) or (
            _name(text, previous) if kind == "name" else (NEWLINE if text == ";" else text))
        if out == NEWLINE and (not tokens or tokens[-1].text == NEWLINE):
            continue
        tokens.append(Token(out, cell, match.start(), match.end() if out != NEWLINE else match.start()))
        previous = text
    return tokens


def text_tokens(source: str, cell: int) -> list[Token]:
    """The words of a written answer, lower-cased (prefixed, so that no word equals a code token)."""
    return [Token("w:" + match.group().lower(), cell, match.start(), match.end()) for match in _WORD.finditer(source)]
