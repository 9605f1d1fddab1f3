"""Where and how a run computes: device choice, seeding, deterministic mode and autocast."""

from __future__ import annotations

import contextlib
import os
import random
from contextlib import AbstractContextManager

import numpy as np
import torch

__all__ = ["autocast", "derive_seed", "resolve_device", "seed_everything", "set_deterministic"]

_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_NO_AUTOCAST = contextlib.nullcontext()  # reusable: entered once per micro-batch


def resolve_device(requested: str, local_rank: int = 0) -> torch.device:
    """``auto`` picks CUDA when available (the local rank's GPU under torchrun), else the CPU.

    ``cuda`` without an index also picks the local rank's GPU. A device that is not available is
    an error that says so.
    """
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda":
        requested = f"cuda:{local_rank}"
    device = torch.device(requested)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {requested!r} was requested but CUDA is not available (use cpu or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {requested!r} does not exist ({torch.cuda.device_count()} CUDA devices)")
        torch.cuda.set_device(device)
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' was requested but MPS is not available (use cpu or auto)")
    return device


def derive_seed(seed: int, *parts: int) -> int:
    """A 63-bit seed mixed from ``seed`` and ``parts`` (distinct streams per rank or purpose)."""
    state = np.random.SeedSequence([seed & 0xFFFF_FFFF_FFFF_FFFF, *parts]).generate_state(1, dtype=np.uint64)
    return int(state[0]) & 0x7FFF_FFFF_FFFF_FFFF


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (all devices) global generators."""
    random.seed(seed)
    np.random.seed(seed & 0xFFFF_FFFF)
    torch.manual_seed(seed)


def set_deterministic(enabled: bool) -> None:
    """Ask torch for deterministic algorithms (errors for operations that have none).

    The flag is only touched when it changes: setting it imports torch's compiler stack (seconds).
    """
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if enabled != torch.are_deterministic_algorithms_enabled():
        torch.use_deterministic_algorithms(enabled)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = False


def autocast(device: torch.device, precision: str) -> AbstractContextManager[object]:
    """Autocast on the run's own device type for ``bf16``/``fp16``; nothing for ``fp32``."""
    if precision == "fp32":
        return _NO_AUTOCAST
    return torch.autocast(device_type=device.type, dtype=_AUTOCAST_DTYPES[precision])
