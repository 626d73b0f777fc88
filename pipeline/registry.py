"""One way to plug in a backend: a family's names, each bound lazily to "module:attribute".

Every family of pluggable parts (animators, captioners, parsers, relighters, the photo tool's
methods, evaluation's baselines) is a `Registry`: its name as params spell it (for the error),
the interface its members satisfy (an ABC, or a runtime-checkable Protocol), and its entries,
each a name bound to the class or builder function that makes it, written as a string. Nothing
is imported until a name is built: the paper's backends import torch, transformers or diffusers,
and a command that runs an offline default must not pay for them (cold start of `piq`).

An entry is a class constructed with the family's arguments, or a builder function beside its
backend that turns them into the backend's own (e.g. LivePortrait's options from AnimateParams),
annotated with the class it returns so that `product` names it without building anything.
"""
from __future__ import annotations

import importlib
import typing
from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Names of one family bound to "module:attribute" strings, imported only when used."""

    def __init__(self, family: str, interface: type[T], entries: dict[str, str]) -> None:
        self.family = family
        self.interface = interface
        self._entries = dict(entries)

    def names(self) -> tuple[str, ...]:
        """The known names, in the order they were registered."""
        return tuple(self._entries)

    def resolve(self, name: str) -> Callable[..., T]:
        """The class or builder function bound to `name`, imported now; an unknown name is a
        one-line ValueError listing the known ones."""
        if name not in self._entries:
            raise ValueError(f"unknown {self.family} {name!r} ({' | '.join(self._entries)})")
        module, _, attribute = self._entries[name].partition(":")
        return getattr(importlib.import_module(module), attribute)

    def build(self, name: str, *args: Any, **kwargs: Any) -> T:
        """The member `name` made from the family's arguments, checked against the interface."""
        made = self.resolve(name)(*args, **kwargs)
        if not isinstance(made, self.interface):
            raise TypeError(f"{self.family} {name!r} made a {type(made).__name__}, which is not a "
                            f"{self.interface.__name__}")
        return made

    def product(self, name: str) -> type:
        """The class that `name` makes, without making one: the entry itself, or its builder's
        return annotation."""
        made = self.resolve(name)
        if isinstance(made, type):
            return made
        return typing.get_type_hints(made)["return"]

    def satisfied_by(self, cls: type) -> bool:
        """Whether instances of `cls` satisfy the interface: a subclass of an ABC, or a class
        with every method of a Protocol (its data members are set by the constructor and are
        checked on the built object, in `build`)."""
        if not getattr(self.interface, "_is_protocol", False):
            return issubclass(cls, self.interface)
        methods = [n for n, v in vars(self.interface).items() if callable(v) and not n.startswith("_")]
        return all(callable(getattr(cls, n, None)) for n in methods)
