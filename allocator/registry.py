"""Named registries: criteria, baselines and objectives each keep one, with one way to register and look up.

Example:
    >>> shapes = Registry("shape")
    >>> shapes.add("square", 4)
    >>> shapes.get("square"), shapes.names()
    (4, ('square',))
"""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from allocator.errors import InvalidInputError

T = TypeVar("T")


class Registry(Generic[T]):
    """Items of one ``kind`` by name, in registration order; a later ``add`` of a name replaces the item."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def add(self, name: str, item: T) -> None:
        """Register ``item`` under ``name``."""
        self._items[name] = item

    def decorator(self, name: str, make: Callable[[Callable], T] | None = None) -> Callable[[Callable], Callable]:
        """A decorator registering the function (or ``make(function)``) under ``name``; it returns the function."""

        def wrap(function: Callable) -> Callable:
            self.add(name, make(function) if make is not None else function)  # type: ignore[arg-type]
            return function

        return wrap

    def get(self, name: str) -> T:
        """The item ``name``.

        Raises:
            InvalidInputError: ``"<kind> '<name>' is unknown; accepted: ..."``.
        """
        try:
            return self._items[name]
        except KeyError:
            raise InvalidInputError(f"{self.kind} {name!r} is unknown; accepted: {', '.join(self._items)}") from None

    def names(self) -> tuple[str, ...]:
        """Registered names, in registration order."""
        return tuple(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)
