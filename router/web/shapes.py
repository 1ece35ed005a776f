"""Pages rendered once per shape: Jinja2 runs with a placeholder for each per-request value, and each request
then only joins its own escaped values into the gaps. Pure.

A page's *shape* is its template context with the per-request values (names, amounts, URLs) replaced by
placeholders: which kind, which language, which rows and buttons are shown. A per-request value is always
printed as it is (``{{ value }}``) or tested for truth (``{% if value %}``) by the templates, never compared or
transformed, so Jinja2's output for the real value is exactly its output for the placeholder with the
placeholder replaced by ``escape(value)``. A falsy value is kept as it is: a page without a return URL has
another shape than a page with one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from markupsafe import Markup, escape

MARK = "\ue000"  # a private-use code point: in no template or catalog (checked when they are loaded)
SHAPES_MAX = 512  # distinct shapes are few (kinds × languages × rows × buttons × branding); a bound all the same
_PLACEHOLDERS = tuple(Markup(f"{MARK}{i}{MARK}") for i in range(64))  # noqa: S704 - digits between two marks
_PLACEHOLDER_IDS = frozenset(id(p) for p in _PLACEHOLDERS)

V = TypeVar("V")


class Frozen(dict[str, Any]):
    """A context's nested mapping that can be part of a shape; never changed once built."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(self.items()))


class Slots:
    """Takes each per-request value, keeps it escaped and hands back its placeholder."""

    __slots__ = ("values",)

    def __init__(self) -> None:
        self.values: list[str] = []

    def __call__(self, value: V) -> V:
        if not value:
            return value
        self.values.append(str(escape(value)))
        return _PLACEHOLDERS[len(self.values) - 1]  # type: ignore[return-value]


def as_is(value: V) -> V:
    """The slot function of a real context (tests, the full rendering): every value stays itself."""
    return value


@dataclass(frozen=True, slots=True)
class Skeleton:
    """A rendered page split at its placeholders: ``parts[0] values[slots[0]] parts[1] …``."""

    parts: tuple[str, ...]
    slots: tuple[int, ...]

    @classmethod
    def parse(cls, text: str) -> Skeleton:
        pieces = text.split(MARK)
        if len(pieces) % 2 == 0 or not all(p.isdigit() for p in pieces[1::2]):
            raise ValueError("a placeholder mark appears in a template's own text")
        return cls(tuple(pieces[0::2]), tuple(int(p) for p in pieces[1::2]))

    def fill(self, values: list[str]) -> str:
        out = [self.parts[0]]
        for slot, part in zip(self.slots, self.parts[1:], strict=True):
            out.append(values[slot])
            out.append(part)
        return "".join(out)


_DIRECT = Skeleton((), ())  # a shape whose own text holds a mark: rendered in full each time


class ShapeCache:
    """Skeletons by shape, each rendered on first sight by ``render``; bounded (the oldest shape goes first).
    Holds no request's values: a shape has placeholders where they were."""

    def __init__(self, render: Callable[[Mapping[str, Any]], str], maxsize: int = SHAPES_MAX) -> None:
        self._render = render
        self._maxsize = maxsize
        self._skeletons: dict[Hashable, Skeleton] = {}
        self._lock = threading.Lock()  # only a new shape takes it: pages may be rendered from threads too

    def __len__(self) -> int:
        return len(self._skeletons)

    def render(self, shaped: Mapping[str, Any], slots: Slots, real: Callable[[], Mapping[str, Any]]) -> str:
        """The page of ``shaped`` (built with ``slots``); ``real()`` gives the context without placeholders."""
        shape = tuple(shaped.items())
        skeleton = self._skeletons.get(shape)
        if skeleton is None:
            skeleton = self._new(shape, shaped)
        if skeleton is _DIRECT:
            return self._render(real())
        return skeleton.fill(slots.values)

    def _new(self, shape: Hashable, shaped: Mapping[str, Any]) -> Skeleton:
        # A mark in the shape's own text (a configured support address, say) would be read as a gap.
        skeleton = _DIRECT if _has_mark(shape) else Skeleton.parse(self._render(shaped))
        with self._lock:
            if len(self._skeletons) >= self._maxsize:
                del self._skeletons[next(iter(self._skeletons))]
            self._skeletons[shape] = skeleton
        return skeleton


def _has_mark(shape: object) -> bool:
    if isinstance(shape, str):
        return MARK in shape and id(shape) not in _PLACEHOLDER_IDS
    if isinstance(shape, dict):
        shape = tuple(shape.items())
    if isinstance(shape, tuple):
        return any(_has_mark(item) for item in shape)
    return False
