"""Lazy package exports, so `python -m imagen_demo --help` answers before torch and diffusers are imported."""

from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_exports(namespace: dict[str, Any], exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's (__getattr__, __dir__) pair: `name` is imported from `exports[name]` (a relative module) on first use.

    `namespace` is the package's globals(); each value is stored there, so later look-ups skip __getattr__.
    """
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name], package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
