"""Glob patterns of Apple and Android link rules: `*` (zero or more characters), `?` (exactly
one), `?*` (one or more) and, for Apple, `$(name)` substitution variables.

A pattern compiles to a tiny NFA that is simulated over the text (a Pike VM): time is
O(len(text) * len(pattern)) for any pattern, so hostile patterns such as `*a*a*a*a*b` cannot
trigger the exponential backtracking a naive regex translation risks. There is no escape syntax.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

_CHAR, _ANY, _CLASS, _STAR, _SPLIT, _JMP, _MATCH = range(7)

Instr = tuple[int, Any]  # argument: a char, a predicate, jump targets or None
Variables = tuple[tuple[str, tuple[str, ...]], ...]
_Token = tuple[int, Any]  # (_CHAR, str) | (_ANY, None) | (_CLASS, pred) | (_STAR, None) | alt


def _ascii_class(chars: str) -> Callable[[str], bool]:
    allowed = frozenset(chars)
    return allowed.__contains__


_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LOWER = _UPPER.lower()
_DIGIT = "0123456789"
# Apple's predefined single-character classes (ASCII only, per the applinks documentation).
_CLASSES: dict[str, str] = {
    "alpha": _UPPER + _LOWER,
    "upper": _UPPER,
    "lower": _LOWER,
    "alnum": _UPPER + _LOWER + _DIGIT,
    "digit": _DIGIT,
    "xdigit": _DIGIT + "ABCDEFabcdef",
}
# `$(lang)` / `$(region)` stand for Foundation's ISO code lists, which we do not ship; these
# shapes (2-3 lowercase letters; 2 uppercase letters or a 3-digit UN M.49 code) are a superset.
_SHAPES: dict[str, tuple[str, ...]] = {
    "lang": ("$(lower)$(lower)", "$(lower)$(lower)$(lower)"),
    "region": ("$(upper)$(upper)", "$(digit)$(digit)$(digit)"),
}
PREDEFINED = frozenset(_CLASSES) | frozenset(_SHAPES)


@dataclass(frozen=True)
class Glob:
    """A compiled pattern; `fullmatch` tests the whole text."""

    program: tuple[Instr, ...]
    literal: str | None  # set when the pattern has no wildcard: plain string comparison
    case_sensitive: bool

    def fullmatch(self, text: str) -> bool:
        if not self.case_sensitive:
            text = text.lower()
        if self.literal is not None:
            return text == self.literal
        return _run(self.program, text)


def compile_glob(
    pattern: str,
    variables: Mapping[str, Sequence[str]] | None = None,
    *,
    case_sensitive: bool = True,
    substitution: bool = True,
) -> Glob:
    """Compile `pattern`; `substitution=False` (Android, legacy Apple paths) keeps `$(` literal."""
    frozen: Variables = tuple(sorted((k, tuple(v)) for k, v in (variables or {}).items()))
    return _compile(pattern, frozen, case_sensitive, substitution)


def referenced_variables(pattern: str) -> list[str]:
    """Names used as `$(name)` in `pattern`, in order."""
    names: list[str] = []
    i = 0
    while (start := pattern.find("$(", i)) >= 0:
        end = pattern.find(")", start + 2)
        if end < 0:
            break
        name = pattern[start + 2 : end]
        if "$" not in name and "(" not in name:
            names.append(name)
        i = end + 1 if "$" not in name and "(" not in name else start + 2
    return names


@lru_cache(maxsize=4096)
def _compile(pattern: str, variables: Variables, case_sensitive: bool, substitution: bool) -> Glob:
    tokens = _tokens(pattern, dict(variables) if substitution else None, case_sensitive)
    if all(kind == _CHAR for kind, _ in tokens):
        literal = "".join(str(value) for _, value in tokens)
        return Glob((), literal, case_sensitive)
    program: list[Instr] = []
    _emit(tokens, program)
    program.append((_MATCH, None))
    return Glob(tuple(program), None, case_sensitive)


def _tokens(pattern: str, variables: dict[str, tuple[str, ...]] | None, case_sensitive: bool) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if variables is not None and pattern.startswith("$(", i):
            end = pattern.find(")", i + 2)
            name = pattern[i + 2 : end] if end >= 0 else ""
            expansion = _expand(name, variables, case_sensitive) if name else None
            if expansion is not None:
                tokens.append(expansion)
                i = end + 1
                continue
        if ch == "*":
            if not tokens or tokens[-1][0] != _STAR:  # `**` is `*`; keeps the NFA small
                tokens.append((_STAR, None))
        elif ch == "?":
            tokens.append((_ANY, None))
        else:
            tokens.append((_CHAR, ch if case_sensitive else ch.lower()))
        i += 1
    return tokens


def _expand(name: str, variables: dict[str, tuple[str, ...]], case_sensitive: bool) -> _Token | None:
    """The token for `$(name)`, or None when undefined (then the text stays literal)."""
    if "$" in name or "(" in name:
        return None
    if name in variables:  # custom values may hold wildcards but no further variables
        alts = [_tokens(value, None, case_sensitive) for value in variables[name]]
        return (_SPLIT, alts)
    if name in _CLASSES:
        chars = _CLASSES[name]
        if not case_sensitive:
            chars = chars.lower()
        return (_CLASS, _ascii_class(chars))
    if name in _SHAPES:
        alts = [_tokens(shape, {}, case_sensitive) for shape in _SHAPES[name]]
        return (_SPLIT, alts)
    return None


def _emit(tokens: list[_Token], program: list[Instr]) -> None:
    for kind, value in tokens:
        if kind != _SPLIT:
            program.append((kind, value))
            continue
        alternatives: list[list[_Token]] = value
        split_at = len(program)
        program.append((_SPLIT, ()))
        starts: list[int] = []
        jumps: list[int] = []
        for alt in alternatives:
            starts.append(len(program))
            _emit(alt, program)
            jumps.append(len(program))
            program.append((_JMP, 0))
        end = len(program)
        program[split_at] = (_SPLIT, tuple(starts))
        for at in jumps:
            program[at] = (_JMP, end)


def _closure(program: tuple[Instr, ...], seeds: Sequence[int]) -> set[int]:
    """States reachable without consuming input; only consuming states and MATCH are kept."""
    seen: set[int] = set()
    result: set[int] = set()
    stack = list(seeds)
    while stack:
        pc = stack.pop()
        if pc in seen:
            continue
        seen.add(pc)
        kind, arg = program[pc]
        if kind == _SPLIT:
            stack.extend(arg)
        elif kind == _JMP:
            stack.append(arg)
        else:
            result.add(pc)
            if kind == _STAR:
                stack.append(pc + 1)
    return result


def _run(program: tuple[Instr, ...], text: str) -> bool:
    states = _closure(program, [0])
    for ch in text:
        following: list[int] = []
        for pc in states:
            kind, arg = program[pc]
            if kind == _STAR:
                following.append(pc)
            elif kind == _ANY or (kind == _CHAR and arg == ch):
                following.append(pc + 1)
            elif kind == _CLASS and arg(ch):
                following.append(pc + 1)
        if not following:
            return False
        states = _closure(program, following)
    return any(program[pc][0] == _MATCH for pc in states)
