"""Triton kernels for quantized layers, shipped as ``course_lib.kernels``.

The source lives in the repository's top-level ``kernels/`` folder and is mapped into
``course_lib`` by setuptools (``package-dir``), so no top-level package named ``kernels``
is ever installed. Import it as ``from course_lib import kernels`` or
``import course_lib.kernels``. It needs ``triton``; ``course_lib`` itself does not, and
``QuantLinear`` imports this package only when a CUDA input reaches its forward.

    w8a16   int8 weights, one scale per output channel        w8a16_matmul   (v2 GEMM, v4 GEMV, v5 few rows)
    w4a16   QuantLinear's packed 4-bit format                  w4a16_matmul   (v1 unfused, v2 fused, v3 GEMM,
            (w4a16_fast: v3 and v5; w4a16_fp16x2: v6)                          v5-v6 GEMV, v7 few rows)
    few_rows  tensor-core kernels for M <= 64 rows              (W4A16 v7, W8A16 v5: the weight read once for all rows)
    decode  reading QuantLinear's format inside a kernel
    launch  launch configs, the tile order, split-K in one launch
    w8a8    int8 activations x int8 weights -> int32           quantize_per_token, w8a8_matmul, w8a8_linear
    dispatch  which kernel runs a QuantLinear                  quant_linear_forward, w8a8_forward (kernel hooks)
    stand_in  where Triton cannot be installed: kernels that say so instead of launching (notebook 09)

Each has a slow ``*_reference`` (float64; quantize_per_token's in float32, bit for bit).
To run the kernels on a CPU through Triton's interpreter (bfloat16 excluded), set
``TRITON_INTERPRET=1`` in the environment *before* this package is first imported:
``triton.jit`` reads it when the kernels are defined (when a submodule is first imported;
this package itself imports them on first use).
"""
import importlib.util
import sys


def _defer_to_the_installed_kernels() -> None:
    """Imported as the top-level ``kernels``: hand the import over to the installed one.

    This happens when the repository root is on ``sys.path`` (``python -m ...``, ``python -m
    pytest`` or a notebook server started there): this folder is found before site-packages.
    transformers 5 imports the PyPI distribution ``kernels`` (``from kernels import ...``), so
    the import must get that package, never this folder. The import system returns whatever
    ``sys.modules[name]`` holds once this file has run, so loading the installed package in its
    place is enough.

    With none installed, ``import kernels`` gets an empty stand-in: no ``__file__`` and no
    ``__version__``, which transformers reads as "not installed" (it finds this folder, sees no
    distribution, imports it and checks both), while raising here would break ``import
    transformers`` itself (seen on an H100 machine with transformers 5.17 and no ``kernels``).
    Any name taken from the stand-in raises ImportError saying what this folder is.
    """
    from importlib.machinery import PathFinder
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    elsewhere = [p for p in sys.path if Path(p or ".").resolve() != root]
    spec = PathFinder.find_spec(__name__, elsewhere)
    if spec is None or spec.loader is None:
        sys.modules[__name__] = _not_installed(__name__, Path(__file__).parent)
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules[__name__] = module
    spec.loader.exec_module(module)


def _not_installed(name: str, folder) -> "types.ModuleType":
    """The stand-in for a top-level ``kernels`` that is not installed (see above)."""
    import types

    stand_in = types.ModuleType(name, "No distribution named kernels is installed; this is a stand-in.")
    message = (f"cannot import from {name!r}: no distribution {name!r} is installed, and the folder {folder} is "
               "the course's Triton kernels, importable only as `course_lib.kernels` (pip install -e the repository)")

    def __getattr__(attribute: str):
        if attribute.startswith("__"):  # getattr(module, "__version__", default) must see AttributeError
            raise AttributeError(attribute)
        raise ImportError(message, name=name)

    stand_in.__getattr__ = __getattr__
    return stand_in


if __name__ != "course_lib.kernels":
    _defer_to_the_installed_kernels()

# name -> submodule. Imported on first use (PEP 562), so importing this package imports
# neither triton nor a kernel.
_EXPORTS = {
    "quant_linear_forward": "dispatch", "supports": "dispatch", "w8a8_forward": "dispatch",
    "w4a16_matmul": "w4a16", "w4a16_reference": "w4a16",
    "quantize_per_token": "w8a8", "quantize_per_token_reference": "w8a8", "w8a8_linear": "w8a8",
    "w8a8_matmul": "w8a8", "w8a8_reference": "w8a8",
    "w8a16_matmul": "w8a16", "w8a16_reference": "w8a16",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        try:
            module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        except ModuleNotFoundError as err:
            if err.name != "triton":
                raise
            from .stand_in import TritonMissing

            raise TritonMissing(f"course_lib.kernels.{name}") from err
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
