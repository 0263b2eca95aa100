"""Per-architecture wiring, as data: where the decoder blocks are, and which op feeds which linears.

Block-wise algorithms (GPTQ's sequential pass) need the list of decoder blocks. Scale
migration (AWQ, SmoothQuant) needs to know, inside one block, which operation produces
the input of which linear layers, so that a per-input-channel scale ``s`` can be folded
into that operation without changing the float output:

    y = W x = (W · diag(s)) (diag(s)⁻¹ x)         the producer of x absorbs s⁻¹

Each :class:`ScaleGroup` names one producer ``prev`` and the linears it feeds, by module
path relative to the block. ``prev`` is a norm (its weight absorbs s⁻¹ element-wise) or a
linear (its output rows absorb s⁻¹). Adding an architecture means adding one
:class:`Wiring` entry to ``WIRINGS``; nothing else branches on the model class.

A ``linear → linear`` group is valid only when the producer's outputs map one-to-one onto
the consumer's inputs: Llama's ``v_proj → o_proj`` is skipped when grouped-query attention
makes ``v_proj`` narrower than ``o_proj``'s input (SmolLM2-135M: 192 against 576), see
:func:`scale_groups`.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class ScaleGroup:
    """One producer and the linears that read its output (paths relative to a decoder block)."""

    prev: str  # e.g. "input_layernorm" or "self_attn.v_proj"
    linears: tuple[str, ...]  # e.g. ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")
    prev_kind: str  # "norm" or "linear"


@dataclass(frozen=True)
class Wiring:
    """Where the blocks live and the scale groups inside each block, in forward order."""

    blocks: str  # path from the top-level model to the nn.ModuleList of decoder blocks
    groups: tuple[ScaleGroup, ...]
    sequential: tuple[tuple[str, ...], ...]  # GPTQ's "true sequential" order: linears that see the same input


LLAMA = Wiring(
    blocks="model.layers",
    groups=(
        ScaleGroup("input_layernorm", ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"), "norm"),
        ScaleGroup("self_attn.v_proj", ("self_attn.o_proj",), "linear"),
        ScaleGroup("post_attention_layernorm", ("mlp.gate_proj", "mlp.up_proj"), "norm"),
        ScaleGroup("mlp.up_proj", ("mlp.down_proj",), "linear"),
    ),
    sequential=(
        ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
        ("self_attn.o_proj",),
        ("mlp.gate_proj", "mlp.up_proj"),
        ("mlp.down_proj",),
    ),
)

OPT = Wiring(
    blocks="model.decoder.layers",
    groups=(
        ScaleGroup("self_attn_layer_norm", ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"), "norm"),
        ScaleGroup("self_attn.v_proj", ("self_attn.out_proj",), "linear"),
        ScaleGroup("final_layer_norm", ("fc1",), "norm"),
        ScaleGroup("fc1", ("fc2",), "linear"),  # ReLU between: relu(x / s) = relu(x) / s for s > 0
    ),
    sequential=(
        ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
        ("self_attn.out_proj",),
        ("fc1",),
        ("fc2",),
    ),
)

# model_type (config.model_type) -> wiring. Llama-shaped families share LLAMA.
WIRINGS: dict[str, Wiring] = {
    "llama": LLAMA,
    "mistral": LLAMA,
    "qwen2": LLAMA,
    "opt": OPT,
}


def wiring_for(model: nn.Module) -> Wiring:
    """The :class:`Wiring` of ``model`` from its ``config.model_type``, or a ValueError saying what exists."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in WIRINGS:
        raise ValueError(
            f"No wiring for model_type={model_type!r}. Known: {sorted(WIRINGS)}. Add a Wiring entry to "
            "course_lib.wiring.WIRINGS naming the block list and which op feeds which linears."
        )
    return WIRINGS[model_type]


def decoder_blocks(model: nn.Module) -> nn.ModuleList:
    """The model's list of decoder blocks (``model.model.layers`` for Llama)."""
    blocks = model.get_submodule(wiring_for(model).blocks)
    if not isinstance(blocks, nn.ModuleList):
        raise ValueError(f"{wiring_for(model).blocks!r} is a {type(blocks).__name__}, expected an nn.ModuleList.")
    return blocks


def scale_groups(block: nn.Module, wiring: Wiring) -> list[ScaleGroup]:
    """The groups of ``wiring`` whose fold is exact in this block.

    A linear producer must have as many outputs as each consumer has inputs; otherwise
    (grouped-query attention's narrow ``v_proj``) the group is left out.
    """
    kept = []
    for group in wiring.groups:
        if group.prev_kind == "linear":
            prev = block.get_submodule(group.prev)
            if any(block.get_submodule(name).in_features != prev.out_features for name in group.linears):
                continue
        kept.append(group)
    return kept
