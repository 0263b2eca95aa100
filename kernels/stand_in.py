"""Stand-ins for Triton where it cannot be installed, so that notebook 09 degrades, not crashes.

Triton ships wheels for Linux only. On macOS or Windows, notebook 09's set-up cell imports
``triton``, ``tl`` and ``unavailable`` from here instead of from Triton: kernels are still
*defined* (``@triton.jit`` returns a :class:`Kernel` and ``tl.constexpr`` is a plain
annotation), the pure-Python parts (``triton.cdiv``, the launch-grid and tile-order
exercises, the recorded benchmark tables) run as they do on Linux, and anything that would
launch a kernel raises :class:`TritonMissing`, whose message says why and what to do.

This module never imports Triton.
"""
from __future__ import annotations

import sys

MESSAGE = (
    "Triton is not installed, so no kernel can run here: Triton is Linux-only (x86_64 and aarch64 "
    f"wheels; this is {sys.platform}). This cell is skipped, and a graded cell that needs a kernel "
    "scores 0. The cells that need no kernel still run. To do the kernel exercises, use Linux: a "
    "Linux machine, WSL2 on Windows, or a hosted Linux notebook (pip install triton; no GPU needed)."
)


class TritonMissing(ImportError):
    """Raised by anything that needs Triton where it is not installed."""

    def __init__(self, what: str = "this"):
        super().__init__(f"{what} needs Triton. {MESSAGE}")


def cdiv(a: int, b: int) -> int:
    """ceil(a / b) for integers, as ``triton.cdiv``."""
    return -(-a // b)


class Kernel:
    """What ``@triton.jit`` gives without Triton: ``kernel[grid](...)`` raises :class:`TritonMissing`."""

    def __init__(self, fn):
        self.fn = fn
        self.__name__ = getattr(fn, "__name__", "kernel")
        self.__doc__ = getattr(fn, "__doc__", None)

    def __getitem__(self, grid):
        return self

    def __call__(self, *args, **kwargs):
        raise TritonMissing(f"launching {self.__name__}")


def jit(fn=None, **options):
    """``@triton.jit`` and ``@triton.jit(...)``: the function becomes a :class:`Kernel` that cannot launch."""
    if fn is None:
        return lambda f: Kernel(f)
    return Kernel(fn)


class Unavailable:
    """A module or class of ``course_lib.kernels`` that needs Triton: any use raises :class:`TritonMissing`."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attribute: str):
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        raise TritonMissing(f"{self._name}.{attribute}")

    def __call__(self, *args, **kwargs):
        raise TritonMissing(self._name)


class _Constexpr:
    """``tl.constexpr`` as an annotation; a value wrapped in it is kept in ``.value``."""

    def __init__(self, value=None):
        self.value = value


class _Namespace:
    """A module-like object: the attributes given, and :class:`TritonMissing` for any other."""

    def __init__(self, name: str, **attributes):
        self._name = name
        self.__dict__.update(attributes)

    def __getattr__(self, attribute: str):
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        raise TritonMissing(f"{self._name}.{attribute}")


tl = _Namespace("triton.language", constexpr=_Constexpr)
triton = _Namespace("triton", __version__="not installed", cdiv=cdiv, jit=jit, language=tl, is_stand_in=True)


def unavailable(name: str) -> Unavailable:
    """A stand-in for ``name`` (a kernel module or class) that says, when used, that Triton is missing."""
    return Unavailable(name)
