"""Save a quantized model to one safetensors file, and load it back into a skeleton.

The file holds the whole ``state_dict`` (packed ``qweight``, ``scale``, ``zero_point``,
``g_idx`` of each QuantLinear, plus the untouched embedding and norms; a tied weight is
stored once) and, in its metadata, a JSON map from each QuantLinear's qualified name to
its config (in/out features, n_bits, group_size, symmetric, bias), and what calibrated it
(``model.quant_calibration``, see ``calibration.CalibrationSet.recipe``) when that was recorded. Loading rebuilds those
layers in a skeleton (the same architecture, unquantized, e.g. freshly loaded) and then
loads every tensor strictly, so the reloaded model computes exactly the same outputs.
"""
from __future__ import annotations

import json
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import load_model, save_model
from torch import nn

from .quant_linear import QuantLinear

FORMAT = "course_lib.quantized/1"


def save_quantized(model: nn.Module, path: str | Path) -> Path:
    """Write ``model`` (with its QuantLinear layers) to ``path`` (a .safetensors file)."""
    layers = {name: m.config() for name, m in model.named_modules() if isinstance(m, QuantLinear)}
    if not layers:
        raise ValueError("The model has no QuantLinear layer; quantize it first (e.g. rtn.quantize_model).")
    path = Path(path)
    metadata = {"format": FORMAT, "quant_layers": json.dumps(layers)}
    if getattr(model, "quant_calibration", None) is not None:
        metadata["calibration"] = json.dumps(model.quant_calibration)
    save_model(model, str(path), metadata=metadata)
    return path


def _metadata(path: str | Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
    if metadata.get("format") != FORMAT:
        raise ValueError(
            f"{path} was not written by save_quantized (format {metadata.get('format')!r}, expected {FORMAT!r})."
        )
    return metadata


def read_calibration(path: str | Path) -> dict | None:
    """What calibrated the saved model (windows per source, seq_len, seed, eval overlap), or None
    when it was quantized without calibration data (RTN) or from an unrecorded source."""
    stored = _metadata(path).get("calibration")
    return json.loads(stored) if stored is not None else None


def read_quant_layers(path: str | Path) -> dict[str, dict]:
    """The per-layer configs stored in a file written by :func:`save_quantized`."""
    return json.loads(_metadata(path)["quant_layers"])


def load_quantized(model: nn.Module, path: str | Path) -> nn.Module:
    """Rebuild the saved QuantLinear layers inside ``model`` (a skeleton), load all tensors; return it."""
    layers = read_quant_layers(path)
    device = next(model.parameters()).device
    for name, cfg in layers.items():
        try:
            old = model.get_submodule(name)
        except AttributeError as err:
            raise ValueError(
                f"The skeleton has no module {name!r}; load into the architecture that was saved."
            ) from err
        if not isinstance(old, (nn.Linear, QuantLinear)):
            raise ValueError(f"Module {name!r} of the skeleton is a {type(old).__name__}, not a linear layer.")
        model.set_submodule(name, QuantLinear(**cfg, device=device))
    load_model(model, str(path), strict=True, device=str(device))
    calibration = read_calibration(path)
    if calibration is not None:
        model.quant_calibration = calibration
    return model
