"""``load_policy``: a run directory, a checkpoint file or an exported folder turned into a :class:`Policy`.

Weights are read only with ``torch.load(weights_only=True)`` (checkpoints) or safetensors (exported
folders): loading never unpickles objects. The trainer is rebuilt from the saved config and the
saved description of the data (features, history, horizon, normalization modes), so the training
data need not exist. The plugins that provide the trainer and its components must be installed;
when one is missing, the error names the distribution and the version the policy was trained with.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import torch

from vfp.policy.metadata import EXPORT_FORMAT, FeatureSpec, PolicyMetadata
from vfp.policy.runtime import Policy, PolicyError
from vfp.protocols import DataInfo, FeatureInfo, NormalizationStats
from vfp.run_layout import CHECKPOINTS_DIR, ENV_FILE, checkpoint_path, list_step_checkpoints, run_dir_of

if TYPE_CHECKING:
    from torch import nn

    from vfp._plugins import PluginHost
    from vfp.config import ExperimentConfig

__all__ = ["PolicyLoadError", "load_policy", "resolve_checkpoint"]

POLICY_FILE: Final = "policy.json"
CONFIG_FILE: Final = "config.yaml"
WEIGHTS_FILE: Final = "model.safetensors"
NORMALIZATION_FILE: Final = "normalization.safetensors"
TRAINER_STATE_FILE: Final = "trainer_state.safetensors"
TRAINER_STATE_LAYOUT: Final = "trainer_state.json"
BEST_POINTER: Final = "best"
CORE_DISTRIBUTION: Final = "vfp-core"


class PolicyLoadError(PolicyError):
    """A policy that cannot be loaded: a missing file or plugin, an unreadable checkpoint (the message says which)."""


@dataclass(frozen=True)
class SavedPolicy:
    """Everything a policy is rebuilt from, read from a checkpoint or an exported folder."""

    source: Path
    config: Mapping[str, Any]
    data: Mapping[str, Any] | None
    """The saved data description (``history``, ``horizon``, ``task``, ``features``, ``normalization``, ...)."""
    weights: Mapping[str, Mapping[str, torch.Tensor]]
    normalization: NormalizationStats
    trainer_state: Mapping[str, Any] | None
    step: int
    weights_kind: str
    environment: Mapping[str, Any]
    """The run's ``env.json`` (versions, git revision, command line), or the exported record."""
    metrics: Mapping[str, float]
    components: Mapping[str, str]
    """``kind/name`` of each component the config names -> the distribution that provided it (exports)."""
    payload: Mapping[str, Any] | None = None
    """The checkpoint payload itself (None for exported folders)."""


# -- finding and reading ---------------------------------------------------------------------------------
def resolve_checkpoint(location: Path, checkpoint: str | int = "latest") -> Path:
    """The checkpoint file ``checkpoint`` (``latest``, ``best`` or a step number) of a run, or a file itself."""
    from vfp.engine import CheckpointError, find_checkpoint

    location = location.expanduser()
    selector = str(checkpoint)
    if location.is_file():
        if selector != "latest":
            raise PolicyLoadError(f"{location} is a checkpoint file: --checkpoint {selector} needs a run directory")
        return location
    directory = location if location.name == CHECKPOINTS_DIR else location / CHECKPOINTS_DIR
    if selector == "latest":
        try:
            return find_checkpoint(location)
        except CheckpointError as exc:
            raise PolicyLoadError(str(exc)) from None
    if selector == BEST_POINTER:
        pointer = directory / BEST_POINTER
        if not pointer.is_file():
            raise PolicyLoadError(f"{location} keeps no best checkpoint (no {pointer}); use latest or a step number")
        return directory / pointer.read_text(encoding="utf-8").strip()
    if not selector.isdigit():
        raise PolicyLoadError(f"checkpoint must be latest, best or a step number, got {selector!r}")
    path = checkpoint_path(directory, int(selector))
    if not path.is_file():
        steps = ", ".join(str(step) for step, _ in list_step_checkpoints(directory)) or "none"
        raise PolicyLoadError(f"{location} has no checkpoint at step {int(selector)} (it has steps: {steps})")
    return path


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def evaluation_metrics(run_dir: Path, step: int) -> dict[str, float]:
    """The last validation record of ``metrics.jsonl`` at or before ``step`` (numbers only)."""
    if not (run_dir / "metrics.jsonl").is_file():
        return {}
    found: dict[str, Any] = {}
    for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("split") == "val" and int(record.get("step", -1)) <= step:
            found = record
    return {
        key: float(value)
        for key, value in found.items()
        if key not in ("step", "split") and isinstance(value, int | float) and not isinstance(value, bool)
    }


def read_checkpoint(location: Path, checkpoint: str | int = "latest") -> SavedPolicy:
    """A run's (or a checkpoint file's) policy as saved: config, data description, policy weights, statistics."""
    from vfp.engine import CheckpointError, load_checkpoint, policy_weights

    path = resolve_checkpoint(location, checkpoint)
    try:
        payload = load_checkpoint(path)
    except CheckpointError as exc:
        raise PolicyLoadError(str(exc)) from None
    run_dir = run_dir_of(path)
    environment = _read_json(run_dir / ENV_FILE)
    step = int(payload["step"])
    return SavedPolicy(
        source=path,
        config=payload["config"],
        data=payload.get("data_info"),
        weights=policy_weights(payload),
        normalization=payload.get("normalization") or {},
        trainer_state=payload.get("trainer"),
        step=step,
        weights_kind="ema" if payload.get("ema") else "models",
        environment=environment,
        metrics=evaluation_metrics(run_dir, step),
        components={},
        payload=payload,
    )


def unflatten_state(flat: Mapping[str, torch.Tensor], layout: Any) -> Any:
    """Rebuild a nested state from its JSON layout, where ``{"__tensor__": key}`` stands for ``flat[key]``."""
    if isinstance(layout, dict):
        if set(layout) == {"__tensor__"}:
            return flat[layout["__tensor__"]]
        return {key: unflatten_state(flat, value) for key, value in layout.items()}
    if isinstance(layout, list):
        return [unflatten_state(flat, value) for value in layout]
    return layout


def read_export(folder: Path) -> SavedPolicy:
    """An exported policy folder (``vfp export``), read with safetensors and JSON/YAML only."""
    import yaml
    from safetensors.torch import load_file

    record = _read_json(folder / POLICY_FILE)
    if record.get("format") != EXPORT_FORMAT:
        raise PolicyLoadError(
            f"{folder / POLICY_FILE} is not a vfp policy "
            f"(expected format {EXPORT_FORMAT!r}, got {record.get('format')!r})"
        )
    for name in (CONFIG_FILE, WEIGHTS_FILE, NORMALIZATION_FILE):
        if not (folder / name).is_file():
            raise PolicyLoadError(f"the exported policy {folder} lacks {name}")
    config = yaml.safe_load((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    weights: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in load_file(str(folder / WEIGHTS_FILE)).items():
        component, _, name = key.partition("/")
        weights.setdefault(component, {})[name] = tensor
    normalization: NormalizationStats = {}
    for key, tensor in load_file(str(folder / NORMALIZATION_FILE)).items():
        feature, _, stat = key.rpartition("/")
        normalization.setdefault(feature, {})[stat] = tensor
    trainer_state = None
    if (folder / TRAINER_STATE_LAYOUT).is_file():
        flat = load_file(str(folder / TRAINER_STATE_FILE)) if (folder / TRAINER_STATE_FILE).is_file() else {}
        trainer_state = unflatten_state(flat, json.loads((folder / TRAINER_STATE_LAYOUT).read_text(encoding="utf-8")))
    return SavedPolicy(
        source=folder,
        config=config,
        data=record.get("data"),
        weights=weights,
        normalization=normalization,
        trainer_state=trainer_state,
        step=int(record.get("step", 0)),
        weights_kind=str(record.get("weights", "models")),
        environment={"plugins": [{"distribution": d, "version": v} for d, v in record.get("distributions", {}).items()]}
        | {"git": record.get("git")},
        metrics=dict(record.get("metrics") or {}),
        components=dict(record.get("components") or {}),
    )


def read_saved(path: Path, checkpoint: str | int = "latest") -> SavedPolicy:
    """An exported folder (it holds ``policy.json``), else a run directory or a checkpoint file."""
    path = Path(path).expanduser()
    if path.is_dir() and (path / POLICY_FILE).is_file():
        if str(checkpoint) != "latest":
            raise PolicyLoadError(f"{path} is an exported policy: it holds one checkpoint (no --checkpoint choice)")
        return read_export(path)
    if not path.exists():
        raise PolicyLoadError(
            f"{path} does not exist (expected a run directory, a checkpoint file or an exported policy)"
        )
    return read_checkpoint(path, checkpoint)


# -- plugins ----------------------------------------------------------------------------------------------
def used_components(config: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """``(kind, name, where)`` of every component a saved config names (data, models, losses, optimizers, trainer)."""
    found: list[tuple[str, str, str]] = []

    def add(kind: str, section: Any, where: str) -> None:
        if isinstance(section, Mapping) and isinstance(section.get("type"), str):
            found.append((kind, section["type"], where))

    add("trainer", config.get("trainer"), "trainer")
    add("dataloader", config.get("data"), "data")
    for name, part in (config.get("model") or {}).items():
        add("model", (part or {}).get("arch"), f"model.{name}.arch")
    for name, section in (config.get("losses") or {}).items():
        add("loss", section, f"losses.{name}")
    for name, section in (config.get("optimizers") or {}).items():
        add("optimizer", section, f"optimizers.{name}")
    return found


def component_distributions(config: Mapping[str, Any], host: PluginHost) -> dict[str, str]:
    """``kind/name`` -> the installed distribution that provides it (for ``policy.json``)."""
    registry = host.registry
    out: dict[str, str] = {}
    for kind, name, _ in used_components(config):
        if (kind, name) in registry:
            out[f"{kind}/{name}"] = registry.get(kind, name).distribution
    return out


def _trained_with(saved: SavedPolicy) -> dict[str, str]:
    plugins = saved.environment.get("plugins") or []
    return {
        str(p["distribution"]): str(p["version"])
        for p in plugins
        if isinstance(p, Mapping) and "distribution" in p and "version" in p
    }


def check_plugins(saved: SavedPolicy, host: PluginHost) -> None:
    """Every component the saved config names must be installed; otherwise name what to install."""
    registry = host.registry
    versions = _trained_with(saved)
    problems: list[str] = []
    for kind, name, where in used_components(saved.config):
        if (kind, name) in registry:
            continue
        distribution = saved.components.get(f"{kind}/{name}")
        if distribution is not None:
            version = versions.get(distribution)
            hint = f"pip install '{distribution}=={version}'" if version else f"pip install {distribution}"
            problems.append(
                f"{where}: {kind} {name!r} is provided by {distribution} {version or ''}".rstrip() + f" ({hint})"
            )
        else:
            candidates = ", ".join(f"{d} {v}" for d, v in versions.items() if d != CORE_DISTRIBUTION)
            trained = f"; the policy was trained with {candidates}" if candidates else ""
            problems.append(f"{where}: {kind} {name!r} is not provided by any installed plugin{trained}")
    if problems:
        raise PolicyLoadError(
            f"{saved.source}: the plugins this policy needs are not installed:\n  " + "\n  ".join(problems)
        )


# -- rebuilding ------------------------------------------------------------------------------------------
def info_from_record(record: Mapping[str, Any]) -> DataInfo:
    """The data description saved with a checkpoint (``data_info``) or an export (``policy.json``'s ``data``)."""
    features = {
        key: FeatureInfo(key, tuple(int(n) for n in entry["shape"]), str(entry["role"]))
        for key, entry in record["features"].items()
    }
    fps = record.get("fps")
    return DataInfo(
        features=features,
        history=int(record["history"]),
        horizon=int(record["horizon"]),
        task=record.get("task"),
        task_options=dict(record.get("task_options") or {}),
        normalization={str(k): str(v) for k, v in (record.get("normalization") or {}).items()},
        fps=float(fps) if isinstance(fps, int | float) else None,
        train_episodes=record.get("train_episodes"),
        val_episodes=record.get("val_episodes"),
    )


def normalization_modes(info: DataInfo, stats: NormalizationStats) -> dict[str, str]:
    """The mode of each low-dimensional key: as the data module recorded it, else mean_std when it has statistics."""
    return {
        key: str(info.normalization.get(key, "mean_std" if key in stats else "none"))
        for key, feature in info.features.items()
        if feature.role != "image"
    }


def resolve_device(requested: str) -> torch.device:
    """``auto``: CUDA when available, else the CPU; an unavailable device is an error."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PolicyLoadError(f"device {requested!r} was requested but CUDA is not available (use cpu or auto)")
    return device


def _build_trainer(
    config: ExperimentConfig, info: DataInfo, stats: NormalizationStats, host: PluginHost, device: torch.device
) -> tuple[Any, nn.ModuleDict]:
    """The trainer with its model components, built from the config and the data description (no data)."""
    from vfp.components import ComponentKind
    from vfp.config import ConfigError
    from vfp.engine import TrainerContext
    from vfp.engine.building import ComponentBuildError, build_loss, build_model_component

    registry = host.registry
    config_file = "<saved policy config>"

    def build_model(name: str, dims: dict[str, Any]) -> nn.Module:
        part = config.model.get(name)
        if part is None:
            raise PolicyLoadError(
                f"trainer {config.trainer.type!r} needs model component {name!r}, absent from the config"
            )
        part = part.model_copy(update={"init_from": None})  # the saved weights replace any initial ones
        return build_model_component(name, part, registry, dims, device=device, config_file=config_file)

    def make_loss(name: str) -> nn.Module:
        if name not in config.losses:
            raise PolicyLoadError(f"trainer {config.trainer.type!r} needs loss {name!r}, absent from the config")
        return build_loss(name, config, registry, device)

    context = TrainerContext(
        config=config,
        info=info,
        normalization_stats={k: {n: v.to(device) for n, v in e.items()} for k, e in stats.items()},
        device=device,
        build_model_fn=build_model,
        build_loss_fn=make_loss,
    )
    try:
        with torch.random.fork_rng(devices=[]):  # building initializes weights: leave the caller's random stream alone
            trainer = registry.load(ComponentKind.TRAINER, config.trainer.type)(config.trainer, context)
    except (ComponentBuildError, ConfigError) as exc:
        raise PolicyLoadError(f"cannot rebuild trainer {config.trainer.type!r} from the saved config: {exc}") from exc
    return trainer, context.models


def _legacy_build(
    saved: SavedPolicy, config: ExperimentConfig, host: PluginHost, device: torch.device
) -> tuple[Any, nn.ModuleDict, DataInfo]:
    """Checkpoints written before the data description recorded its normalization modes: rebuild with the data."""
    from vfp.engine.session import build_trainer_for_evaluation

    assert saved.payload is not None
    config = config.model_copy(update={"device": str(device)})
    try:
        with torch.random.fork_rng(devices=[]):
            built = build_trainer_for_evaluation(config, saved.payload, host, config_file=str(saved.source))
    except (OSError, ValueError, RuntimeError) as exc:
        raise PolicyLoadError(
            f"{saved.source} predates data-free loading (its data description has no normalization record), so "
            f"the training data is needed to load it, and building it failed: {exc}. "
            "Re-export it on the machine that has the data: vfp export RUN OUT"
        ) from exc
    return built.trainer, built.models, built.data.info


def _option(section: object, *names: str) -> Any:
    for name in names:
        section = getattr(section, name, None)
    return section


def rebuild(
    saved: SavedPolicy,
    *,
    device: str = "auto",
    steps: int | None = None,
    action_steps: int | None = None,
    seed: int | None = None,
    temporal_ensemble: float | None = None,
    host: PluginHost | None = None,
) -> Policy:
    """Build the :class:`Policy` of a saved policy (see :func:`load_policy`)."""
    from vfp import CONTRACT_VERSION
    from vfp._plugins import get_host
    from vfp.config import ConfigError, validate_data

    host = host or get_host()
    check_plugins(saved, host)
    config_data = dict(saved.config)
    config_data["logging"] = {**(config_data.get("logging") or {}), "callbacks": []}  # loggers play no part here
    try:
        config = validate_data(config_data, host.registry, f"{saved.source} (saved config)")
    except ConfigError as exc:
        raise PolicyLoadError(
            f"the config saved with {saved.source} is not valid with the installed plugins:\n{exc}"
        ) from None
    resolved = resolve_device(device)
    record = saved.data
    if record is not None and "normalization" in record:
        info = info_from_record(record)
        trainer, models = _build_trainer(config, info, saved.normalization, host, resolved)
    else:
        trainer, models, info = _legacy_build(saved, config, host, resolved)
    unknown = sorted(set(saved.weights) - set(models))
    if unknown:
        raise PolicyLoadError(f"{saved.source} holds weights for {', '.join(unknown)}, which the trainer did not build")
    for name, module in models.items():
        if name not in saved.weights:
            raise PolicyLoadError(f"{saved.source} holds no weights for model component {name!r}")
        try:
            module.load_state_dict(dict(saved.weights[name]))
        except RuntimeError as exc:
            raise PolicyLoadError(
                f"{saved.source}: the weights of {name!r} do not fit the rebuilt model: {exc}"
            ) from None
    models.eval()
    if saved.trainer_state is not None and hasattr(trainer, "load_state_dict"):
        trainer.load_state_dict(saved.trainer_state)
    horizon = info.horizon
    default_steps = config.evaluation.action_steps or _option(config.trainer, "evaluation", "action_steps")
    chosen_steps = action_steps if action_steps is not None else (default_steps or horizon)
    if not 1 <= chosen_steps <= horizon:
        raise PolicyLoadError(f"action_steps must be between 1 and the horizon {horizon}, got {chosen_steps}")
    fps = info.fps
    integration = _option(config.trainer, "flow", "num_steps")
    metadata = PolicyMetadata(
        trainer=config.trainer.type,
        features={key: FeatureSpec(tuple(f.shape), f.role) for key, f in info.features.items()},
        history=info.history,
        horizon=horizon,
        action_steps=int(chosen_steps),
        fps=float(fps) if isinstance(fps, int | float) else None,
        step=saved.step,
        weights=saved.weights_kind,
        normalization=normalization_modes(info, saved.normalization),
        integration_steps=int(integration) if isinstance(integration, int) else None,
        task=info.task,
        contract_version=str(CONTRACT_VERSION),
        distributions=_trained_with(saved),
        git=saved.environment.get("git"),
        metrics=dict(saved.metrics),
        source=str(saved.source),
    )
    return Policy(
        trainer,
        info=info,
        normalization_stats=saved.normalization,
        metadata=metadata,
        device=resolved,
        precision=config.precision,
        steps=steps,
        seed=seed,
        temporal_ensemble=temporal_ensemble,
    )


def load_policy(
    path: str | Path,
    *,
    device: str = "auto",
    steps: int | None = None,
    action_steps: int | None = None,
    seed: int | None = None,
    checkpoint: str | int = "latest",
    temporal_ensemble: float | None = None,
) -> Policy:
    """Load a trained policy from a run directory, a checkpoint file or an exported folder.

    ``checkpoint`` picks a run's ``latest`` (default), ``best`` or a step's checkpoint. ``steps``:
    default integration steps (None: the trainer's). ``action_steps``: actions of each chunk that
    :meth:`Policy.act` plays (None: the experiment's ``evaluation.action_steps``, else the trainer's, else the
    horizon).
    ``seed``: seeds the policy's own generator, so a sequence of calls is reproducible.
    ``temporal_ensemble``: ACT's coefficient ``m`` for temporal ensembling in :meth:`Policy.act`.
    """
    saved = read_saved(Path(path), checkpoint)
    return rebuild(
        saved,
        device=device,
        steps=steps,
        action_steps=action_steps,
        seed=seed,
        temporal_ensemble=temporal_ensemble,
    )
