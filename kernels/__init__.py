"""Triton kernels for quantized layers, shipped as ``course_lib.kernels``.

The source lives in the repository's top-level ``kernels/`` folder and is mapped into
``course_lib`` by setuptools (``package-dir``), so no top-level package named ``kernels``
is ever installed. Import it as ``from course_lib import kernels`` or
``import course_lib.kernels``. It needs ``triton``; ``course_lib`` itself does not, and
``QuantLinear`` imports this package only when a CUDA input reaches its forward.

    w8a16   int8 weights, one scale per output channel        w8a16_matmul   (v1 naive, v2 GEMM, v3-v4 GEMV, v5)
    w4a16   QuantLinear's packed 4-bit format                  w4a16_matmul   (v1 unfused ... v3 GEMM, v4-v6 GEMV, v7)
    few_rows  tensor-core kernels for M <= 64 rows              (W4A16 v7, W8A16 v5: the weight read once for all rows)
    launch  launch configs, the tile order, split-K in one launch
    w8a8    int8 activations x int8 weights -> int32           quantize_per_token, w8a8_matmul, w8a8_linear
    dispatch  which kernel runs a QuantLinear                  quant_linear_forward, w8a8_forward (kernel hooks)

Each has a float64 ``*_reference``. To run the kernels on a CPU through Triton's
interpreter (bfloat16 excluded), set ``TRITON_INTERPRET=1`` in the environment *before*
this package is first imported: ``triton.jit`` reads it when the kernels are defined
(when a submodule is first imported; this package itself imports them on first use).
"""
import importlib

# name -> submodule. Imported on first use (PEP 562), so importing this package imports
# neither triton nor a kernel; and a stray top-level import of this folder as ``kernels``
# (the repository root on sys.path: transformers probes for a PyPI package of that name)
# finds an empty package instead of failing on the relative imports.
_EXPORTS = {
    "quant_linear_forward": "dispatch", "supports": "dispatch", "w8a8_forward": "dispatch",
    "w4a16_matmul": "w4a16", "w4a16_reference": "w4a16",
    "quantize_per_token": "w8a8", "quantize_per_token_reference": "w8a8", "w8a8_linear": "w8a8",
    "w8a8_matmul": "w8a8", "w8a8_reference": "w8a8",
    "w8a16_matmul": "w8a16", "w8a16_reference": "w8a16",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS and __name__ == "course_lib.kernels":
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
