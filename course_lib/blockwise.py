"""Block-sequential calibration: run a model one decoder block at a time on calibration data.

GPTQ and AWQ quantize a block from the activations it will really see: the outputs of
the blocks before it *after those were quantized*. The driver here holds the hidden
states of the calibration set between blocks, so the whole model never runs at once:

    X_0 = embed(calib)                              captured at block 0's input
    for i, block in enumerate(blocks):
        ... the algorithm reads X_i, quantizes block i in place ...
        X_{i+1} = block(X_i)                         with block i already quantized

:func:`sequential_blocks` is a generator: it yields ``(i, block, inputs)``, and once the
caller has changed the block, it computes that block's outputs as the next inputs.

Each element of ``inputs`` is a :class:`BlockInput`: a chunk of hidden states
[batch, seq, hidden] and the keyword arguments the model passed to the block (causal
mask, rotary position embeddings ...), captured from the model's own forward so that
nothing architecture-specific is rebuilt here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn
from tqdm.auto import tqdm

from .hooks import StopForward
from .quant_linear import cached_dequantization
from .swap import Select, find_linears
from .wiring import Wiring, decoder_blocks


@dataclass
class BlockInput:
    """One chunk of a block's input: ``hidden`` [batch, seq, hidden] and the block's other kwargs."""

    hidden: torch.Tensor
    kwargs: dict


def check_calibration(calib) -> torch.Tensor:
    """``calib`` (a tensor or a calibration.CalibrationSet) as a LongTensor [n_samples, seq_len],
    or a ValueError saying how to build one."""
    hint = "Build one with course_lib.data.calibration_batches(tokenizer, 'wiki', n_samples=128, seq_len=512)."
    calib = getattr(calib, "input_ids", calib)  # a calibration.CalibrationSet, or the ids themselves
    if calib is None:
        raise ValueError(f"This method needs calibration data (calib=None). {hint}")
    if not isinstance(calib, torch.Tensor) or calib.dim() != 2 or calib.dtype != torch.long:
        shape = tuple(calib.shape) if isinstance(calib, torch.Tensor) else type(calib).__name__
        raise ValueError(f"calib must be a LongTensor of token ids [n_samples, seq_len], got {shape}. {hint}")
    if calib.shape[0] == 0 or calib.shape[1] == 0:
        raise ValueError(f"The calibration set is empty (shape {tuple(calib.shape)}). {hint}")
    return calib


def check_block_targets(model: nn.Module, wiring: Wiring, select: Select, method: str) -> None:
    """Every linear to quantize lies in a decoder block and in a stage of the wiring.

    Raises a ValueError naming the first offender and what to change, before anything is modified.
    """
    targets = find_linears(model, select)
    prefix = wiring.blocks + "."
    outside = [name for name, _ in targets if not name.startswith(prefix)]
    if outside:
        raise ValueError(
            f"{method} quantizes the linears inside decoder blocks; {outside} are outside. Add them to skip "
            "(lm_head is tied to the embedding in SmolLM2) or quantize them with RTN afterwards."
        )
    staged = {name for stage in wiring.sequential for name in stage}
    for name, _ in targets:
        local = name[len(prefix):].split(".", 1)[1]
        if local not in staged:
            raise ValueError(f"Linear {name!r} is in no stage of the wiring's `sequential`; add it there.")


def _model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def capture_block_inputs(model: nn.Module, calib: torch.Tensor, batch_size: int = 8) -> list[BlockInput]:
    """Run the model on ``calib`` [n, seq] in chunks and record what enters decoder block 0.

    The forward stops at block 0 (a pre-hook raises), so the cost is one embedding lookup.
    """
    calib = check_calibration(calib)
    first = decoder_blocks(model)[0]
    captured: list[BlockInput] = []

    def hook(module, args, kwargs):
        hidden = args[0] if args else kwargs.pop("hidden_states")
        captured.append(BlockInput(hidden.detach(), {k: v for k, v in kwargs.items()}))
        raise StopForward

    handle = first.register_forward_pre_hook(hook, with_kwargs=True)
    device = _model_device(model)
    try:
        for start in range(0, calib.shape[0], batch_size):
            chunk = calib[start:start + batch_size].to(device)  # [batch, seq]
            try:
                model(input_ids=chunk, use_cache=False)
            except StopForward:
                pass
    finally:
        handle.remove()
    if len(captured) != -(-calib.shape[0] // batch_size):
        raise RuntimeError("Decoder block 0 was not called on every calibration chunk; is the wiring's block path right?")
    return captured


@torch.no_grad()
def block_outputs(block: nn.Module, inputs: list[BlockInput]) -> list[BlockInput]:
    """``block(X)`` for every chunk, keeping each chunk's kwargs: the inputs of the next block."""
    outputs = []
    for chunk in inputs:
        out = block(chunk.hidden, **chunk.kwargs)
        out = out[0] if isinstance(out, tuple) else out  # older transformers return (hidden, ...)
        outputs.append(BlockInput(out, chunk.kwargs))
    return outputs


@torch.no_grad()
def run_block(block: nn.Module, inputs: list[BlockInput]) -> None:
    """Run the block on every chunk and discard the outputs (for the hooks' sake)."""
    for chunk in inputs:
        block(chunk.hidden, **chunk.kwargs)


def sequential_blocks(
    model: nn.Module, calib: torch.Tensor, batch_size: int = 8, progress: bool = True, desc: str = "blocks",
) -> Iterator[tuple[int, nn.Module, list[BlockInput]]]:
    """Yield ``(i, block_i, X_i)`` for every decoder block, in order.

    After the caller resumes the generator, block i (as the caller left it: quantized)
    runs on X_i to give X_{i+1}. QuantLinear layers dequantize once per block pass
    (:func:`cached_dequantization`).
    """
    inputs = capture_block_inputs(model, calib, batch_size)
    blocks = decoder_blocks(model)
    for i in tqdm(range(len(blocks)), desc=desc, disable=not progress):
        yield i, blocks[i], inputs
        with cached_dequantization(blocks[i]):
            inputs = block_outputs(blocks[i], inputs)
