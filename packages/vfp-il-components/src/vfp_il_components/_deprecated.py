"""Old import paths that keep working for a while, each with a DeprecationWarning naming the new one.

A module that moved names away installs :func:`moved_names` as its module-level ``__getattr__``
(PEP 562): ``from old.module import Name`` still returns the object, and warns once per call site
with the import to write instead.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["moved_names"]


def moved_names(
    old_module: str, moves: Mapping[str, str], *, compatible: Mapping[str, tuple[Any, str]] | None = None
) -> Callable[[str], Any]:
    """A module ``__getattr__`` that serves ``moves`` (``name -> new module``) with a DeprecationWarning.

    ``compatible`` maps a name whose replacement behaves differently to ``(old behaviour, what changed)``:
    the old object is served, and the warning says what to change when switching.
    """
    kept = dict(compatible or {})

    def __getattr__(name: str) -> Any:
        new_module = moves.get(name)
        if new_module is None:
            raise AttributeError(f"module {old_module!r} has no attribute {name!r}")
        old, change = kept.get(name, (None, ""))
        warnings.warn(
            f"importing {name} from {old_module} is deprecated and will stop working in vfp-il-components 2.0; "
            f"use `from {new_module} import {name}`{f' ({change})' if change else ''}",
            DeprecationWarning,
            stacklevel=2,
        )
        return old if name in kept else getattr(importlib.import_module(new_module), name)

    return __getattr__
