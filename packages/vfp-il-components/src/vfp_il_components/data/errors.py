"""Errors and warnings about bad data, naming the file, episode and key involved."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar


class DataError(ValueError):
    """A dataset is missing, malformed or inconsistent with the config.

    The message starts with where the problem is (``file``, ``episode``, ``key``), then what was expected.
    ``vfp train`` and ``vfp data inspect`` print it as a one-line error and exit 2 (bad input): the CLI
    recognizes it by ``vfp_exit_code``, so ``vfp-core`` needs no import of this package.
    """

    vfp_exit_code: ClassVar[int] = 2

    def __init__(
        self, message: str, *, file: str | Path | None = None, episode: str | None = None, key: str | None = None
    ) -> None:
        self.file = None if file is None else str(file)
        self.episode = episode
        self.key = key
        prefix = where(file, episode, key)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class DataWarning(UserWarning):
    """Data that loads but is probably not what was meant (a constant feature, say)."""


def where(file: str | Path | None = None, episode: str | None = None, key: str | None = None) -> str:
    """``file, episode E, key 'K'``: the prefix ``DataError`` puts before its message."""
    parts = [str(file) if file is not None else None, episode and f"episode {episode}", key and f"key {key!r}"]
    return ", ".join(part for part in parts if part)
