"""Checks on Triton kernels that run in Triton's interpreter (``TRITON_INTERPRET=1``, CPU tensors).

**Loads and stores out of bounds.** A tiled kernel addresses whole tiles, and the last tile of a
row or column hangs over the tensor's edge; masks switch those lanes off. A lane left on past
the end reads (or writes) whatever memory lies there. On a GPU that may fault or may not; in the
interpreter it silently reads host memory. And it often changes no result: in a matmul, the rows
of ``X`` past ``M`` only feed rows of ``Y`` that the store's mask drops, so a kernel without the
row mask on its loads gives the right ``Y`` and passes every comparison of values.
:func:`in_bounds` makes that mistake visible::

    with interpret_check.in_bounds():
        kernel[grid](X, W, Y, ...)

While the block runs, every ``tl.load``, ``tl.store`` and atomic of a kernel launched in the
interpreter is checked *before* it happens: each lane its mask leaves on (every lane, without a
mask) must address the memory of a tensor argument of that launch, and all lanes of one access
the memory of the same one (a tensor's memory is the span of its own elements, not of the storage
it may be a view of). Otherwise :class:`OutOfBounds` is raised, naming the kernel, the program,
the source line, the argument and the offending element offsets. A block in which no kernel ran
in the interpreter raises too: a compiled kernel (a GPU without ``TRITON_INTERPRET=1``) cannot
be checked here, and the check never passes by seeing nothing.

**Library device functions.** :func:`own_kernel_work` is :func:`course_lib.grading.own_work` for
``@triton.jit`` device functions: while open, a kernel running in the interpreter that calls one
of them gets a NotImplementedError that says the exercise asks for that work.

**How, and which Triton.** The interpreter runs each load, store and atomic through methods of one
object, ``triton.runtime.interpreter.interpreter_builder`` (``create_masked_load``,
``create_masked_store``, ``create_atomic_rmw``, ``create_atomic_cas``; an unmasked ``tl.load`` is
a masked one with every lane on), and ``GridExecutor._init_args_hst`` gives it the host copies of
a launch's arguments, whose ``data_ptr`` become the kernel's pointers. :func:`_hook_interpreter`
is the only code here that touches those internals: it checks that they are what it expects
(written against Triton 3.6 and 3.7), puts wrappers in place for the span of the block and restores
the originals. On first use a small probe kernel checks that each kind of access reaches the
wrappers with the addresses and masks expected; if anything differs (another Triton version),
:class:`InterpreterMismatch` is raised instead of a check that sees nothing.
"""
from __future__ import annotations

import inspect
import linecache
import os
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

try:  # Triton is Linux-only; this module imports without it and refuses when used
    import triton
    import triton.language as tl  # the probe kernel's globals must hold triton.language
except ImportError:  # pragma: no cover - exercised where Triton cannot be installed
    triton = tl = None

__all__ = ["OutOfBounds", "InterpreterMismatch", "in_bounds", "own_kernel_work"]

SHOWN = 3  # offending element offsets spelled out in a message (and the last)


class OutOfBounds(AssertionError):
    """A load, store or atomic of a kernel in the interpreter addressed memory outside its tensor arguments."""


class InterpreterMismatch(RuntimeError):
    """The installed Triton's interpreter is not built the way :func:`in_bounds` expects: it refuses to check."""


@dataclass(frozen=True)
class _Region:
    """The memory of one tensor argument of a launch: bytes [lo, hi)."""

    name: str  # the kernel's parameter name (``X_ptr``; ``descs[1]`` inside a tuple)
    lo: int
    hi: int
    base: int  # data_ptr(): element offsets are counted from here
    itemsize: int
    shape: tuple
    strides: tuple
    dtype: str

    def describe(self) -> str:
        return f"{self.name} ({self.dtype} {list(self.shape)}, {int(np.prod(self.shape, dtype=np.int64))} elements)"


def _regions_of(name: str, value) -> list[_Region]:
    """The tensor arguments inside one kernel argument (a tensor, a reinterpreted one, a tuple, a descriptor)."""
    if isinstance(value, tuple):
        return [r for i, v in enumerate(value) for r in _regions_of(f"{name}[{i}]", v)]
    if not hasattr(value, "untyped_storage"):  # triton's TensorWrapper (reinterpret) and TensorDescriptor: .base
        return _regions_of(name, value.base) if hasattr(value, "base") else []
    itemsize, base = value.element_size(), value.data_ptr()
    low = sum(min(0, (size - 1) * stride) for size, stride in zip(value.shape, value.stride()))
    high = sum(max(0, (size - 1) * stride) for size, stride in zip(value.shape, value.stride()))
    lo, hi = (base, base) if value.numel() == 0 else (base + low * itemsize, base + (high + 1) * itemsize)
    return [_Region(name, lo, hi, base, itemsize, tuple(value.shape), tuple(value.stride()),
                    str(value.dtype).replace("torch.", ""))]


class _Checker:
    """What one ``in_bounds`` block has seen: the current launch's tensor arguments, and the first violation."""

    def __init__(self):
        self.kernel = None
        self.regions: list[_Region] = []
        self.launches = 0
        self.accesses = 0
        self.violation: OutOfBounds | None = None

    # -- called by the hooks
    def on_launch(self, fn, args_hst, kwargs_hst) -> None:
        self.launches += 1
        self.kernel = getattr(fn, "__name__", "kernel")
        bound = inspect.getcallargs(fn, *args_hst, **kwargs_hst)
        self.regions = [r for name, value in bound.items() for r in _regions_of(name, value)]

    def on_access(self, what: str, ptrs, mask) -> None:
        self.accesses += 1
        if self.violation is not None:  # the kernel caught our error and went on: stop it again
            raise self.violation
        addresses = np.asarray(ptrs.data).astype(np.uint64, copy=False).reshape(-1)
        bits = ptrs.get_element_ty().primitive_bitwidth
        size = max(1, bits // 8)
        if mask is not None:
            on = np.broadcast_to(np.asarray(mask.data, dtype=bool), np.shape(ptrs.data)).reshape(-1)
            addresses = addresses[on]
        if addresses.size == 0:
            return
        lanes = addresses.astype(np.int64)  # user-space addresses are below 2**63
        inside = [(lanes >= r.lo) & (lanes + size <= r.hi) for r in self.regions]
        counts = [int(i.sum()) for i in inside]
        if any(c == lanes.size for c in counts):
            return
        self.violation = OutOfBounds(self._message(what, lanes, size, inside, counts))
        raise self.violation

    # -- the message
    def _home(self, lanes, counts) -> int | None:
        """The argument the access most likely meant: the one holding most of its lanes, else the nearest below."""
        if not self.regions:
            return None
        if max(counts) > 0:
            return int(np.argmax(counts))
        first = int(lanes.min())
        below = [(first - r.base, i) for i, r in enumerate(self.regions) if r.base <= first]
        if below:
            return min(below)[1]
        return min((r.base - first, i) for i, r in enumerate(self.regions))[1]

    def _message(self, what, lanes, size, inside, counts) -> str:
        where = _source_line(self.kernel)
        program = getattr(_interpreter_module(), "interpreter_builder", None)
        program = tuple(getattr(program, "grid_idx", ()) or ())
        head = f"{self.kernel}, program {program}{where}: {what}"
        home = self._home(lanes, counts)
        if home is None:
            return f"{head} addresses {lanes.size} lanes, and the launch has no tensor argument."
        region = self.regions[home]
        bad = ~inside[home]
        offsets = (lanes[bad] - region.base) // region.itemsize
        distinct = np.unique(offsets)
        shown = ", ".join(_index(int(o), region) for o in distinct[:SHOWN])
        more = f", ..., {_index(int(distinct[-1]), region)}" if distinct.size > SHOWN else ""
        low, high = int(offsets.min()), int(offsets.max())
        span = f"offset {low}" if low == high else f"offsets {low} to {high}"
        elsewhere = [self.regions[i].name for i, hits in enumerate(inside) if i != home and bool((hits & bad).any())]
        text = (f"{head} has {int(bad.sum())} of the {lanes.size} lanes its mask leaves on outside "
                f"{region.describe()}: element {span} (index {shown}{more}).")
        if elsewhere:
            text += (f" Some land in the memory of {', '.join(elsewhere)}: a pointer into {region.name} ran past its "
                     "edge into another tensor.")
        return text + (" Those lanes address memory that is not the tensor's: mask them off (every tl.load and "
                       "tl.store whose tile can hang over a tensor's edge needs mask=..., loads also other=...).")


def _index(offset: int, region: _Region) -> str:
    """An element offset as an index of the tensor ([3, 0] is one row past a [3, 96] tensor's last), when contiguous."""
    dims = range(len(region.shape))
    contiguous = list(region.strides) == [int(np.prod(region.shape[i + 1:], dtype=np.int64)) for i in dims]
    if not contiguous or len(region.shape) < 2 or offset < 0:
        return f"[{offset}]"
    index = []
    for extent in reversed(region.shape[1:]):
        index.append(offset % extent)
        offset //= extent
    return str([offset, *reversed(index)])


def _source_line(kernel: str | None) -> str:
    """', line N: `source`' of the kernel's frame on the stack (and of the device function it is in, if another)."""
    here = [__file__] + ([os.path.dirname(triton.__file__)] if triton else [])
    skip = tuple({p for path in here for p in (os.path.abspath(path), os.path.realpath(path))})
    frame, inner = sys._getframe(1), None
    while frame is not None:
        if not frame.f_code.co_filename.startswith(skip):
            inner = inner or frame
            if frame.f_code.co_name == kernel:
                break
        frame = frame.f_back
    found = frame or inner
    if found is None:
        return ""
    line = lambda f: f"line {f.f_lineno}: `{linecache.getline(f.f_code.co_filename, f.f_lineno).strip()}`"  # noqa: E731
    text = f", {line(found)}"
    if inner is not None and inner is not found:
        text += f" (in {inner.f_code.co_name}, {line(inner)})"
    return text


# ---------------------------------------------------------------- the interpreter's internals

def _interpreter_module():
    if triton is None:
        raise InterpreterMismatch("Triton is not installed here (it is Linux-only): no kernel can be checked.")
    try:
        from triton.runtime import interpreter
    except ImportError as err:
        raise InterpreterMismatch(f"triton {triton.__version__} has no triton.runtime.interpreter: {err}") from err
    return interpreter


# what each hooked method must take first (after self): the wrappers read these arguments by position
_EXPECTED = {
    "create_masked_load": ("ptrs", "mask"),
    "create_masked_store": ("ptrs", "value", "mask"),
    "create_atomic_rmw": ("rmwOp", "ptr", "val", "mask"),
    "create_atomic_cas": ("ptr", "cmp", "val"),
}


def _hook_interpreter(on_launch, on_access):
    """The one place that touches Triton's interpreter: wrap the builder's memory operations and the launch's
    argument set-up; returns a function that restores them. Raises InterpreterMismatch when they are not there
    or not shaped as expected (another Triton version), instead of wrapping nothing."""
    interpreter = _interpreter_module()
    version = getattr(triton, "__version__", "?")
    builder = getattr(interpreter, "interpreter_builder", None)
    builder_class = getattr(interpreter, "InterpreterBuilder", None)
    executor = getattr(interpreter, "GridExecutor", None)
    if builder_class is None or not isinstance(builder, builder_class) or executor is None:
        raise InterpreterMismatch(f"triton {version}: triton.runtime.interpreter has no interpreter_builder "
                                  "(an InterpreterBuilder) or no GridExecutor; interpret_check cannot hook it.")
    for name, first in _EXPECTED.items():
        method = getattr(builder_class, name, None)
        params = list(inspect.signature(method).parameters)[1:] if callable(method) else []
        if tuple(params[:len(first)]) != first:
            raise InterpreterMismatch(f"triton {version}: InterpreterBuilder.{name} takes {params}, interpret_check "
                                      f"expects {list(first)} first; it cannot check this Triton's loads and stores.")
        if name in vars(builder):
            raise InterpreterMismatch(f"interpreter_builder.{name} is already replaced (another in_bounds block, or "
                                      "another tool): interpret_check does not stack on it.")
    init_args = getattr(executor, "_init_args_hst", None)
    if not callable(init_args) or list(inspect.signature(init_args).parameters) != ["self", "args_dev", "kwargs"]:
        raise InterpreterMismatch(f"triton {version}: GridExecutor._init_args_hst is not (self, args_dev, kwargs); "
                                  "interpret_check cannot see a launch's tensor arguments.")

    def masked_load(ptrs, mask, *args, **kwargs):
        on_access("tl.load", ptrs, mask)
        return builder_class.create_masked_load(builder, ptrs, mask, *args, **kwargs)

    def masked_store(ptrs, value, mask, *args, **kwargs):
        on_access("tl.store", ptrs, mask)
        return builder_class.create_masked_store(builder, ptrs, value, mask, *args, **kwargs)

    def atomic_rmw(op, ptr, val, mask, *args, **kwargs):
        on_access("an atomic (tl.atomic_add, ...)", ptr, mask)
        return builder_class.create_atomic_rmw(builder, op, ptr, val, mask, *args, **kwargs)

    def atomic_cas(ptr, cmp, val, *args, **kwargs):
        on_access("tl.atomic_cas", ptr, None)
        return builder_class.create_atomic_cas(builder, ptr, cmp, val, *args, **kwargs)

    def launch(self, args_dev, kwargs):
        args_hst, kwargs_hst = init_args(self, args_dev, kwargs)
        on_launch(self.fn, args_hst, kwargs_hst)
        return args_hst, kwargs_hst

    wrappers = {"create_masked_load": masked_load, "create_masked_store": masked_store,
                "create_atomic_rmw": atomic_rmw, "create_atomic_cas": atomic_cas}
    for name, wrapper in wrappers.items():
        setattr(builder, name, wrapper)
    executor._init_args_hst = launch

    def restore():
        executor._init_args_hst = init_args
        for name in wrappers:
            vars(builder).pop(name, None)

    return restore


# ---------------------------------------------------------------- the probe: do the hooks see every access?

def _probe_kernel(src_ptr, dst_ptr):
    lanes = tl.arange(0, 8)
    a = tl.load(src_ptr + lanes)  # unmasked load: src[0:8]
    b = tl.load(src_ptr + 8 + lanes, mask=lanes < 4, other=0.0)  # masked load: src[8:12]
    tl.store(dst_ptr + lanes, a + b)  # unmasked store: dst[0:8]
    tl.store(dst_ptr + 8 + lanes, b, mask=lanes < 4)  # masked store: dst[8:12]
    tl.atomic_add(dst_ptr + lanes, a, mask=lanes < 2)  # dst[0:2] += src[0:2]


_PROBED: dict = {}  # triton version -> None once the probe passed
_LOCK = threading.Lock()


def _probe() -> None:
    """Run the probe kernel under the hooks once per process; InterpreterMismatch unless every access was seen."""
    import torch

    interpreter = _interpreter_module()
    version = getattr(triton, "__version__", "?")
    if version in _PROBED:
        return
    seen, launches = [], []

    def on_access(what, ptrs, mask):
        on = None if mask is None else np.broadcast_to(np.asarray(mask.data, bool), np.shape(ptrs.data))
        seen.append((what, np.asarray(ptrs.data).astype(np.uint64).reshape(-1).tolist(),
                     None if on is None else on.reshape(-1).tolist()))

    def on_launch(fn, args_hst, kwargs_hst):
        launches.append({k: v.data_ptr() for k, v in inspect.getcallargs(fn, *args_hst, **kwargs_hst).items()})

    src, dst = torch.arange(16, dtype=torch.float32), torch.zeros(16, dtype=torch.float32)
    restore = _hook_interpreter(on_launch, on_access)
    try:
        interpreter.InterpretedFunction(_probe_kernel)[(1,)](src, dst)
    except Exception as err:
        raise InterpreterMismatch(f"triton {version}: the probe kernel failed in the interpreter ({err!r}); "
                                  "interpret_check cannot vouch for its hooks.") from err
    finally:
        restore()
    s, d = src.data_ptr(), dst.data_ptr()
    at = lambda base, first: [base + 4 * (first + i) for i in range(8)]  # noqa: E731
    expected = [("tl.load", at(s, 0), [True] * 8), ("tl.load", at(s, 8), [True] * 4 + [False] * 4),
                ("tl.store", at(d, 0), [True] * 8), ("tl.store", at(d, 8), [True] * 4 + [False] * 4),
                ("an atomic (tl.atomic_add, ...)", at(d, 0), [True] * 2 + [False] * 6)]
    normalised = [(what, addr, on if on is not None else [True] * len(addr)) for what, addr, on in seen]
    values = [8.0, 11, 12, 14, 4, 5, 6, 7, 8, 9, 10, 11, 0, 0, 0, 0]  # a + b, then b, then += a on lanes 0 and 1
    if launches != [{"src_ptr": s, "dst_ptr": d}] or normalised != expected or dst.tolist() != values:
        raise InterpreterMismatch(
            f"triton {version}: the interpreter did not pass the probe kernel's loads and stores through the hooks "
            f"as expected (launches {launches}, accesses {[(w, len(a)) for w, a, _ in seen]}, result {dst.tolist()}); "
            "interpret_check refuses to check kernels it may not see.")
    _PROBED[version] = None


# ---------------------------------------------------------------- the public context managers

_ACTIVE = []  # the open in_bounds block's checker (at most one: the hooks are process-wide)


@contextmanager
def in_bounds():
    """While open, every load, store and atomic of a kernel launched in Triton's interpreter must address, in every
    lane its mask leaves on, the memory of one tensor argument of its launch; otherwise OutOfBounds (module
    docstring). Raises InterpreterMismatch on entry if this Triton's interpreter is not as expected, and on exit if
    no kernel ran in the interpreter inside the block."""
    with _LOCK:
        if _ACTIVE:
            raise RuntimeError("in_bounds() blocks do not nest (the hooks are process-wide): one is already open.")
        _probe()
        checker = _Checker()
        restore = _hook_interpreter(checker.on_launch, checker.on_access)
        _ACTIVE.append(checker)
    failed = False
    try:
        yield checker
    except BaseException as err:
        failed = True
        if checker.violation is not None and _caused_by(err, checker.violation):
            raise checker.violation.with_traceback(None) from None  # not the interpreter's repr() of it
        raise
    finally:
        _ACTIVE.clear()
        restore()
        if not failed:
            if checker.violation is not None:  # the code under the block caught it: still a failure
                raise checker.violation.with_traceback(None) from None
            if checker.launches == 0:
                raise InterpreterMismatch(
                    "No kernel ran in Triton's interpreter inside in_bounds(), so nothing was checked. Kernels run "
                    "in the interpreter when TRITON_INTERPRET=1 is set before they are defined (before triton and "
                    "the kernel's module are imported); a compiled kernel (a GPU) cannot be checked here.")


def _caused_by(err: BaseException, violation: BaseException) -> bool:
    seen = set()
    while err is not None and id(err) not in seen:
        if err is violation:
            return True
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return False


@contextmanager
def own_kernel_work(exercise: str, *device_functions):
    """While open, each of ``device_functions`` (the library's ``@triton.jit`` functions that do what the exercise
    asks) raises NotImplementedError when called: by a kernel running in the interpreter, or from Python.

    It changes the class of each function object for the span of the block (restored on exit, also when the block
    raises), so every reference to it is covered: a module attribute, a name imported into the notebook. A compiled
    kernel (``JITFunction``, a GPU without ``TRITON_INTERPRET=1``) inlines its device functions from their source,
    never through Python, so there is nothing to swap: those are left as they are (and calling one from Python
    raises anyway). Anything that is no Triton function raises TypeError."""
    swapped = []
    try:
        for function in device_functions:
            cls = type(function)
            if cls.__name__ == "JITFunction":
                continue
            if cls.__name__ != "InterpretedFunction" or not callable(getattr(function, "fn", None)):
                raise TypeError(f"own_kernel_work guards @triton.jit functions; {function!r} is a {cls.__name__}.")
            inner = function.fn
            message = (f"This exercise asks you to write {exercise} yourself, and your code called "
                       f"{inner.__module__}.{inner.__qualname__}, which does that work. Write it with triton.language "
                       "operations (tl.load, tl.store, tl.arange, ...) or plain Python; the notebook's first cell says "
                       "what graded cells may use.")

            def refuse(self, *args, _message=message, **kwargs):
                raise NotImplementedError(_message)

            function.__class__ = type(cls.__name__, (cls,), {"__call__": refuse, "__module__": cls.__module__})
            swapped.append((function, cls))
        yield
    finally:
        for function, cls in reversed(swapped):
            function.__class__ = cls
