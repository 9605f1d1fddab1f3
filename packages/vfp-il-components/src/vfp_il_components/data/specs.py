"""Light registration module of the dataloader components (config models only, no torch import).

``hdf5``: episodic HDF5 files in the robomimic layout, read through h5py.
``lerobot``: LeRobot datasets, read through the real ``lerobot`` library (optional extra).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from vfp import ComponentConfig, ComponentKind, ComponentSpec, Settings
from vfp_il_components.tasks import TASK_NAMES
from vfp_il_components.tasks.options import TASK_OPTION_MODELS

NormalizationMode = Literal["mean_std", "min_max", "none"]
CacheMode = Literal["none", "low_dim", "all"]

LEROBOT_INSTALL_HINT = 'pip install "vfp-il-components[lerobot]"'
MAX_SEED = 2**32 - 1
"""Largest seed (every generator that is seeded accepts 0 .. 2^32 - 1)."""
MAX_WINDOW = 10_000
"""Longest observation history or action chunk, in steps."""


class DemoGenerationConfig(Settings):
    """A synthetic dataset to write when the configured file does not exist yet (no download needed)."""

    task: str = Field(description=f"Synthetic task: one of {', '.join(TASK_NAMES)}.")
    episodes: int = Field(200, ge=1, le=1_000_000, description="Number of demonstrations.")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="Seed of the demo generator.")
    images: bool = Field(False, description="Also write rendered image observations (obs/image, uint8 HWC).")
    image_size: int = Field(64, ge=8, le=1024, description="Side of the rendered images in pixels.")
    val_ratio: float = Field(0.1, ge=0.0, lt=1.0, description="Fraction of demos listed in mask/valid.")
    task_options: dict[str, Any] = Field(default_factory=dict, description="Constructor options of the task.")

    @field_validator("task")
    @classmethod
    def _known_task(cls, value: str) -> str:
        from vfp_il_components.envs.metaworld import METAWORLD_TASKS  # light; metaworld/<task>: its demos

        if value not in TASK_NAMES and value.removeprefix("metaworld/") not in METAWORLD_TASKS:
            available = [*TASK_NAMES, *(f"metaworld/{task}" for task in METAWORLD_TASKS)]
            raise ValueError(f"unknown task {value!r}; available tasks: {', '.join(available)}")
        return value

    @field_validator("task_options")
    @classmethod
    def _task_options(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """Check the options against the task's own (:mod:`vfp_il_components.tasks.options`)."""
        model = TASK_OPTION_MODELS.get(str(info.data.get("task")))
        if model is None:
            return value  # an unknown task is reported on `task`
        booleans = [key for key, option in value.items() if isinstance(option, bool)]
        if booleans:  # every task option is a number or a list of numbers
            raise ValueError(f"{booleans[0]}: expected a number, got a boolean (booleans are not numbers)")
        try:
            options = model.model_validate(value)
        except ValidationError as exc:
            allowed = ", ".join(model.model_fields)
            problems = "; ".join(
                (".".join(str(p) for p in error["loc"]) + ": " if error["loc"] else "")
                + (
                    f"unknown option (options of {info.data['task']!r}: {allowed})"
                    if error["type"] == "extra_forbidden"
                    else str(error["msg"]).removeprefix("Value error, ")
                )
                for error in exc.errors()
            )
            raise ValueError(problems) from None
        return options.model_dump(exclude_unset=True)


class ImageAugmentationConfig(Settings):
    """Random image augmentation of training batches (color jitter and Gaussian blur)."""

    enabled: bool = Field(True, description="Turn augmentation on or off.")
    brightness: float = Field(0.2, ge=0.0, description="Brightness factor drawn from [1-b, 1+b].")
    contrast: float = Field(0.2, ge=0.0, description="Contrast factor drawn from [1-c, 1+c].")
    saturation: float = Field(0.2, ge=0.0, description="Saturation factor drawn from [1-s, 1+s].")
    blur_probability: float = Field(0.3, ge=0.0, le=1.0, description="Chance that an image is blurred.")
    blur_sigma: tuple[float, float] = Field((0.1, 1.5), description="Range of the blur's standard deviation in pixels.")
    blur_kernel: int = Field(5, ge=3, le=255, description="Odd side of the blur kernel.")
    crop_padding: int = Field(
        0, ge=0, le=1024, description="Random shift: pad by this many pixels (edge replicate) and crop back (0: off)."
    )
    seed: int = Field(
        0,
        ge=0,
        le=MAX_SEED,
        description="Seed of the draws; each batch's draws depend only on it and the batch's samples (resumable).",
    )

    @field_validator("blur_kernel")
    @classmethod
    def _odd(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(f"blur_kernel must be odd, got {value}")
        return value

    @field_validator("blur_sigma")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0.0 < value[0] <= value[1]:
            raise ValueError(f"blur_sigma must be (low, high) with 0 < low <= high, got {value}")
        return value


class _WindowOptions(ComponentConfig):
    """Options shared by the loaders: windows, normalization, batching."""

    history: int = Field(
        2, ge=1, le=MAX_WINDOW, description="Observation steps per sample (the current one and history-1 before it)."
    )
    horizon: int = Field(
        16, ge=1, le=MAX_WINDOW, description="Actions per sample (the action chunk), starting at the current step."
    )
    state_normalization: NormalizationMode = Field(
        "mean_std",
        description="How low-dimensional observations are normalized: mean_std, min_max (to [-1, 1]) or none.",
    )
    action_normalization: NormalizationMode = Field(
        "min_max", description="How actions are normalized: mean_std, min_max (to [-1, 1]) or none."
    )
    batch_size: int = Field(256, ge=1, le=1 << 20, description="Samples per batch.")
    num_workers: int = Field(0, ge=0, le=256, description="DataLoader worker processes.")
    val_ratio: float = Field(
        0.1, ge=0.0, lt=1.0, description="Fraction of episodes held out for validation when no explicit split is given."
    )
    split_seed: int = Field(0, ge=0, le=MAX_SEED, description="Seed of the deterministic episode split by ratio.")
    augmentation: ImageAugmentationConfig = Field(
        default_factory=lambda: ImageAugmentationConfig(enabled=False),
        description="Random augmentation of training images (off unless enabled).",
    )


class HDF5DataConfig(_WindowOptions):
    """Episodic HDF5 in the robomimic layout: ``data/demo_N/obs/<key>``, ``data/demo_N/actions``, ``mask/<filter>``."""

    path: str = Field(description="HDF5 file (relative paths are taken from the working directory).")
    state_keys: list[str] = Field(
        default_factory=lambda: ["state"], description="Low-dimensional keys under obs/ (batch key observation.<key>)."
    )
    image_keys: list[str] = Field(
        default_factory=list,
        description="Image keys under obs/ (uint8 HWC in the file, float CHW in [0, 1] in batches).",
    )
    action_key: str = Field("actions", description="Dataset of each demo holding the actions (T, A).")
    train_filter: str | None = Field(None, description="Train on the demos listed in mask/<train_filter>.")
    val_filter: str | None = Field(
        None, description="Validate on the demos listed in mask/<val_filter> (e.g. valid). Overrides val_ratio."
    )
    cache: CacheMode = Field(
        "low_dim",
        description="What is held in RAM: none (read every window from the file), low_dim (low-dimensional "
        "features and actions; images from the file), all (images too).",
    )
    generate: DemoGenerationConfig | None = Field(
        None, description="Write a synthetic demo dataset to `path` first when the file does not exist."
    )

    @model_validator(mode="after")
    def _check_keys(self) -> HDF5DataConfig:
        for key in [*self.state_keys, *self.image_keys, self.action_key]:
            if not key.strip("/ ") or "\x00" in key or key.startswith("/"):
                raise ValueError(f"{key!r} is not a dataset key (a relative HDF5 path such as 'state' or 'actions')")
        if not self.state_keys and not self.image_keys:
            raise ValueError("at least one observation key is needed in state_keys or image_keys")
        both = set(self.state_keys) & set(self.image_keys)
        if both:
            raise ValueError(f"keys listed as both state and image: {sorted(both)}")
        for keys, name in ((self.state_keys, "state_keys"), (self.image_keys, "image_keys")):
            if len(set(keys)) != len(keys):
                raise ValueError(f"{name} lists a key twice: {keys}")
        return self


class LeRobotDataConfig(_WindowOptions):
    """A LeRobot dataset read through the ``lerobot`` library (``pip install "vfp-il-components[lerobot]"``)."""

    repo_id: str = Field(description="Dataset repo id, e.g. lerobot/pusht (also its folder name under the cache).")
    root: str | None = Field(None, description="Local folder of the dataset (default: lerobot's cache folder).")
    offline: bool = Field(True, description="Never contact the Hugging Face hub (set false to allow downloads).")
    revision: str | None = Field(None, description="Dataset revision (branch, tag or commit) when downloading.")
    state_keys: list[str] = Field(
        default_factory=lambda: ["observation.state"],
        description="Dataset features used as low-dimensional observations.",
    )
    image_keys: list[str] = Field(
        default_factory=list, description="Dataset features used as images or videos (e.g. observation.images.top)."
    )
    action_key: str = Field("action", description="Dataset feature holding the actions.")
    episodes: list[int] | None = Field(None, description="Use only these episode indices (default: all).")
    val_episodes: list[int] | None = Field(
        None, description="Hold out these episode indices for validation. Overrides val_ratio."
    )
    fast_low_dim: bool = Field(
        True, description="Read low-dimensional columns once into tensors and build windows by vectorized indexing."
    )
    video_backend: Literal["auto", "pyav", "torchcodec", "video_reader"] = Field(
        "auto", description="Video decoding backend; auto: torchcodec when its FFmpeg libraries load, else pyav."
    )
    task: str | None = Field(
        None, description="Synthetic task the dataset was generated from, for closed-loop evaluation (optional)."
    )
    frame_cache: bool = Field(
        True,
        description="Decode image/video features once into a uint8 memory-mapped frame cache (fast path only); "
        "false: decode every sample through LeRobotDataset.",
    )
    frame_cache_dir: str | None = Field(
        None, description="Folder of the frame cache (default: $VFP_CACHE_DIR, else ~/.cache/vfp)."
    )

    @field_validator("task")
    @classmethod
    def _known_task(cls, value: str | None) -> str | None:
        if value is not None and value not in TASK_NAMES:
            raise ValueError(f"unknown task {value!r}; available tasks: {', '.join(TASK_NAMES)}")
        return value

    @model_validator(mode="after")
    def _check_keys(self) -> LeRobotDataConfig:
        if not self.state_keys and not self.image_keys:
            raise ValueError("at least one observation feature is needed in state_keys or image_keys")
        overlap = ({self.action_key} & (set(self.state_keys) | set(self.image_keys))) | (
            set(self.state_keys) & set(self.image_keys)
        )
        if overlap:
            raise ValueError(f"features given more than one role: {sorted(overlap)}")
        return self


SPECS: list[ComponentSpec] = [
    ComponentSpec(
        ComponentKind.DATALOADER,
        "hdf5",
        HDF5DataConfig,
        "vfp_il_components.data.hdf5:build_hdf5_data",
        "Episodic HDF5 (robomimic layout) with observation history, action chunks and padding masks.",
    ),
    ComponentSpec(
        ComponentKind.DATALOADER,
        "lerobot",
        LeRobotDataConfig,
        "vfp_il_components.data.lerobot:build_lerobot_data",
        'LeRobot datasets through the lerobot library (pip install "vfp-il-components[lerobot]").',
    ),
]
