"""``vfp export``: a run's policy as a self-contained folder, loadable without the training data.

::

    OUT/
      model.safetensors          the policy weights (EMA or schedule-free averaged when used), "component/param"
      normalization.safetensors  normalization statistics, "feature/stat" (mean, std, min, max)
      config.yaml                the resolved config of the run
      policy.json                format, features, history, horizon, action steps, fps, contract version,
                                 distributions and versions, component providers, git revision, metrics
      README.md                  a model card: what it was trained on, the command line, the metrics
      trainer_state.json         only for a trainer with state outside its models (tensors in
      trainer_state.safetensors  trainer_state.safetensors)

No pickle anywhere: safetensors, JSON and YAML. The layout can be uploaded to a model hub as is.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from vfp.policy.loading import (
    CONFIG_FILE,
    NORMALIZATION_FILE,
    POLICY_FILE,
    TRAINER_STATE_FILE,
    TRAINER_STATE_LAYOUT,
    WEIGHTS_FILE,
    PolicyLoadError,
    SavedPolicy,
    component_distributions,
    read_checkpoint,
    rebuild,
)
from vfp.policy.metadata import EXPORT_FORMAT

__all__ = ["export_policy", "flatten_state"]


def flatten_state(state: Any, prefix: str = "") -> tuple[dict[str, torch.Tensor], Any]:
    """``(tensors by path, JSON layout)`` of a nested state; the layout has ``{"__tensor__": path}`` placeholders."""
    if isinstance(state, torch.Tensor):
        return {prefix: state}, {"__tensor__": prefix}
    if isinstance(state, Mapping):
        tensors: dict[str, torch.Tensor] = {}
        layout: dict[str, Any] = {}
        for key, value in state.items():
            inner, layout[str(key)] = flatten_state(value, f"{prefix}/{key}" if prefix else str(key))
            tensors.update(inner)
        return tensors, layout
    if isinstance(state, list | tuple):
        tensors, items = {}, []
        for index, value in enumerate(state):
            inner, item = flatten_state(value, f"{prefix}/{index}")
            tensors.update(inner)
            items.append(item)
        return tensors, items
    if state is None or isinstance(state, bool | int | float | str):
        return {}, state
    raise PolicyLoadError(f"trainer state at {prefix!r} holds a {type(state).__name__}, which cannot be exported")


def _save(tensors: Mapping[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    # safetensors refuses shared or non-contiguous storage: every tensor gets its own contiguous copy
    save_file(
        {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}, str(path), {"format": EXPORT_FORMAT}
    )


def _model_card(record: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    data = config.get("data") or {}
    features = "\n".join(
        f"| `{key}` | {spec['role']} | {tuple(spec['shape'])} |" for key, spec in record["features"].items()
    )
    metrics = record.get("metrics") or {}
    metric_lines = "\n".join(f"| {key} | {value:.4g} |" for key, value in metrics.items()) or "| (none recorded) | |"
    command = record.get("command")
    distributions = ", ".join(f"{d} {v}" for d, v in record.get("distributions", {}).items()) or "not recorded"
    git = record.get("git") or {}
    task = f", task `{record['task']}`" if record.get("task") else ""
    revision = f"{git.get('commit', '?')}{' (dirty)' if git.get('dirty') else ''}" if git else "not recorded"
    return f"""---
library_name: vfp
tags: [robotics, imitation-learning, flow-matching, vfp]
---
# {config.get("name") or "vfp policy"} (trainer `{record["trainer"]}`, step {record["step"]})

{config.get("description") or ""}

A policy exported by `vfp export` ({EXPORT_FORMAT}). Load it with the plugins installed
(`{distributions}`):

```python
import vfp
policy = vfp.load_policy("path/to/this/folder")
chunk = policy.predict_chunk(observation)   # (B, {record["horizon"]}, {record["action_dim"]}), unnormalized
```

or serve it: `vfp serve path/to/this/folder` (openpi's `openpi-client` speaks to it).

## Trained on
- data: `{data.get("type", "?")}` {f"`{data['path']}`" if data.get("path") else ""}{task}
- history {record["history"]}, horizon {record["horizon"]}, action steps {record["action_steps"]}, fps {record["fps"]}
- weights: {record["weights"]} at step {record["step"]}; git revision {revision}
- command line: {f"`{' '.join(command)}`" if isinstance(command, list) and command else "not recorded"}

| feature | role | shape |
|---|---|---|
{features}

## Evaluation metrics at this step

| metric | value |
|---|---|
{metric_lines}
"""


def export_policy(
    run: str | Path, out: str | Path, *, checkpoint: str | int = "latest", overwrite: bool = False
) -> Path:
    """Write the policy of ``run`` (a run directory or checkpoint file) to the folder ``out``; returns ``out``.

    The policy is rebuilt once before anything is written, so an export that would not load fails here
    (a missing plugin, weights that do not fit). ``out`` must not exist or be empty (``overwrite``: replace
    the files it has).
    """
    import yaml

    from vfp._plugins import get_host

    out = Path(out).expanduser()
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not overwrite)):
        raise PolicyLoadError(f"{out} exists and is not an empty folder (pass overwrite to replace its files)")
    saved: SavedPolicy = read_checkpoint(Path(run), checkpoint)
    host = get_host()
    policy = rebuild(saved, device="cpu", host=host)  # proves the export will load
    metadata = policy.metadata
    record: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        **{k: v for k, v in metadata.to_dict().items() if k not in ("source",)},
        "data": {
            "history": policy.info.history,
            "horizon": policy.info.horizon,
            "task": policy.info.task,
            "features": {k: {"shape": list(f.shape), "role": f.role} for k, f in policy.info.features.items()},
            "task_options": dict(policy.info.task_options),
            "normalization": dict(metadata.normalization),
            "fps": policy.info.fps,
        },
        "components": component_distributions(saved.config, host),
        "exported_from": str(saved.source),
        "exported_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "exported_with": {r.distribution: r.version for r in host.records},
        "command": saved.environment.get("command"),
    }
    out.mkdir(parents=True, exist_ok=True)
    _save({f"{c}/{n}": t for c, state in saved.weights.items() for n, t in state.items()}, out / WEIGHTS_FILE)
    _save(
        {f"{k}/{n}": t for k, stats in saved.normalization.items() for n, t in stats.items()}, out / NORMALIZATION_FILE
    )
    for stale in (TRAINER_STATE_FILE, TRAINER_STATE_LAYOUT):
        (out / stale).unlink(missing_ok=True)
    if saved.trainer_state is not None:
        tensors, layout = flatten_state(saved.trainer_state)
        if tensors:
            _save(tensors, out / TRAINER_STATE_FILE)
        (out / TRAINER_STATE_LAYOUT).write_text(json.dumps(layout, indent=2) + "\n", encoding="utf-8")
    header = f"# resolved config of the exported policy (from {saved.source})\n"
    (out / CONFIG_FILE).write_text(header + yaml.safe_dump(dict(saved.config), sort_keys=False), encoding="utf-8")
    (out / POLICY_FILE).write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
    (out / "README.md").write_text(_model_card(record, saved.config), encoding="utf-8")
    return out
