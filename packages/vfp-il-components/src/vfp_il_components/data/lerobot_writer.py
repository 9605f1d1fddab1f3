"""Write demonstrations (e.g. of a synthetic task) as a LeRobot dataset through the real ``LeRobotDataset`` writer."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from vfp_il_components.data.lerobot import import_lerobot
from vfp_il_components.tasks.base import Episode, Task

__all__ = ["write_lerobot_dataset"]


def write_lerobot_dataset(
    episodes: Sequence[Episode],
    root: str | Path,
    *,
    repo_id: str,
    task: Task | None = None,
    fps: int | None = None,
    video: bool = False,
    vcodec: str = "h264",
) -> Path:
    """Write ``episodes`` with ``LeRobotDataset.create`` / ``add_frame`` / ``save_episode`` / ``finalize``.

    Features: ``observation.state``, ``action`` and, when the episodes have images, ``observation.image``
    (an ``image`` feature, or an mp4 ``video`` feature with ``video=True``). ``meta/info.json`` also
    records the synthetic task (``vfp_task``, ``vfp_task_options``) so the loader can evaluate on it.
    """
    if not episodes:
        raise ValueError("no episodes to write")
    lerobot_dataset, _ = import_lerobot()
    root = Path(root).expanduser()
    if root.exists():
        raise FileExistsError(f"{root} already exists; LeRobotDataset.create needs a new folder")
    fps = fps if fps is not None else (task.fps if task is not None else 10)
    first = episodes[0]
    features: dict[str, dict[str, object]] = {
        "observation.state": {"dtype": "float32", "shape": tuple(first.observations["state"].shape[1:]), "names": None},
        "action": {"dtype": "float32", "shape": tuple(first.actions.shape[1:]), "names": None},
    }
    has_images = "image" in first.observations
    if has_images:
        height, width, channels = first.observations["image"].shape[1:]
        features["observation.image"] = {
            "dtype": "video" if video else "image",
            "shape": (height, width, channels),
            "names": ["height", "width", "channels"],
        }
    dataset = lerobot_dataset.create(
        repo_id=repo_id, fps=fps, features=features, root=root, use_videos=video, vcodec=vcodec
    )
    instruction = task.name if task is not None else "demonstration"
    for episode in episodes:
        for t in range(len(episode)):
            frame = {
                "observation.state": episode.observations["state"][t],
                "action": episode.actions[t],
                "task": instruction,
            }
            if has_images:
                frame["observation.image"] = episode.observations["image"][t]
            dataset.add_frame(frame)
        dataset.save_episode()
    dataset.finalize()
    if task is not None:
        info_path = root / "meta" / "info.json"
        info = json.loads(info_path.read_text())
        info["vfp_task"] = task.name
        info["vfp_task_options"] = task.options()
        info_path.write_text(json.dumps(info, indent=4))
    return root
