"""Data-parallel training through ``torch.distributed``, launched by ``torchrun``.

A process started by ``torchrun`` finds ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` in its
environment; with more than one process the engine joins a process group (NCCL on CUDA, gloo on
CPU) and wraps the model in DDP. A single process never creates a process group.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from vfp.launch import ProcessPlacement

__all__ = ["DistributedEnv", "launch_with_torchrun"]


@dataclass(frozen=True)
class DistributedEnv(ProcessPlacement):
    """This process's place in the job (read by :meth:`ProcessPlacement.from_environment`), and the
    collective operations the loop needs."""

    def init_process_group(self, backend: str, device: torch.device) -> None:
        """Join the job's process group (only when there is more than one process)."""
        if not self.enabled or dist.is_initialized():
            return
        if backend == "auto":
            backend = "nccl" if device.type == "cuda" else "gloo"
        kwargs = {"device_id": device} if backend == "nccl" else {}
        dist.init_process_group(backend=backend, timeout=timedelta(minutes=30), **kwargs)  # type: ignore[arg-type]

    def shutdown(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()

    def any_true(self, flags: torch.Tensor) -> torch.Tensor:
        """Element-wise "does any process have this flag set" (identity for one process)."""
        if self.enabled:
            flags = flags.clone()
            dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        return flags

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """Element-wise mean over processes (identity for one process)."""
        if self.enabled:
            values = values.clone()
            dist.all_reduce(values, op=dist.ReduceOp.SUM)
            values /= self.world_size
        return values

    def gather_objects(self, obj: Any) -> list[Any]:
        """``obj`` of every process, in rank order (``[obj]`` for one process)."""
        if not self.enabled:
            return [obj]
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def launch_with_torchrun(nproc: int, vfp_args: Sequence[str]) -> int:
    """Run ``vfp VFP_ARGS`` in ``nproc`` processes on this machine through torchrun; return its exit code.

    Ctrl-C reaches the workers straight from the terminal (they share its process group), so this
    parent only notes it; SIGTERM is forwarded to torchrun, which passes it on to the workers. After
    either, a failed exit is reported as 130 or 143 like a single-process run.
    """
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "vfp",
        *vfp_args,
    ]
    received: list[int] = []
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    process = subprocess.Popen(command)

    def note(signum: int, frame: object) -> None:
        received.append(signum)

    def forward(signum: int, frame: object) -> None:
        received.append(signum)
        process.send_signal(signum)

    signal.signal(signal.SIGINT, note)
    signal.signal(signal.SIGTERM, forward)
    try:
        code = process.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if code != 0 and received:
        return 128 + received[0]
    return code
