"""Builders of the optimizer components: ``target(config, param_groups, total_steps) -> OptimizerBundle``."""

from __future__ import annotations

from typing import Any

import schedulefree
import torch
from torch.optim.lr_scheduler import LambdaLR, OneCycleLR

from vfp.protocols import OptimizerBundle, ParamGroups
from vfp_il_components.optim.groups import configure_groups
from vfp_il_components.optim.schedules import warmup_cosine
from vfp_il_components.optim.specs import AdamWCosineConfig, OneCycleConfig, ScheduleFreeConfig

__all__ = ["CheckedOneCycleLR", "build_adamw_cosine", "build_onecycle", "build_schedule_free"]


class CheckedOneCycleLR(OneCycleLR):
    """``OneCycleLR`` that refuses a saved state whose cycle has a different length.

    torch would take the saved ``total_steps`` silently, so a run resumed with a larger
    ``training.max_steps`` would fail with "Tried to step ... times" when the old cycle ran out.
    """

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved = state_dict.get("total_steps")
        if saved is not None and saved != self.total_steps:
            raise ValueError(
                f"onecycle: the checkpoint's cycle is {saved} steps long but this run has {self.total_steps}; "
                "a one-cycle schedule cannot be stretched on resume: keep training.max_steps at "
                f"{saved}, or use adamw_cosine or schedule_free to extend runs"
            )
        super().load_state_dict(state_dict)


def _check_total_steps(name: str, total_steps: int, warmup_steps: int = 0) -> None:
    if total_steps < 1:
        raise ValueError(f"optimizer {name!r}: total_steps must be at least 1, got {total_steps}")
    if warmup_steps >= total_steps:
        raise ValueError(
            f"optimizer {name!r}: warmup_steps ({warmup_steps}) must be shorter than training ({total_steps} steps)"
        )


def build_adamw_cosine(config: AdamWCosineConfig, param_groups: ParamGroups, total_steps: int) -> OptimizerBundle:
    """AdamW and a ``LambdaLR`` going linearly from ``start_lr`` to ``lr`` then down a cosine to ``end_lr``."""
    _check_total_steps(config.type, total_steps, config.warmup_steps)
    optimizer = torch.optim.AdamW(
        configure_groups(config, param_groups),
        lr=config.lr,
        betas=config.betas,
        eps=config.eps,
        weight_decay=config.weight_decay,
    )
    schedule = warmup_cosine(
        warmup_steps=config.warmup_steps,
        total_steps=total_steps,
        start_factor=config.start_lr / config.lr,
        end_factor=config.end_lr / config.lr,
    )
    return OptimizerBundle(optimizer=optimizer, scheduler=LambdaLR(optimizer, lr_lambda=schedule))


def build_onecycle(config: OneCycleConfig, param_groups: ParamGroups, total_steps: int) -> OptimizerBundle:
    """AdamW and torch's ``OneCycleLR`` over ``total_steps``, peaking at each group's ``lr``."""
    _check_total_steps(config.type, total_steps)
    if config.pct_start * total_steps <= 1:
        raise ValueError(
            f"optimizer {config.type!r}: pct_start * total_steps = {config.pct_start * total_steps:g} must exceed 1"
        )
    groups = configure_groups(config, param_groups)
    optimizer = torch.optim.AdamW(
        groups, lr=config.lr, betas=config.betas, eps=config.eps, weight_decay=config.weight_decay
    )
    scheduler = CheckedOneCycleLR(
        optimizer,
        max_lr=[group["lr"] for group in groups],
        total_steps=total_steps,
        pct_start=config.pct_start,
        anneal_strategy=config.anneal_strategy,
        cycle_momentum=config.cycle_momentum,
        base_momentum=config.base_momentum,
        max_momentum=config.max_momentum,
        div_factor=config.div_factor,
        final_div_factor=config.final_div_factor,
        three_phase=config.three_phase,
    )
    return OptimizerBundle(optimizer=optimizer, scheduler=scheduler)


def build_schedule_free(config: ScheduleFreeConfig, param_groups: ParamGroups, total_steps: int) -> OptimizerBundle:
    """``schedulefree.AdamWScheduleFree`` or ``RAdamScheduleFree``, returned in train mode."""
    groups = configure_groups(config, param_groups)
    optimizer: torch.optim.Optimizer
    if config.variant == "adamw":
        _check_total_steps(config.type, total_steps, config.warmup_steps)
        optimizer = schedulefree.AdamWScheduleFree(
            groups,
            lr=config.lr,
            betas=config.betas,
            eps=config.eps,
            weight_decay=config.weight_decay,
            warmup_steps=config.warmup_steps,
            r=config.r,
            weight_lr_power=config.weight_lr_power,
        )
    else:
        if config.warmup_steps:
            raise ValueError(f"optimizer {config.type!r}: the radam variant has no warmup; remove warmup_steps")
        _check_total_steps(config.type, total_steps)
        optimizer = schedulefree.RAdamScheduleFree(
            groups,
            lr=config.lr,
            betas=config.betas,
            eps=config.eps,
            weight_decay=config.weight_decay,
            r=config.r,
            weight_lr_power=config.weight_lr_power,
            silent_sgd_phase=config.silent_sgd_phase,
        )
    optimizer.train()  # type: ignore[attr-defined]
    return OptimizerBundle(optimizer=optimizer, scheduler=None, schedule_free=True)
