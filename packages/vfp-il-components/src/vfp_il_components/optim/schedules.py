"""Learning-rate schedule shapes, as pure functions of the step (no optimizer state)."""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = ["warmup_cosine", "warmup_cosine_factor"]


def warmup_cosine_factor(
    step: int, *, warmup_steps: int, total_steps: int, start_factor: float, end_factor: float
) -> float:
    """Factor of the peak rate at ``step``: linear from ``start_factor`` (step 0) to 1 (step ``warmup_steps``),
    then a half cosine down to ``end_factor`` at ``total_steps``, and ``end_factor`` after that."""
    if step < warmup_steps:
        return start_factor + (1.0 - start_factor) * step / warmup_steps
    decay_steps = total_steps - warmup_steps
    progress = 1.0 if decay_steps <= 0 else min(1.0, (step - warmup_steps) / decay_steps)
    return end_factor + (1.0 - end_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine(
    *, warmup_steps: int, total_steps: int, start_factor: float, end_factor: float
) -> Callable[[int], float]:
    """``warmup_cosine_factor`` with its settings bound, for ``torch.optim.lr_scheduler.LambdaLR``.

    A plain closure on purpose: LambdaLR saves the ``__dict__`` of callable objects in its state, which
    would let a checkpoint's old schedule override the config when a run is resumed with more steps.
    """

    def factor(step: int) -> float:
        return warmup_cosine_factor(
            step, warmup_steps=warmup_steps, total_steps=total_steps, start_factor=start_factor, end_factor=end_factor
        )

    return factor
