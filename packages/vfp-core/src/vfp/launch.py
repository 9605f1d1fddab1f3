"""Where this process stands in a ``torchrun`` job, read from the environment (torch-free).

``torchrun`` starts each worker with ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` (and
``TORCHELASTIC_RUN_ID``) in its environment. The command line reads them before importing torch (to
know whether ``--nproc`` must launch workers, and which process prints); the engine's
``DistributedEnv`` builds on the same :class:`ProcessPlacement`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Self

__all__ = ["ProcessPlacement", "under_torchrun"]


@dataclass(frozen=True)
class ProcessPlacement:
    """This process's place in the job: one process unless ``torchrun`` says otherwise."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        """More than one process: data parallelism is on."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs and writes the run directory."""
        return self.rank == 0

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Read torchrun's variables; without them (or with ``WORLD_SIZE=1``) this is a single process."""
        env = os.environ if environ is None else environ
        world_size = int(env.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return cls()
        return cls(int(env["RANK"]), int(env.get("LOCAL_RANK", "0")), world_size)


def under_torchrun(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process was started by ``torchrun`` (so ``--nproc`` must not launch again)."""
    env = os.environ if environ is None else environ
    return "TORCHELASTIC_RUN_ID" in env or int(env.get("WORLD_SIZE", "1")) > 1
