"""Exponential moving average of the model components' weights."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["WeightAverage"]


class WeightAverage:
    """An EMA of every floating-point tensor of the models' state (parameters and buffers).

    Before ``start_step`` the average is a copy of the weights; after, each update moves it by
    ``1 - decay`` towards them. Non-float buffers (counters) are copied.
    """

    def __init__(self, models: nn.ModuleDict, decay: float, start_step: int = 0) -> None:
        self.models = models
        self.decay = decay
        self.start_step = start_step
        self._names: list[tuple[str, str]] = []
        self._live_tensors: list[torch.Tensor] = []
        for component, module in models.items():
            for key, tensor in module.state_dict(keep_vars=True).items():
                self._names.append((component, key))
                self._live_tensors.append(tensor.detach())
        self.shadow = [tensor.clone() for tensor in self._live_tensors]
        self._float = [i for i, t in enumerate(self.shadow) if t.is_floating_point()]
        self._other = [i for i, t in enumerate(self.shadow) if not t.is_floating_point()]

    def _live(self) -> list[torch.Tensor]:
        return self._live_tensors

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Fold the current weights in after optimizer step ``step`` (1-based)."""
        live = self._live()
        if step <= self.start_step:
            torch._foreach_copy_(self.shadow, live)
            return
        if self._float:
            torch._foreach_lerp_(
                [self.shadow[i] for i in self._float], [live[i] for i in self._float], 1.0 - self.decay
            )
        for i in self._other:
            self.shadow[i].copy_(live[i])

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        """The averaged weights as one state dict per model component (what the policy loads)."""
        out: dict[str, dict[str, torch.Tensor]] = {component: {} for component in self.models}
        for (component, key), tensor in zip(self._names, self.shadow, strict=True):
            out[component][key] = tensor
        return out

    @torch.no_grad()
    def load_state_dict(self, state: Mapping[str, Mapping[str, torch.Tensor]]) -> None:
        for (component, key), tensor in zip(self._names, self.shadow, strict=True):
            tensor.copy_(state[component][key])

    @contextmanager
    def swapped_in(self) -> Iterator[None]:
        """Hold the averaged weights in the models inside the block, the trained ones after."""
        live = self._live()
        backup = [t.clone() for t in live]
        with torch.no_grad():
            torch._foreach_copy_(live, self.shadow)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(live, backup)
