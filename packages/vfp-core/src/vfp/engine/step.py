"""One optimizer step, and the training values summed between logging steps.

:class:`OptimizerStep` runs ``grad_accum_steps`` micro-batches (forward under autocast, backward; DDP
syncs only on the last), unscales, clips, checks that the loss and gradient are finite (agreeing
across processes, together with the stop flag), then steps every optimizer and scheduler.
"""

from __future__ import annotations

import contextlib
import functools
import math
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from vfp.engine.distributed import DistributedEnv
from vfp.engine.options import NonFiniteLossError
from vfp.engine.runtime import autocast
from vfp.engine.sampler import BatchStream
from vfp.engine.signals import StopRequest
from vfp.engine.state import TrainState
from vfp.protocols import Batch, OptimizerBundle

__all__ = ["Accumulator", "OptimizerStep", "checked_output", "training_metrics"]

_NO_CONTEXT = contextlib.nullcontext()


@dataclass
class Accumulator:
    """Running sums of the training values since the last logging step.

    Tensors stay on the device and are read only when logging (no sync per step); they are summed
    in place, so nothing the trainer returned is kept alive from one step to the next.
    """

    terms: dict[str, torch.Tensor] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    grad_norm: torch.Tensor | None = None
    micro_batches: int = 0
    steps: int = 0
    started: float = field(default_factory=time.perf_counter)

    @staticmethod
    def add(sums: dict[str, Any], name: str, value: Any) -> None:
        previous = sums.get(name)
        if isinstance(value, torch.Tensor):
            value = value.detach()
            if isinstance(previous, torch.Tensor):
                previous.add_(value)
            else:
                sums[name] = value.float().clone() + (previous or 0.0)
        else:
            sums[name] = (previous if previous is not None else 0.0) + float(value)


def checked_output(output: Any, trainer_type: str) -> tuple[Mapping[str, torch.Tensor], Mapping[str, Any]]:
    """``compute_losses``'s output, checked once: ``(terms, metrics)`` with scalar terms that require grad."""
    if not (isinstance(output, tuple) and len(output) == 2 and isinstance(output[0], Mapping)):
        raise TypeError(
            f"trainer {trainer_type!r}: compute_losses must return (terms, metrics), got {type(output).__name__}"
        )
    terms, metrics = output
    if not terms:
        raise TypeError(f"trainer {trainer_type!r}: compute_losses returned no loss terms")
    for name, term in terms.items():
        if not (isinstance(term, torch.Tensor) and term.ndim == 0 and term.requires_grad):
            raise TypeError(
                f"trainer {trainer_type!r}: loss term {name!r} must be a scalar tensor that requires grad, "
                f"got {type(term).__name__} {tuple(getattr(term, 'shape', ()))}"
            )
    return terms, metrics


class OptimizerStep:
    """Call it once per optimizer step; it advances ``state.position`` by the micro-batches it reads."""

    def __init__(
        self,
        state: TrainState,
        stream: BatchStream,
        compute_losses: Callable[[Batch], Any],
        *,
        ddp: torch.nn.parallel.DistributedDataParallel | None,
        trainer_type: str,
        accum: int,
        clip: float | None,
        precision: str,
        device: torch.device,
        dist: DistributedEnv,
        stop: StopRequest,
    ) -> None:
        self.state = state
        self.stream = stream
        self.compute_losses = compute_losses
        self.ddp = ddp
        self.trainer_type = trainer_type
        self.accum = accum
        self.clip = clip
        self.device = device
        self.dist = dist
        self.stop = stop
        self.autocast = functools.partial(autocast, device, precision)
        self.params = [
            p
            for bundle in state.optimizers.values()
            for group in bundle.optimizer.param_groups
            for p in group["params"]
        ]
        self.stop_agreed = False
        """Under data parallelism: every process agreed at the last step to stop after it."""
        self._output_checked = False

    def __call__(self, acc: Accumulator) -> None:
        state, scaler = self.state, self.state.scaler
        step_loss = self._forward_backward(0, acc)
        for micro in range(1, self.accum):
            step_loss = step_loss + self._forward_backward(micro, acc)
        if scaler is not None:
            for bundle in state.optimizers.values():
                scaler.unscale_(bundle.optimizer)
        grad_norm: torch.Tensor | None = None
        if self.clip is not None:
            grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        elif self.dist.enabled:
            grad_norm = torch.nn.utils.get_total_norm([p.grad for p in self.params if p.grad is not None])
        self._check_finite(step_loss, grad_norm, acc)
        for bundle in state.optimizers.values():
            if scaler is not None:
                scaler.step(bundle.optimizer)
            else:
                bundle.optimizer.step()
            if bundle.scheduler is not None:
                bundle.scheduler.step()
        if scaler is not None:
            scaler.update()
        for bundle in state.optimizers.values():
            bundle.optimizer.zero_grad(set_to_none=True)
        if grad_norm is not None:
            norm = grad_norm.detach().float()
            acc.grad_norm = norm.clone() if acc.grad_norm is None else acc.grad_norm.add_(norm)
        acc.steps += 1

    def _forward_backward(self, micro: int, acc: Accumulator) -> torch.Tensor:
        """One micro-batch: forward under autocast, the terms summed in float32, backward."""
        batch = next(self.stream)
        self.state.position += 1
        sync = self.ddp.no_sync() if self.ddp is not None and micro < self.accum - 1 else _NO_CONTEXT
        with sync:
            with self.autocast():
                output = self.compute_losses(batch)
            if not self._output_checked:
                checked_output(output, self.trainer_type)
                self._output_checked = True
            terms, metrics = output[0], output[1]
            total: torch.Tensor | None = None
            for term in terms.values():
                term = term.float()
                total = term if total is None else total + term
            assert total is not None
            # the mean over micro-batches, so the gradient does not grow with grad_accum_steps
            loss = total / self.accum if self.accum > 1 else total
            if self.state.scaler is not None:
                self.state.scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
            else:
                loss.backward()  # type: ignore[no-untyped-call]
        for name, term in terms.items():
            acc.add(acc.terms, name, term)
        for name, metric in metrics.items():
            acc.add(acc.metrics, name, metric)
        acc.micro_batches += 1
        return total.detach()

    def _check_finite(self, loss: torch.Tensor, grad_norm: torch.Tensor | None, acc: Accumulator) -> None:
        """Stop before a non-finite loss or gradient reaches the weights; agree across processes.

        One device-to-host read per step (a float, cheaper than a tensor comparison on the CPU).
        """
        check_norm = grad_norm is not None and self.state.scaler is None
        if check_norm:
            assert grad_norm is not None
            values = torch.stack([loss, grad_norm.to(loss.dtype)]).tolist()
        else:
            values = [loss.item()]
        finite = all(math.isfinite(value) for value in values)
        if self.dist.enabled:
            local = torch.tensor([float(not finite), float(self.stop.requested)], device=self.device)
            flags = self.dist.any_true(local).tolist()
            finite = flags[0] == 0
            # every process stops after the same step: decided here, not by a signal arriving later
            self.stop_agreed = flags[1] > 0
            if self.stop_agreed and self.stop.signal is None:
                self.stop.signal = signal.SIGTERM  # another process was asked to stop
        if finite:
            return
        step = self.state.step + 1
        for name, total in acc.terms.items():  # sums of finite values until this step
            value = float(total)
            if not math.isfinite(value):
                raise NonFiniteLossError(f"loss term {name!r}", step, value)
        if not math.isfinite(values[0]):
            raise NonFiniteLossError("the loss", step, values[0])
        norm = values[1] if check_norm else float("nan")
        raise NonFiniteLossError("the gradient norm (a loss term was non-finite in another process?)", step, norm)


def training_metrics(
    acc: Accumulator, *, dist: DistributedEnv, optimizers: Mapping[str, OptimizerBundle], device: torch.device
) -> dict[str, float]:
    """Means since the last logging step: loss, each term, the trainer's metrics, grad norm, lr, speed."""
    micro = max(acc.micro_batches, 1)
    names: list[str] = []
    tensors: list[torch.Tensor] = []
    plain: dict[str, float] = {}
    if acc.terms:
        names.append("loss")
        tensors.append(torch.stack(list(acc.terms.values())).sum() / micro)
    for name, total in acc.terms.items():
        names.append(name)
        tensors.append(total / micro)
    for name, total in acc.metrics.items():
        if isinstance(total, torch.Tensor):
            names.append(name)
            tensors.append((total / micro).to(device))
        else:
            plain[name] = total / micro
    if acc.grad_norm is not None:
        names.append("grad_norm")
        tensors.append(acc.grad_norm / max(acc.steps, 1))
    reduced = dist.mean(torch.stack(tensors)) if tensors else torch.zeros(0)
    metrics = dict(zip(names, reduced.tolist(), strict=True))
    metrics.update(plain)
    for bundle_name, bundle in optimizers.items():
        groups = bundle.optimizer.param_groups
        for index, group in enumerate(groups):
            suffix = "" if len(groups) == 1 else f".{group.get('name', index)}"
            metrics[f"lr/{bundle_name}{suffix}"] = float(group["lr"])
    elapsed = time.perf_counter() - acc.started
    metrics["steps_per_second"] = acc.steps / elapsed if elapsed > 0 else float("nan")
    return metrics
