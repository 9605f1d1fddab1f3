"""Light registration module of the model building blocks (config models only, no torch import).

A ``model`` component is built as ``target(config, **dims)``: the YAML (``model.<name>.arch``)
carries only architecture hyper-parameters, and the trainer passes the dimensions that follow from
the data and from the other components (``in_dim``, ``action_dim``, ``horizon``, ``cond_dim``,
``latent_dim``, ``num_experts``, ``info``...). Encoders whose output size is a free choice
(``conv_encoder``, ``obs_encoder``) take it from their config and expose it as ``module.out_dim``.
Each config's docstring names its builder's dimensions and forward signature; docs/components/models.md
has the details and YAML examples.
"""

from __future__ import annotations

import itertools
import os
from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from vfp import ComponentConfig, ComponentKind, ComponentSpec, Settings

__all__ = [
    "SPECS",
    "Activation",
    "CategoricalHeadConfig",
    "ChunkTransformerConfig",
    "ChunkTransformerExpertConfig",
    "ConvEncoderConfig",
    "ConvEncoderSettings",
    "ExpertConfig",
    "GateConfig",
    "GaussianEncoderConfig",
    "MlpConfig",
    "MlpExpertConfig",
    "MlpSettings",
    "MoEDecoderConfig",
    "ObsEncoderConfig",
    "VQCodebookConfig",
]

Activation = Literal["relu", "gelu", "silu", "mish", "tanh", "elu", "leaky_relu"]
MAX_WIDTH = 65536
"""Widest layer a config may ask for (larger layers cannot train on any single accelerator)."""
PositiveInt = Annotated[int, Field(ge=1, le=MAX_WIDTH)]
BYTES_PER_PARAMETER = 16
"""fp32 weight, gradient and two Adam moments: what training holds per parameter."""


def total_memory_bytes() -> int | None:
    """Physical memory of this machine (None where the OS does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):
        return None


def check_fits_in_memory(parameters: int, what: str) -> None:
    """Refuse a layer layout whose training state (:data:`BYTES_PER_PARAMETER` a parameter) exceeds RAM."""
    needed = parameters * BYTES_PER_PARAMETER
    memory = total_memory_bytes()
    if memory is not None and needed > memory:
        raise ValueError(
            f"{what} give at least {parameters:,} parameters, about {needed / 2**30:.1f} GiB for weights, "
            f"gradients and Adam state ({BYTES_PER_PARAMETER} bytes each); this machine has {memory / 2**30:.1f} GiB"
        )


class MlpSettings(Settings):
    """Layers of a multi-layer perceptron (shared by every block that contains one)."""

    hidden_dims: list[PositiveInt] = Field(
        default_factory=lambda: [256, 256],
        max_length=256,
        description="Width of each hidden layer ([] gives a single linear layer). Residual MLPs need equal widths.",
    )
    activation: Activation = Field("silu", description="Non-linearity after each hidden layer.")
    residual: bool = Field(
        False, description="Residual blocks (norm, linear, activation, linear, plus the input) instead of plain layers."
    )
    layer_norm: bool = Field(True, description="LayerNorm in each hidden layer (before the activation or block).")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout probability after each hidden activation.")

    @model_validator(mode="after")
    def _residual_widths_match(self) -> Self:
        if self.residual and len(set(self.hidden_dims)) > 1:
            raise ValueError(f"hidden_dims must all be equal when residual is true, got {self.hidden_dims}")
        # Between hidden layers alone (the input and output widths come from the data, and only add).
        dims = self.hidden_dims
        between = sum(a * b for a, b in itertools.pairwise(dims)) + sum(dims)
        check_fits_in_memory(between, f"hidden_dims {dims}")
        return self


class MlpConfig(ComponentConfig, MlpSettings):
    """MLP or residual MLP with optional time embedding and condition input.

    Dimensions: either ``in_dim`` and ``out_dim`` (vectors ``(..., in_dim) -> (..., out_dim)``), or
    ``action_dim`` and ``horizon`` (action chunks ``(B, H, A) -> (B, H, A)``, flattened inside);
    ``cond_dim`` (0: no condition) and ``time_input`` (True: takes a flow time ``t``).
    ``forward(x, cond=None, t=None)``; ``t`` is ``(B,)`` or ``(B, 1)`` in [0, 1].
    """

    conditioning: Literal["film", "concat"] = Field(
        "film",
        description=(
            "film: the condition and time embedding scale and shift every hidden layer; concat: they are "
            "concatenated to the input."
        ),
    )
    time_embed_dim: int = Field(
        64, ge=2, le=MAX_WIDTH, description="Size of the time embedding (sinusoidal features, then an MLP)."
    )
    time_scale: float = Field(
        1000.0, gt=0.0, description="t is multiplied by this before the sinusoidal features (t lies in [0, 1])."
    )

    @model_validator(mode="after")
    def _even_time_embedding(self) -> Self:
        if self.time_embed_dim % 2:
            raise ValueError(f"time_embed_dim must be even (sine and cosine pairs), got {self.time_embed_dim}")
        return self


class ChunkTransformerConfig(ComponentConfig):
    """Transformer over the steps of an action chunk, conditioned on a vector and a flow time.

    Dimensions: ``action_dim``, ``horizon``, ``cond_dim`` (0: none), ``time_input``.
    ``forward(x (B, H, A), cond=None (B, cond_dim), t=None (B,)) -> (B, H, A)``.
    """

    d_model: int = Field(128, ge=8, le=MAX_WIDTH, description="Width of the token embeddings.")
    num_layers: int = Field(4, ge=1, le=1024, description="Number of transformer blocks.")
    num_heads: int = Field(4, ge=1, le=1024, description="Attention heads; must divide d_model.")
    mlp_ratio: float = Field(
        4.0, gt=0.0, le=64.0, description="Hidden width of each block's MLP as a multiple of d_model."
    )
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout in attention and MLPs.")
    activation: Activation = Field("gelu", description="Non-linearity of the blocks' MLPs.")
    conditioning: Literal["adaln", "tokens"] = Field(
        "adaln",
        description=(
            "adaln: the condition and time embedding scale and shift every block's LayerNorms (FiLM on tokens); "
            "tokens: they enter as extra tokens that the action tokens attend to."
        ),
    )
    time_scale: float = Field(1000.0, gt=0.0, description="t is multiplied by this before the sinusoidal features.")

    @model_validator(mode="after")
    def _heads_divide_width(self) -> Self:
        if self.d_model % self.num_heads:
            raise ValueError(f"num_heads ({self.num_heads}) must divide d_model ({self.d_model})")
        if self.d_model % 2:
            raise ValueError(f"d_model must be even (sinusoidal time features), got {self.d_model}")
        return self


class ConvEncoderSettings(Settings):
    """Layers of a small convolutional image encoder trained from scratch."""

    channels: list[PositiveInt] = Field(
        default_factory=lambda: [32, 64, 64], min_length=1, description="Output channels of each conv layer."
    )
    strides: list[PositiveInt] = Field(
        default_factory=lambda: [2, 2, 1], min_length=1, description="Stride of each conv layer (one per channel)."
    )
    kernel_size: int = Field(
        3, ge=1, le=255, description="Kernel size of every conv layer (padding keeps 'same' size)."
    )
    norm: Literal["group", "batch", "none"] = Field(
        "group", description="Normalization after each conv (group norm is safe with small batches and EMA)."
    )
    activation: Activation = Field("relu", description="Non-linearity after each conv.")
    pooling: Literal["spatial_softmax", "avg", "max"] = Field(
        "spatial_softmax",
        description="spatial_softmax: expected 2-D positions of learned keypoints; avg/max: global pooling.",
    )
    num_keypoints: int = Field(
        32, ge=1, le=MAX_WIDTH, description="Keypoints of the spatial softmax (2 features each)."
    )
    out_dim: int = Field(64, ge=1, le=MAX_WIDTH, description="Size of the feature vector of each image.")

    @model_validator(mode="after")
    def _one_stride_per_layer(self) -> Self:
        if len(self.strides) != len(self.channels):
            raise ValueError(
                f"strides has {len(self.strides)} entries but channels has {len(self.channels)}: give one per layer"
            )
        return self


class ConvEncoderConfig(ComponentConfig, ConvEncoderSettings):
    """Convolutional image encoder: ``(..., C, H, W) -> (..., out_dim)``.

    Dimensions: ``image_shape`` ``(C, H, W)``. ``forward(images)``; ``module.out_dim`` is the feature size.
    """


class ObsEncoderConfig(ComponentConfig, MlpSettings):
    """Observation-history encoder: a batch's ``observation.*`` features to one vector ``(B, out_dim)``.

    Dimensions: ``info`` (the data's ``vfp.protocols.DataInfo``). ``forward(batch)`` reads
    ``observation.<key>`` ``(B, T, ...)``; state features are flattened over the history, each image
    frame goes through a conv encoder, and an MLP (the ``hidden_dims``... fields) fuses them all.
    """

    out_dim: int = Field(128, ge=1, le=MAX_WIDTH, description="Size of the observation feature.")
    state_keys: list[str] | None = Field(
        None, description="State features to use, e.g. ['observation.state'] (null: every state feature of the data)."
    )
    image_keys: list[str] | None = Field(
        None, description="Camera features to use (null: every image feature of the data; [] ignores images)."
    )
    image_encoder: ConvEncoderSettings = Field(
        default_factory=ConvEncoderSettings, description="Conv encoder applied to every frame of every camera."
    )
    share_image_encoder: bool = Field(True, description="One conv encoder for all cameras (false: one per camera).")


class GaussianEncoderConfig(ComponentConfig, MlpSettings):
    """Diagonal Gaussian over a latent: posterior q(z | o, A) or prior p(z | o).

    Dimensions: ``latent_dim``; inputs ``cond_dim`` (observation feature, 0: none) and/or
    ``action_dim`` with ``horizon`` (the action chunk, flattened; 0: none).
    ``forward(cond=None, actions=None) -> DiagonalGaussian`` (``mean``, ``log_var``, ``rsample()``, ``kl(other)``).
    """

    log_var_min: float = Field(-10.0, description="Lower bound of the log-variance (soft clamp).")
    log_var_max: float = Field(4.0, description="Upper bound of the log-variance (soft clamp).")

    @model_validator(mode="after")
    def _bounds_ordered(self) -> Self:
        if self.log_var_min >= self.log_var_max:
            raise ValueError(f"log_var_min ({self.log_var_min}) must be below log_var_max ({self.log_var_max})")
        return self


class CategoricalHeadConfig(ComponentConfig, MlpSettings):
    """Logits over K latent classes: a categorical prior p(c | o) or posterior q(c | o, A).

    Dimensions: ``num_classes``; inputs ``cond_dim`` and/or ``action_dim`` with ``horizon``.
    ``forward(cond=None, actions=None) -> logits (B, K)``; sample with ``sample_categorical`` or
    ``gumbel_softmax`` of ``vfp_il_components.models.latent``.
    """


class GateConfig(ComponentConfig, MlpSettings):
    """Router of a mixture of experts: expert weights from a condition, with top-k and temperature.

    Dimensions: ``cond_dim``, ``num_experts``. ``forward(cond, temperature=None, top_k=None) -> GateOutput``
    with ``weights`` (B, E) (zero outside the top k; rows sum to 1 when ``renormalize``), ``logits`` (B, E)
    (tempered, for the balance losses) and ``top_k_indices`` (B, k).
    """

    hidden_dims: list[PositiveInt] = Field(
        default_factory=lambda: [128], description="Hidden widths of the router MLP ([]: a linear router)."
    )
    top_k: int | None = Field(None, ge=1, description="Experts kept per sample (null: all of them).")
    temperature: float = Field(1.0, gt=0.0, description="Logits are divided by this before the softmax.")
    noise_std: float = Field(
        0.0, ge=0.0, description="Std of Gaussian noise added to the logits in training mode (noisy top-k routing)."
    )
    renormalize: bool = Field(
        True,
        description=(
            "true: softmax over the top k logits (rows sum to 1; with top_k 1 the weight is always 1, so the router "
            "learns only from auxiliary losses); false: the full softmax probabilities, zeroed outside the top k "
            "(Switch-style, the router also learns from the task loss)."
        ),
    )


class MlpExpertConfig(MlpConfig):
    """An MLP expert of a mixture-of-experts decoder."""

    type: Literal["mlp"] = "mlp"


class ChunkTransformerExpertConfig(ChunkTransformerConfig):
    """A chunk-transformer expert of a mixture-of-experts decoder."""

    type: Literal["chunk_transformer"] = "chunk_transformer"


ExpertConfig = Annotated[MlpExpertConfig | ChunkTransformerExpertConfig, Field(discriminator="type")]


class MoEDecoderConfig(ComponentConfig):
    """Mixture-of-experts flow decoder: E velocity networks on (x_t, t, observation feature, latent z).

    Dimensions: ``action_dim``, ``horizon``, ``cond_dim``, ``latent_dim`` (0: no latent), ``num_experts``.
    ``forward(x (B, H, A), cond (B, cond_dim), t (B,), z=None (B, latent_dim), weights=None (B, E)) -> (B, H, A)``:
    every expert sees ``[cond, z]`` and the output is the weight-averaged expert velocity.
    """

    expert: ExpertConfig = Field(
        default_factory=lambda: MlpExpertConfig(),
        description="Architecture of each expert: an mlp or chunk_transformer.",
    )
    dispatch: Literal["sparse", "dense"] = Field(
        "sparse",
        description=(
            "sparse: each expert runs only on the rows routed to it (cost ~ B*k; one host sync per call); "
            "dense: every expert runs on every row (cost B*E; no sync)."
        ),
    )


class VQCodebookConfig(ComponentConfig):
    """Vector-quantization codebook with commitment loss, EMA or loss updates and dead-code restarts.

    Dimensions: ``latent_dim`` (size of each vector). ``forward(z_e (..., D)) -> VQOutput`` with
    ``quantized`` (..., D), ``indices`` (...), ``losses`` and ``metrics`` dicts; ``lookup(indices)``.
    """

    num_codes: int = Field(64, ge=2, le=1 << 20, description="Number of codebook vectors K.")
    quantizer: Literal["straight_through", "nsvq"] = Field(
        "straight_through",
        description=(
            "straight_through: quantized = z + sg(q - z); nsvq: noise substitution z + |z - q| * v / |v| "
            "(v standard normal) in training."
        ),
    )
    beta: float = Field(0.25, ge=0.0, description="Weight of the commitment loss beta * |z - sg(q)|^2.")
    codebook_update: Literal["ema", "loss"] = Field(
        "ema", description="ema: exponential moving averages of assigned vectors; loss: a codebook loss |sg(z) - q|^2."
    )
    ema_decay: float = Field(0.99, gt=0.0, lt=1.0, description="Decay of the EMA updates.")
    restart_after: int | None = Field(
        100,
        ge=1,
        description="Codes unused for this many training calls are re-initialized from current encoder outputs.",
    )
    data_init: bool = Field(True, description="Initialize the codebook from the first training batch's vectors.")


SPECS: list[ComponentSpec] = [
    ComponentSpec(
        ComponentKind.MODEL,
        "mlp",
        MlpConfig,
        "vfp_il_components.models.mlp:build_mlp",
        "MLP / residual MLP with FiLM or concat conditioning on a vector and a flow time.",
    ),
    ComponentSpec(
        ComponentKind.MODEL,
        "chunk_transformer",
        ChunkTransformerConfig,
        "vfp_il_components.models.transformer:ChunkTransformer",
        "Transformer over action chunks conditioned by adaLN or tokens: a flow-matching velocity network.",
    ),
    ComponentSpec(
        ComponentKind.MODEL,
        "conv_encoder",
        ConvEncoderConfig,
        "vfp_il_components.models.vision:ConvEncoder",
        "Small convolutional image encoder trained from scratch (spatial softmax or global pooling).",
    ),
    ComponentSpec(
        ComponentKind.MODEL,
        "obs_encoder",
        ObsEncoderConfig,
        "vfp_il_components.models.observation:ObservationEncoder",
        "Observation-history encoder: state features and camera images fused into one vector.",
    ),
    ComponentSpec(
        ComponentKind.MODEL,
        "gaussian_encoder",
        GaussianEncoderConfig,
        "vfp_il_components.models.latent:GaussianEncoder",
        "Diagonal Gaussian posterior q(z|o,A) or prior p(z|o) with clamped log-variance.",
    ),
    ComponentSpec(
        ComponentKind.MODEL,
        "categorical_head",
        CategoricalHeadConfig,
        "vfp_il_components.models.latent:CategoricalHead",
        "Logits over K latent classes (categorical prior or posterior).",
    ),
    ComponentSpec(
        ComponentKind.MODEL,
        "gate",
        GateConfig,
        "vfp_il_components.models.moe:Gate",
        "Mixture-of-experts router with top-k selection and temperature.",
    ),
    ComponentSpec(
        ComponentKind.MODEL,
        "moe_decoder",
        MoEDecoderConfig,
        "vfp_il_components.models.moe:MoEDecoder",
        "Mixture-of-experts flow decoder whose experts see the latent z.",
    ),
    ComponentSpec(
        ComponentKind.MODEL,
        "vq_codebook",
        VQCodebookConfig,
        "vfp_il_components.models.vq:VQCodebook",
        "VQ codebook: straight-through or NSVQ, commitment loss, EMA updates, dead-code restarts.",
    ),
]
