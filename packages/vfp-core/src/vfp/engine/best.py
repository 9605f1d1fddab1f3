"""Best and top-k checkpoints by an evaluation metric (``checkpointing.best``).

After a checkpoint is written at an evaluated step, :func:`update_best` ranks it by the chosen
metric among the kept best ones. A kept checkpoint is a hard link (a copy where links are not
possible) named ``best_step_XXXXXXXX.pt`` beside the step checkpoints, so keep-last-N pruning never
removes it; ``checkpoints/best.json`` records the ranking (metric, mode, and per entry step, value
and file), and ``checkpoints/best`` names the best file: what ``vfp.load_policy(RUN,
checkpoint="best")``, ``vfp export --checkpoint best`` and ``vfp eval --checkpoint best`` read.
All three files are written atomically.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

from vfp.engine.checkpoint import atomic_write

if TYPE_CHECKING:
    from vfp.config import BestCheckpointConfig

__all__ = ["BEST_POINTER", "BEST_PREFIX", "BEST_RECORD", "read_best", "update_best"]

BEST_POINTER: Final = "best"
BEST_RECORD: Final = "best.json"
BEST_PREFIX: Final = "best_"


def read_best(directory: Path) -> list[dict[str, Any]]:
    """The kept best checkpoints, best first: ``[{"step", "value", "file"}, ...]`` (``[]`` when none)."""
    try:
        data = json.loads((directory / BEST_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    entries = data.get("entries") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return []
    return [
        e
        for e in entries
        if isinstance(e, dict) and isinstance(e.get("file"), str) and (directory / e["file"]).is_file()
    ]


def _write_text(path: Path, text: str) -> None:
    def write(handle: IO[bytes]) -> None:
        handle.write(text.encode("utf-8"))

    atomic_write(path, write)


def _keep_copy(source: Path, target: Path) -> None:
    temp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    temp.unlink(missing_ok=True)
    try:
        os.link(source, temp)
    except OSError:
        shutil.copy2(source, temp)
    os.replace(temp, target)


def update_best(
    directory: Path, step: int, checkpoint: Path, metrics: Mapping[str, float], settings: BestCheckpointConfig
) -> Path | None:
    """Rank ``checkpoint`` (written at ``step``, evaluated with ``metrics``) among the best; the best file's path.

    Returns None (and changes nothing) when ``metrics`` has no finite value of the chosen metric.
    """
    value = metrics.get(settings.metric)
    if value is None or not math.isfinite(float(value)):
        return None
    sign = -1.0 if settings.mode == "max" else 1.0
    entries = [e for e in read_best(directory) if int(e["step"]) != step]
    name = f"{BEST_PREFIX}{checkpoint.name}"
    candidate = {"step": step, "value": float(value), "file": name}
    ranked = sorted([*entries, candidate], key=lambda e: (sign * float(e["value"]), int(e["step"])))
    kept, dropped = ranked[: settings.keep], ranked[settings.keep :]
    if candidate in kept:
        _keep_copy(checkpoint, directory / name)
    for entry in dropped:
        if entry is not candidate and str(entry["file"]).startswith(BEST_PREFIX):
            (directory / str(entry["file"])).unlink(missing_ok=True)
    record = {"metric": settings.metric, "mode": settings.mode, "entries": kept}
    _write_text(directory / BEST_RECORD, json.dumps(record, indent=2) + "\n")
    _write_text(directory / BEST_POINTER, f"{kept[0]['file']}\n")
    return directory / str(kept[0]["file"])
