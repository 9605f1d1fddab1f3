"""The files of ``vfp new plugin``: a third-party plugin package that installs, lists and trains at once.

Each kind (``trainer``, ``loss``, ``dataloader``, ``model``, ``callback``, ``command``) adds its light
registration to ``plugin.py``, its implementation module, and its tests. The packaged experiment
uses the generated components and, for the roles no generated kind fills, vfp-il-components' public
components (its optimizer at least), so it trains whatever the selection. Templates use the
placeholders ``__DIST__`` (vfp-foo), ``__MODULE__`` (vfp_foo) and ``__ENTRY__`` (foo).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

KINDS: Final = ("trainer", "loss", "dataloader", "model", "callback", "command")
GENERATION_ORDER: Final = ("dataloader", "model", "loss", "trainer", "callback", "command")
DEFAULT_KINDS: Final = ("trainer", "loss", "dataloader", "model")
"""A complete training stack of the plugin's own; ``callback`` and ``command`` are opt-in."""


def resolve_kinds(requested: Iterable[str]) -> tuple[list[str], str | None]:
    """The kinds to generate (in generation order) and a note when one was added.

    A loss or a model is called only by a trainer, and vfp-il-components' trainers accept only their own
    loss and model types, so a plugin that brings a loss or a model gets its own trainer too: that
    way its packaged experiment trains with them.
    """
    kinds = set(requested) or set(DEFAULT_KINDS)
    note = None
    if kinds & {"loss", "model"} and "trainer" not in kinds:
        kinds.add("trainer")
        note = "added --kind trainer: a loss or a model is called by a trainer, and the packaged experiment uses it"
    return [kind for kind in GENERATION_ORDER if kind in kinds], note


@dataclass(frozen=True)
class ScaffoldNames:
    dist: str
    module: str
    entry: str

    @classmethod
    def from_distribution(cls, dist: str) -> ScaffoldNames:
        module = dist.replace("-", "_")
        return cls(dist, module, module.removeprefix("vfp_") or module)


def version_range(version: str) -> str:
    """``>=1.1,<2`` for 1.1.x; ``>=0.1,<0.2`` for 0.1.x (before 1.0 a minor release may break)."""
    parts = [int(p) if p.isdigit() else 0 for p in [*version.split("."), "0"][:2]]
    major, minor = parts
    upper = f"{major + 1}" if major >= 1 else f"0.{minor + 1}"
    return f">={major}.{minor},<{upper}"


# --- pyproject and README ---------------------------------------------------------------------------

PYPROJECT = """\
[build-system]
requires = ["hatchling>=1.20"]
build-backend = "hatchling.build"

[project]
name = "__DIST__"
version = "0.1.0"
description = "A vfp plugin"
requires-python = ">=3.11"
# vfp-core: the plugin contract this package is written against (1.x); vfp-il-components: the
# components its packaged experiment borrows (the optimizer, and whatever kind it does not provide).
dependencies = [
__DEPENDENCIES__
]

[project.optional-dependencies]
test = ["pytest>=8"]

# vfp discovers plugins through this entry-point group: no YAML ever names a module.
[project.entry-points.vfp]
__ENTRY__ = "__MODULE__.plugin"

[tool.hatch.build.targets.wheel]
packages = ["src/__MODULE__"]
"""

README = """\
# __DIST__

A vfp plugin. Install it next to vfp, then check that vfp finds it and train its packaged experiment:

```bash
pip install -e ".[test]"
vfp plugins list              # shows plugin '__ENTRY__' with its components
vfp configs list              # shows __ENTRY__/quickstart
vfp train __ENTRY__/quickstart
pytest tests                  # the plugin's own tests (they train a few steps)
```

What is where:

- `src/__MODULE__/plugin.py`: the light module named by the `vfp` entry point: the config models
  (pydantic) and the registration. It must not import torch: every `vfp` command imports it, even
  `vfp --help` (`vfp plugins list` shows its import time).
- The implementation modules (imported only when a component is built): __IMPL_MODULES__.
- `src/__MODULE__/configs/__ENTRY__/quickstart.yaml`: the packaged experiment.

Components: __COMPONENT_LIST__.
"""

# --- plugin.py fragments ------------------------------------------------------------------------------

PLUGIN_DOCSTRING = '''\
"""Registration of __DIST__'s components. Keep this module light: no torch import here.

vfp imports this module (the ``vfp`` entry point) in every command; the implementations named by
each ``ComponentSpec``'s target are imported only when a component is built.
"""
'''

CONFIG_MODELS = {
    "dataloader": '''

class ToyDataConfig(ComponentConfig):
    """Synthetic demonstrations: the action chunk is a fixed random linear map of the last state, plus noise."""

    num_samples: int = Field(512, ge=16, description="Number of (observation history, action chunk) windows.")
    state_dim: int = Field(4, ge=1)
    action_dim: int = Field(2, ge=1)
    history: int = Field(2, ge=1, description="Observation steps per sample.")
    horizon: int = Field(4, ge=1, description="Action-chunk length.")
    noise: float = Field(0.01, ge=0.0)
    batch_size: int = Field(64, ge=1)
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    seed: int = Field(0, description="Seed of the linear map and of the samples.")
''',
    "model": '''

class MlpConfig(ComponentConfig):
    """A multi-layer perceptron from ``in_dim`` to ``out_dim`` features."""

    hidden_dims: list[int] = Field(default_factory=lambda: [64, 64], description="Width of each hidden layer.")
''',
    "loss": '''

class L1LossConfig(LossConfig):
    """Mean absolute error between predicted and target action chunks, padded steps left out.

    Called as ``loss(pred, target, is_pad)``, the convention of every vfp loss: ``pred`` and ``target``
    are ``(B, H, A)``, ``is_pad`` a ``(B, H)`` boolean mask (True: a padded step), or None.
    """
''',
    "trainer": '''

class BehaviorCloningConfig(TrainerConfig):
    """Regresses the action chunk from the observation history with model ``policy`` and loss ``action``."""

    report_mae: bool = Field(True, description="Log the mean absolute error of the predicted chunks.")

    def component_use(self, experiment: ExperimentConfig) -> ComponentUse:
        """What the trainer builds, so that `vfp config validate` checks what `vfp train` would."""
        return ComponentUse(models={"policy"}, losses={"action"})
''',
    "callback": '''

class CsvLoggerConfig(CallbackConfig):
    """Append the training and evaluation metrics to a CSV file in the run directory."""

    filename: str = Field("metrics.csv", min_length=1)
''',
}

SPECS = {
    # kind: (ComponentKind member, name, config model, lazy target, description)
    "dataloader": ("DATALOADER", "__ENTRY___toy", "ToyDataConfig", "data:ToyData", "synthetic linear demonstrations"),
    "model": ("MODEL", "__ENTRY___mlp", "MlpConfig", "models:build_mlp", "multi-layer perceptron"),
    "loss": ("LOSS", "__ENTRY___l1", "L1LossConfig", "losses:L1Loss", "L1 loss with padding mask"),
    "trainer": (
        "TRAINER",
        "__ENTRY___bc",
        "BehaviorCloningConfig",
        "trainer:BehaviorCloningTrainer",
        "behavior cloning",
    ),
    "callback": ("CALLBACK", "__ENTRY___csv", "CsvLoggerConfig", "callbacks:CsvLogger", "metrics.csv logger"),
}


def _spec_source(kind: str) -> str:
    member, name, config, target, description = SPECS[kind]
    return (
        f"        ComponentSpec(\n            ComponentKind.{member},\n            {name!r},\n            {config},\n"
        f'            "__MODULE__.{target}",\n            {description!r},\n        ),'
    ).replace("'", '"')


COMPONENT_NAMES = {
    "dataloader": ("dataloader", "__ENTRY___toy"),
    "model": ("model", "__ENTRY___mlp"),
    "loss": ("loss", "__ENTRY___l1"),
    "trainer": ("trainer", "__ENTRY___bc"),
    "callback": ("callback", "__ENTRY___csv"),
}

PLUGIN_HOOKS = """

@vfp.hookimpl
def vfp_register_components() -> list[ComponentSpec]:
    return [
__SPECS__
    ]


@vfp.hookimpl
def vfp_config_dirs() -> list[Path]:
    return [Path(__file__).parent / "configs"]
"""

PLUGIN_COMMAND_HOOK = """

@vfp.hookimpl
def vfp_add_cli_commands(app: typer.Typer) -> None:
    from __MODULE__.cli import app as commands  # typer is already loaded by vfp; the commands stay light

    app.add_typer(commands, name="__ENTRY__")
"""

# --- implementation modules ---------------------------------------------------------------------------

DATA_MODULE = '''\
"""The ``__ENTRY___toy`` data loader: synthetic demonstrations held in memory (a vfp DataModule)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset
from vfp import Batch, DataInfo, FeatureInfo, NormalizationStats

from __MODULE__.plugin import ToyDataConfig

STATE = "observation.state"


def _stats(values: torch.Tensor) -> dict[str, torch.Tensor]:
    flat = values.reshape(-1, values.shape[-1])
    return {
        "mean": flat.mean(0),
        "std": flat.std(0).clamp_min(1e-6),
        "min": flat.min(0).values,
        "max": flat.max(0).values,
    }


class Windows(Dataset[Batch]):
    """Normalized windows: ``observation.state`` (history, state_dim), ``action`` (horizon, action_dim)."""

    def __init__(self, states: torch.Tensor, actions: torch.Tensor) -> None:
        self.states = states
        self.actions = actions

    def __len__(self) -> int:
        return int(self.states.shape[0])

    def __getitems__(self, indices: Sequence[int] | torch.Tensor) -> Batch:
        index = torch.as_tensor(indices, dtype=torch.long)
        states, actions = self.states[index], self.actions[index]
        return {
            STATE: states,
            f"{STATE}_is_pad": torch.zeros(states.shape[:2], dtype=torch.bool),
            "action": actions,
            "action_is_pad": torch.zeros(actions.shape[:2], dtype=torch.bool),
        }

    def __getitem__(self, index: int) -> Batch:
        return {key: value[0] for key, value in self.__getitems__([index]).items()}


def collate(items: Batch | list[Batch]) -> Batch:
    """Batches from ``__getitems__`` pass through; lists of samples are stacked."""
    if isinstance(items, dict):
        return items
    return {key: torch.stack([item[key] for item in items]) for key in items[0]}


class ToyData:
    """Built as ``ToyData(config)``; vfp calls ``setup()`` once, then reads the datasets."""

    def __init__(self, config: ToyDataConfig) -> None:
        self.config = config
        self.batch_size = config.batch_size
        self.num_workers = 0
        self._train: Windows | None = None
        self._val: Windows | None = None
        self._stats: NormalizationStats = {}

    def setup(self) -> None:
        cfg = self.config
        generator = torch.Generator().manual_seed(cfg.seed)
        weight = torch.randn(cfg.horizon * cfg.action_dim, cfg.state_dim, generator=generator)
        states = torch.randn(cfg.num_samples, cfg.history, cfg.state_dim, generator=generator)
        actions = states[:, -1] @ weight.T + cfg.noise * torch.randn(
            cfg.num_samples, cfg.horizon * cfg.action_dim, generator=generator
        )
        actions = actions.reshape(cfg.num_samples, cfg.horizon, cfg.action_dim)
        n_val = max(1, int(cfg.num_samples * cfg.val_fraction))
        self._stats = {STATE: _stats(states[n_val:]), "action": _stats(actions[n_val:])}
        states = (states - self._stats[STATE]["mean"]) / self._stats[STATE]["std"]
        actions = (actions - self._stats["action"]["mean"]) / self._stats["action"]["std"]
        self._val = Windows(states[:n_val], actions[:n_val])
        self._train = Windows(states[n_val:], actions[n_val:])

    @property
    def info(self) -> DataInfo:
        cfg = self.config
        return DataInfo(
            features={
                STATE: FeatureInfo(STATE, (cfg.state_dim,), "state"),
                "action": FeatureInfo("action", (cfg.action_dim,), "action"),
            },
            history=cfg.history,
            horizon=cfg.horizon,
        )

    @property
    def train_dataset(self) -> Dataset[Batch]:
        assert self._train is not None, "call setup() first"
        return self._train

    @property
    def val_dataset(self) -> Dataset[Batch] | None:
        return self._val

    @property
    def collate_fn(self) -> Callable[[Any], Batch]:
        return collate

    def normalization_stats(self) -> NormalizationStats:
        return self._stats
'''

MODELS_MODULE = '''\
"""The ``__ENTRY___mlp`` model: built as ``build_mlp(config, in_dim=..., out_dim=...)`` by a trainer."""

from __future__ import annotations

from torch import nn

from __MODULE__.plugin import MlpConfig


def build_mlp(config: MlpConfig, in_dim: int, out_dim: int) -> nn.Module:
    layers: list[nn.Module] = []
    width = in_dim
    for hidden in config.hidden_dims:
        layers += [nn.Linear(width, hidden), nn.SiLU()]
        width = hidden
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)
'''

LOSSES_MODULE = '''\
"""The ``__ENTRY___l1`` loss, with vfp's loss call convention ``loss(pred, target, is_pad)``."""

from __future__ import annotations

import torch
from torch import nn

from __MODULE__.plugin import L1LossConfig


class L1Loss(nn.Module):
    """Mean absolute error over the unpadded steps, already multiplied by ``config.weight``."""

    def __init__(self, config: L1LossConfig) -> None:
        super().__init__()
        self.config = config

    def forward(self, pred: torch.Tensor, target: torch.Tensor, is_pad: torch.Tensor | None = None) -> torch.Tensor:
        error = (pred - target.to(pred.dtype)).abs()  # (B, H, A)
        if is_pad is None:
            value = error.mean()
        else:
            keep = (~is_pad.bool()).to(error.dtype).unsqueeze(-1).expand_as(error)
            value = (error * keep).sum() / keep.sum().clamp_min(1.0)
        return self.config.weight * value
'''

TRAINER_MODULE = '''\
"""The ``__ENTRY___bc`` trainer: behavior cloning of action chunks from the observation history.

vfp builds it as ``BehaviorCloningTrainer(config, context)`` and owns the loop (optimizers, EMA,
checkpoints, logging); the trainer builds its model components through the context and returns the
loss terms of a batch.
"""

from __future__ import annotations

import math

import torch
from vfp import Batch
from vfp.engine import LossOutput, TrainerContext

from __MODULE__.plugin import BehaviorCloningConfig


class BehaviorCloningTrainer:
    def __init__(self, config: BehaviorCloningConfig, context: TrainerContext) -> None:
        self.config = config
        self.context = context
        info = context.info
        self.state_keys = info.keys("state")
        self.horizon, self.action_dim = info.horizon, info.action_dim
        obs_dim = info.history * sum(math.prod(info.features[key].shape) for key in self.state_keys)
        self.policy = context.build_model("policy", in_dim=obs_dim, out_dim=self.horizon * self.action_dim)
        self.action_loss = context.build_loss("action")

    def _predict(self, observation: Batch) -> torch.Tensor:
        features = torch.cat([observation[key].flatten(1) for key in self.state_keys], dim=-1)
        prediction: torch.Tensor = self.policy(features)
        return prediction.view(-1, self.horizon, self.action_dim)

    def compute_losses(self, batch: Batch) -> LossOutput:
        predicted = self._predict(batch)
        term = self.action_loss(predicted, batch["action"], batch.get("action_is_pad"))
        metrics: dict[str, float | torch.Tensor] = {}
        if self.config.report_mae:
            metrics["action_mae"] = (predicted.detach() - batch["action"]).abs().mean()
        return LossOutput({"action": term}, metrics)

    @torch.no_grad()
    def sample_actions(self, observation: Batch, steps: int | None = None) -> torch.Tensor:
        """Action chunks ``(B, horizon, action_dim)`` in the normalized space of the batches."""
        return self._predict(observation)
'''

CALLBACKS_MODULE = '''\
"""The ``__ENTRY___csv`` callback: lifecycle hooks receive ``run``, a typed, torch-free vfp.RunInfo."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path

import vfp
from vfp import RunInfo, RunStatus

from __MODULE__.plugin import CsvLoggerConfig


class CsvLogger:
    """One row per logged step: ``step, split, metric, value``."""

    def __init__(self, config: CsvLoggerConfig) -> None:
        self.config = config
        self.path: Path | None = None

    @vfp.hookimpl
    def vfp_on_train_start(self, run: RunInfo) -> None:
        if not run.is_main:
            return
        self.path = run.run_dir / self.config.filename
        if not run.resumed or not self.path.exists():
            self.path.write_text("step,split,metric,value\\n", encoding="utf-8")

    def _write(self, split: str, step: int, metrics: Mapping[str, float]) -> None:
        if self.path is None:
            return
        with self.path.open("a", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            for key, value in metrics.items():
                writer.writerow([step, split, key, float(value)])

    @vfp.hookimpl
    def vfp_on_step_end(self, run: RunInfo, step: int, metrics: Mapping[str, float]) -> None:
        self._write("train", step, metrics)

    @vfp.hookimpl
    def vfp_on_evaluation_end(self, run: RunInfo, step: int, metrics: Mapping[str, float]) -> None:
        self._write("val", step, metrics)

    @vfp.hookimpl
    def vfp_on_train_end(self, run: RunInfo, status: RunStatus) -> None:
        self.path = None
'''

CLI_MODULE = '''\
"""``vfp __ENTRY__ ...``: this plugin's subcommands (added through the ``vfp_add_cli_commands`` hook)."""

from __future__ import annotations

from importlib.metadata import version

import typer

app = typer.Typer(help="Commands of the __DIST__ plugin.", no_args_is_help=True)


@app.command()
def info() -> None:
    """Print the plugin's version and the components it registers."""
    from __MODULE__.plugin import vfp_register_components

    typer.echo(f"__DIST__ {version('__DIST__')}")
    for spec in vfp_register_components():
        typer.echo(f"{spec.kind}: {spec.name}")
'''

IMPL_MODULES = {
    "dataloader": ("data.py", DATA_MODULE),
    "model": ("models.py", MODELS_MODULE),
    "loss": ("losses.py", LOSSES_MODULE),
    "trainer": ("trainer.py", TRAINER_MODULE),
    "callback": ("callbacks.py", CALLBACKS_MODULE),
    "command": ("cli.py", CLI_MODULE),
}

# --- tests --------------------------------------------------------------------------------------------

TESTS_HEADER = '''\
"""Tests of __DIST__, run as a user runs vfp: `pip install -e ".[test]"`, then `pytest tests`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ENTRY = "__ENTRY__"
EXPERIMENT = "__ENTRY__/quickstart"


def vfp(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vfp", *args], capture_output=True, text=True, cwd=cwd, check=False)


def test_vfp_discovers_the_plugin_and_its_components() -> None:
    result = vfp("plugins", "list", "--json")
    assert result.returncode == 0, result.stderr
    plugin = {p["name"]: p for p in json.loads(result.stdout)["plugins"]}[ENTRY]
    assert plugin["status"] == "ok", plugin
    assert plugin["problems"] == [], "the light module must stay light (no torch import)"
    components = {(c["kind"], c["name"]) for c in plugin["components"]}
    assert components == __COMPONENTS__


def test_the_packaged_experiment_is_listed_and_valid() -> None:
    listed = vfp("configs", "list", "--json")
    assert EXPERIMENT in {entry["name"] for entry in json.loads(listed.stdout)}
    result = vfp("config", "validate", EXPERIMENT)
    assert result.returncode == 0, result.stderr


def test_the_packaged_experiment_trains_a_few_steps(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = vfp("train", EXPERIMENT, "--max-steps", "4", "--run-dir", str(run_dir), "logging.every=2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    logged = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [record for record in logged if record["split"] == "train"]
    assert [record["step"] for record in train] == [2, 4]
    assert all(record["loss"] is not None for record in train)
__TRAIN_CHECKS__'''

TRAIN_CHECKS = {
    "callback": """\
    rows = (run_dir / "metrics.csv").read_text().splitlines()  # written by the __ENTRY___csv callback
    assert rows[0] == "step,split,metric,value"
    assert any(row.startswith("4,train,loss,") for row in rows)
""",
}

TESTS_BY_KIND = {
    "loss": """

def test_the_loss_follows_the_call_convention_and_leaves_padding_out() -> None:
    import torch

    from __MODULE__.losses import L1Loss
    from __MODULE__.plugin import L1LossConfig

    loss = L1Loss(L1LossConfig(type="__ENTRY___l1", weight=2.0))
    pred, target = torch.zeros(1, 2, 3), torch.ones(1, 2, 3)
    target[0, 1] = 100.0  # a padded step: must not count
    is_pad = torch.tensor([[False, True]])
    assert float(loss(pred, target, is_pad)) == 2.0
""",
    "command": """

def test_the_plugin_adds_its_subcommand() -> None:
    result = vfp(ENTRY, "info")
    assert result.returncode == 0, result.stderr
    assert "__DIST__" in result.stdout
""",
}


# --- the packaged experiment --------------------------------------------------------------------------


def experiment_yaml(kinds: Sequence[str]) -> str:
    """The packaged experiment: the generated components, vfp-il-components' for the other roles."""
    own = set(kinds)
    lines = [
        "# __DIST__'s packaged experiment: `vfp train __ENTRY__/quickstart`. Copy it to a new variant with",
        "# `vfp new experiment --from __ENTRY__/quickstart DEST`.",
        "name: __ENTRY__-quickstart",
        "description: " + _description(own),
        "seed: 0",
        "device: cpu",
        "threads: 1",
    ]
    if "dataloader" in own:
        lines += ["data:", "  type: __ENTRY___toy", "  num_samples: 512", "  history: 2", "  horizon: 4"]
    else:  # vfp-il-components' synthetic avoid-the-obstacle demonstrations, written on first use
        lines += [
            "data:",
            "  type: hdf5",
            "  path: data/__ENTRY___avoid_obstacle.hdf5",
            "  generate: {task: avoid_obstacle, episodes: 20, seed: 0}",
            "  state_keys: [state]",
            "  history: 2",
            "  horizon: 8",
            "  batch_size: 64",
            "  cache: all",
        ]
    if "trainer" in own:
        loss = "__ENTRY___l1" if "loss" in own else "l2"
        arch = (
            "{type: __ENTRY___mlp, hidden_dims: [64, 64]}" if "model" in own else "{type: mlp, hidden_dims: [64, 64]}"
        )
        lines += ["model:", "  policy:", f"    arch: {arch}", "losses:", "  action:", f"    type: {loss}"]
        lines += ["trainer:", "  type: __ENTRY___bc"]
    else:  # vfp-il-components' flow-matching policy (no loss or model of this plugin: see resolve_kinds)
        lines += [
            "model:",
            "  obs_encoder:",
            "    arch: {type: obs_encoder, out_dim: 64, hidden_dims: [64], image_keys: []}",
            "  velocity:",
            "    arch: {type: mlp, hidden_dims: [64, 64], conditioning: film, time_embed_dim: 16}",
            "losses:",
            "  flow:",
            "    type: l2",
            "trainer:",
            "  type: naive_flow_matching_policy",
            "  evaluation: {episodes: 4, action_steps: 8}",
        ]
    lines += [
        "optimizers:",
        "  default: {type: adamw_cosine, lr: 1e-3}",
        "training:",
        "  max_steps: 300",
        "evaluation:",
        "  every: 0",
        "checkpointing:",
        "  every: 0",
        "  keep_last: 1",
        "logging:",
        "  every: 20",
    ]
    callbacks = ["{type: jsonl}"] + (["{type: __ENTRY___csv}"] if "callback" in own else [])
    lines.append(f"  callbacks: [{', '.join(callbacks)}]")
    return "\n".join(lines) + "\n"


def _description(own: set[str]) -> str:
    parts = {
        "trainer": "behavior cloning",
        "loss": "an L1 loss",
        "dataloader": "synthetic linear demonstrations",
        "model": "an MLP",
    }
    mine = [text for kind, text in parts.items() if kind in own]
    return "__DIST__ quickstart" + (f" ({', '.join(mine)})" if mine else "")


# --- assembly -----------------------------------------------------------------------------------------


def _fill(template: str, names: ScaffoldNames, extra: Mapping[str, str] = {}) -> str:
    text = template
    for key, value in extra.items():
        text = text.replace(key, value)
    return text.replace("__DIST__", names.dist).replace("__MODULE__", names.module).replace("__ENTRY__", names.entry)


def plugin_files(
    names: ScaffoldNames, kinds: Iterable[str], *, contract: str, core_version: str, il_version: str | None
) -> dict[str, str]:
    """Relative path -> content of every file of the scaffold."""
    chosen, _ = resolve_kinds(kinds)
    component_kinds = [kind for kind in chosen if kind in COMPONENT_NAMES]
    dependencies = [f"vfp-core{version_range(core_version)}", "torch>=2.2"]
    dependencies.append("vfp-il-components" + (version_range(il_version) if il_version else ""))

    plugin = PLUGIN_DOCSTRING + _plugin_imports(chosen, contract)
    for kind in component_kinds:
        plugin += CONFIG_MODELS[kind]
    specs = "\n".join(_spec_source(kind) for kind in component_kinds)
    plugin += PLUGIN_HOOKS.replace("__SPECS__", specs)
    if "command" in chosen:
        plugin += PLUGIN_COMMAND_HOOK

    components = {COMPONENT_NAMES[kind] for kind in component_kinds}
    expected = "".join(f'        ("{kind}", "{name}"),\n' for kind, name in sorted(components))
    tests = TESTS_HEADER.replace("__COMPONENTS__", "{\n" + expected + "    }" if components else "set()")
    tests = tests.replace("__TRAIN_CHECKS__", "".join(TRAIN_CHECKS.get(kind, "") for kind in chosen))
    for kind in chosen:
        tests += TESTS_BY_KIND.get(kind, "")

    impl_paths = [f"`{IMPL_MODULES[kind][0]}` ({kind})" for kind in chosen]
    component_list = ", ".join(f"{kind} `{name}`" for kind, name in sorted(components))
    if "command" in chosen:
        component_list += (", and " if component_list else "") + "the subcommand `vfp __ENTRY__ info`"
    files = {
        "pyproject.toml": _fill(PYPROJECT, names, {"__DEPENDENCIES__": ",\n".join(f'    "{d}"' for d in dependencies)}),
        "README.md": _fill(
            README, names, {"__IMPL_MODULES__": ", ".join(impl_paths), "__COMPONENT_LIST__": component_list or "none"}
        ),
        "src/__MODULE__/__init__.py": '"""__DIST__: a vfp plugin."""\n',
        "src/__MODULE__/plugin.py": plugin,
        "src/__MODULE__/configs/__ENTRY__/quickstart.yaml": experiment_yaml(chosen),
        "tests/test_plugin.py": tests,
    }
    for kind in chosen:
        filename, template = IMPL_MODULES[kind]
        files[f"src/__MODULE__/{filename}"] = template
    return {_fill(path, names): _fill(text, names) for path, text in files.items()}


def _plugin_imports(chosen: Sequence[str], contract: str) -> str:
    """The import block of plugin.py for the chosen kinds (only what the generated code uses)."""
    stdlib = ["from pathlib import Path"]
    type_only = []  # names used only in annotations
    if "trainer" in chosen:
        type_only.append("    from vfp.config import ExperimentConfig")
    if "command" in chosen:
        type_only.insert(0, "    import typer")
    if type_only:
        stdlib.append("from typing import TYPE_CHECKING")
    bases = ["ComponentKind", "ComponentSpec"]
    bases += ["ComponentConfig"] if any(kind in chosen for kind in ("dataloader", "model")) else []
    bases += ["CallbackConfig"] if "callback" in chosen else []
    bases += ["ComponentUse", "TrainerConfig"] if "trainer" in chosen else []
    bases += ["LossConfig"] if "loss" in chosen else []
    bases.sort()
    with_fields = any(kind in chosen for kind in ("dataloader", "model", "trainer", "callback"))
    third_party = ["import vfp", *(["from pydantic import Field"] if with_fields else [])]
    third_party.append(f"from vfp import {', '.join(bases)}")
    lines = ["", "from __future__ import annotations", "", *stdlib, "", *third_party]
    if type_only:
        lines += ["", "if TYPE_CHECKING:", *type_only]
    lines += ["", f'VFP_CONTRACT = "{contract}"']
    return "\n".join(lines) + "\n"


def write_plugin(dest: Path, files: Mapping[str, str]) -> None:
    for relative, text in files.items():
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
