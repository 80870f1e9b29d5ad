"""A package's names imported when first asked for (PEP 562): start-up pays only for what a
command uses (issue 14). A package lists each name with the module of its own that holds it,
and re-exports the names for type checkers under ``TYPE_CHECKING``."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_dir", "lazy_names"]


def lazy_names(
    package: str, names: Mapping[str, str], namespace: dict[str, Any]
) -> Callable[[str], object]:
    """The ``__getattr__`` of ``package``: a name of ``names`` is imported from its module the
    first time it is asked for and kept in ``namespace`` (the package's globals), so that the
    next look finds it at once; any other name is an :class:`AttributeError`, as usual."""

    def __getattr__(name: str) -> object:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{module}", package), name)
        namespace[name] = value
        return value

    return __getattr__


def lazy_dir(names: Mapping[str, str], namespace: dict[str, Any]) -> Callable[[], list[str]]:
    """The ``__dir__`` of a package with :func:`lazy_names`: its names, the lazy ones
    included, as if they were imported."""

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(names))

    return __dir__
