"""Per-worker state kept out of pickling, declared once per class instead of a `__getstate__` each.

A stage or backend object is built on the driver and shipped (pickled) to every Ray worker, which
then loads its own models in `setup()`. Attributes that hold such per-worker state (a loaded
model, a detector session, a cache of decoded driver frames) are named in the class attribute
`worker_local`; they travel as a fresh empty value (None, or an empty container of the same type
for a dict / list / set cache), every other attribute travels as it is. Names add up along the
class hierarchy, so a subclass lists only its own.
"""
from __future__ import annotations

from typing import Any, ClassVar


class WorkerLocal:
    """Mixin: pickling drops the attributes named in `worker_local` (see the module docstring)."""

    worker_local: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def worker_local_names(cls) -> frozenset[str]:
        return frozenset(name for klass in cls.__mro__ for name in vars(klass).get("worker_local", ()))

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for name in self.worker_local_names() & state.keys():
            value = state[name]
            state[name] = type(value)() if isinstance(value, (dict, list, set)) else None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
