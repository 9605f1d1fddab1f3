"""Config errors that name the file, line and key path as the user wrote them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MAX_ISSUES_SHOWN = 50
"""Most problems :meth:`ConfigError.render` lists; the rest are counted (limit: problems reported)."""


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config: where (file, line, key path) and what was expected."""

    file: str
    line: int | None
    path: str | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(ValueError):
    """Every problem found in a config, reported together."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__(self.render())

    def render(self) -> str:
        count = len(self.issues)
        head = "invalid config" if count == 1 else f"invalid config ({count} problems)"
        lines = [f"  {issue}" for issue in self.issues[:MAX_ISSUES_SHOWN]]
        if count > MAX_ISSUES_SHOWN:
            lines.append(f"  ... and {count - MAX_ISSUES_SHOWN} more (limit: problems reported, {MAX_ISSUES_SHOWN})")
        return head + ":\n" + "\n".join(lines)
