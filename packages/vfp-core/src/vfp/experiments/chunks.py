"""Sampled action chunks against the demonstrations' (matplotlib, the ``plot`` extra; imports torch).

``vfp plot RUN --chunks`` loads the run's policy with :func:`vfp.load_policy`, takes windows of the
run's own data (the validation split when there is one), and draws, for a few observations, the chunks
the policy samples next to the chunk the demonstration took there, over every demonstrated chunk of
those windows in grey (the modes the policy should cover):

- two-dimensional actions (the synthetic tasks: a target position per step) are drawn as paths in
  the plane, one panel per observation;
- other actions as each action dimension over the chunk's steps, one panel per dimension, for the
  first observation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.figure import Figure

__all__ = ["ChunkSamples", "chunk_figure", "plot_chunks", "sample_chunks"]

BACKGROUND = 64
"""Windows whose demonstrated chunks are drawn in grey behind the samples."""


@dataclass(frozen=True)
class ChunkSamples:
    """Chunks in dataset units: ``demos`` (M, H, A) of M windows, ``samples`` (N, K, H, A) for the first N."""

    demos: np.ndarray
    samples: np.ndarray
    run: str
    steps: int | None


def sample_chunks(
    run_dir: Path, *, observations: int = 4, samples: int = 16, steps: int | None = None, seed: int = 0
) -> ChunkSamples:
    """Sample ``samples`` chunks for ``observations`` windows of the run's data (evenly spread over it)."""
    import torch

    from vfp._plugins import get_host
    from vfp.config import load_experiment
    from vfp.engine.building import build_data_module
    from vfp.policy import load_policy

    policy = load_policy(run_dir, seed=seed)
    config = load_experiment(run_dir / "config.yaml").config
    data = build_data_module(config, get_host().registry)
    dataset = data.val_dataset if data.val_dataset is not None and len(data.val_dataset) else data.train_dataset  # type: ignore[arg-type]
    size = len(dataset)  # type: ignore[arg-type]
    count = max(1, min(observations, size))
    spread = torch.unique(torch.linspace(0, size - 1, min(size, max(count, BACKGROUND))).round().long())
    chosen = spread[torch.unique(torch.linspace(0, len(spread) - 1, count).round().long())]
    indices = torch.cat([chosen, spread[~torch.isin(spread, chosen)]])
    getitems = getattr(dataset, "__getitems__", None)
    items = getitems(indices) if getitems is not None else [dataset[i] for i in indices.tolist()]
    batch = data.collate_fn(items)
    count = len(chosen)
    observation = {k: v[:count].to(policy.device) for k, v in batch.items() if k.startswith("observation.")}
    repeated = {k: v.repeat_interleave(samples, dim=0) for k, v in observation.items()}
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        sampled = policy.trainer.sample_actions(repeated, steps or policy.steps, generator=generator)
    chunks = policy.unnormalize_actions(sampled).cpu().reshape(count, samples, policy.horizon, -1)
    demos = policy.unnormalize_actions(batch["action"].to(policy.device)).cpu()
    return ChunkSamples(demos.numpy(), chunks.numpy(), run_dir.name, steps or policy.steps)


def chunk_figure(chunks: ChunkSamples) -> Figure:
    """The figure described in the module docstring."""
    from matplotlib.figure import Figure

    count, _, horizon, action_dim = chunks.samples.shape
    planar = action_dim == 2
    panels = count if planar else min(action_dim, 4)
    figure = Figure(figsize=(3.4 * panels, 3.4), layout="constrained")
    axes = figure.subplots(1, panels, squeeze=False)[0]
    steps = f", {chunks.steps} integration steps" if chunks.steps else ", the trainer's default integration steps"
    figure.suptitle(f"{chunks.run}: sampled chunks (blue) vs the demonstration (black){steps}", fontsize=10)
    for p, ax in enumerate(axes):
        if planar:
            for demo in chunks.demos:
                ax.plot(demo[:, 0], demo[:, 1], color="0.8", linewidth=1)
            for sample in chunks.samples[p]:
                ax.plot(sample[:, 0], sample[:, 1], color="tab:blue", alpha=0.45, linewidth=1)
            ax.plot(chunks.demos[p, :, 0], chunks.demos[p, :, 1], color="black", linewidth=2)
            ax.plot(*chunks.demos[p, 0], "o", color="black", markersize=4)
            ax.set_title(f"observation {p + 1}", fontsize=9)
            ax.set_xlabel("action[0]")
            ax.set_ylabel("action[1]")
            ax.set_aspect("equal", adjustable="datalim")
        else:
            t = range(horizon)
            for demo in chunks.demos:
                ax.plot(t, demo[:, p], color="0.8", linewidth=1)
            for sample in chunks.samples[0]:
                ax.plot(t, sample[:, p], color="tab:blue", alpha=0.45, linewidth=1)
            ax.plot(t, chunks.demos[0, :, p], color="black", linewidth=2)
            ax.set_title(f"action[{p}], observation 1", fontsize=9)
            ax.set_xlabel("chunk step")
        ax.grid(alpha=0.3)
    return figure


def plot_chunks(run_dir: Path, output: Path, **options: Any) -> Path:
    """Write :func:`chunk_figure` of ``run_dir`` to ``output``."""
    output.parent.mkdir(parents=True, exist_ok=True)
    chunk_figure(sample_chunks(run_dir, **options)).savefig(output, dpi=120)
    return output
