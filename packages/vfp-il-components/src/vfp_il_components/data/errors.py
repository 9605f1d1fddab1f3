"""Errors about bad data, naming the file, episode and key involved."""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """A dataset is missing, malformed or inconsistent with the config.

    The message starts with where the problem is (``file``, ``episode``, ``key``), then what was expected.
    """

    def __init__(
        self, message: str, *, file: str | Path | None = None, episode: str | None = None, key: str | None = None
    ) -> None:
        self.file = None if file is None else str(file)
        self.episode = episode
        self.key = key
        where = [part for part in (self.file, episode and f"episode {episode}", key and f"key {key!r}") if part]
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
