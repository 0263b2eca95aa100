"""course_lib.interpret_check: out-of-bounds loads and stores of kernels in Triton's interpreter, and guarded device
functions. Runs where the kernels are interpreted (tests/conftest.py sets TRITON_INTERPRET=1 without a GPU; with one,
run these with TRITON_INTERPRET=1 set)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

triton = pytest.importorskip("triton")
tl = pytest.importorskip("triton.language")

from course_lib import interpret_check  # noqa: E402
from course_lib.interpret_check import InterpreterMismatch, OutOfBounds, in_bounds, own_kernel_work  # noqa: E402


@triton.jit
def scale_rows(X_ptr, Y_ptr, M, K, stride_xm, MASK_ROWS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr):
    """Y[rows, :] = 2 X[rows, :] for one [BLOCK_M, BLOCK_K] tile; the load's row mask only when MASK_ROWS."""
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)[:, None]
    k = tl.arange(0, BLOCK_K)[None, :]
    if MASK_ROWS:
        x = tl.load(X_ptr + rows * stride_xm + k, mask=(rows < M) & (k < K), other=0.0)
    else:
        x = tl.load(X_ptr + rows * stride_xm + k, mask=k < K, other=0.0)  # rows past M: only dropped outputs
    tl.store(Y_ptr + rows * K + k, 2 * x, mask=(rows < M) & (k < K))


@triton.jit
def fill(Y_ptr, n, BLOCK: tl.constexpr, MASKED: tl.constexpr):
    i = tl.arange(0, BLOCK)
    if MASKED:
        tl.store(Y_ptr + i, tl.zeros((BLOCK,), tl.float32) + 7.0, mask=i < n)
    else:
        tl.store(Y_ptr + i, tl.zeros((BLOCK,), tl.float32) + 7.0)


@triton.jit
def add_halves(A_ptr, Y_ptr, BLOCK: tl.constexpr):
    i = tl.arange(0, BLOCK)
    tl.store(Y_ptr + i, tl.load(A_ptr + i) + 1.0)  # reads BLOCK elements of A: its own, then past its end


@triton.jit
def counted(Y_ptr, C_ptr, n, BLOCK: tl.constexpr):
    i = tl.arange(0, BLOCK)
    tl.atomic_add(C_ptr + i, tl.zeros((BLOCK,), tl.int32) + 1, mask=i < n)
    tl.atomic_add(Y_ptr + i, tl.zeros((BLOCK,), tl.float32) + 1.0)


@triton.jit
def twice(x):
    return 2 * x


@triton.jit
def uses_twice(X_ptr, Y_ptr, BLOCK: tl.constexpr):
    i = tl.arange(0, BLOCK)
    tl.store(Y_ptr + i, twice(tl.load(X_ptr + i)))


if type(scale_rows).__name__ != "InterpretedFunction":
    pytest.skip("the kernels are compiled: set TRITON_INTERPRET=1 (before triton is imported) to run these",
                allow_module_level=True)


def launch_scale_rows(X, mask_rows, block_m=16, block_k=32):
    M, K = X.shape
    Y = torch.full((M, K), float("nan"))
    scale_rows[(triton.cdiv(M, block_m),)](X, Y, M, K, X.stride(0), MASK_ROWS=mask_rows, BLOCK_M=block_m,
                                           BLOCK_K=block_k)
    return Y


def test_a_correctly_masked_kernel_passes_and_the_hooks_come_off():
    before = {name: getattr(interpret_check._interpreter_module().interpreter_builder, name)
              for name in interpret_check._EXPECTED}
    X = torch.randn(3, 20)
    wide = torch.randn(5, 28)
    with in_bounds() as seen:
        assert torch.equal(launch_scale_rows(X, True), 2 * X)
        assert torch.equal(launch_scale_rows(wide[:, :20], True, block_m=2), 2 * wide[:, :20])  # a strided view
    assert seen.launches == 2 and seen.accesses > 0 and seen.violation is None
    builder = interpret_check._interpreter_module().interpreter_builder
    assert all(getattr(builder, name) == method for name, method in before.items())
    assert not any(name in vars(builder) for name in before), "the wrappers are removed on exit"
    launch_scale_rows(X, False)  # unchecked again outside the block


def test_a_load_without_its_row_mask_fails_though_the_values_are_right():
    X = torch.randn(16, 20)[:3]  # rows 3 to 15 exist in memory (so the unchecked run reads no stranger's), not in X
    assert torch.equal(launch_scale_rows(X, False), 2 * X)  # the mistake is invisible in the values
    with pytest.raises(OutOfBounds) as caught:
        with in_bounds():
            launch_scale_rows(X, False)
    message = str(caught.value)
    for part in ("scale_rows", "tl.load", "X_ptr", "float32 [3, 20]", "element offsets 60 to 319", "[3, 0]",
                 "mask=k < K"):
        assert part in message, (part, message)


def test_a_store_past_the_end_is_stopped_before_it_writes():
    buffer = torch.zeros(16)
    view = buffer[:10]
    with pytest.raises(OutOfBounds, match=r"tl.store has 6 of the 16 lanes .* outside Y_ptr \(float32 \[10\]"):
        with in_bounds():
            fill[(1,)](view, 10, BLOCK=16, MASKED=False)
    assert torch.equal(buffer, torch.zeros(16)), "the check runs before the store: nothing was written"
    with in_bounds():
        fill[(1,)](view, 10, BLOCK=16, MASKED=True)
    assert torch.equal(buffer, torch.tensor([7.0] * 10 + [0.0] * 6))


def test_a_pointer_that_runs_into_another_arguments_memory_fails():
    storage = torch.zeros(16)
    A, Y = storage[:8], storage[8:]  # Y's memory follows A's: every lane is inside *some* argument
    with pytest.raises(OutOfBounds, match="A_ptr.*Some land in the memory of Y_ptr"):
        with in_bounds():
            add_halves[(1,)](A, Y, BLOCK=16)


def test_atomics_are_checked():
    Y, C = torch.zeros(8), torch.zeros(8, dtype=torch.int32)
    with in_bounds():
        counted[(1,)](Y, C, 5, BLOCK=8)
    assert C.tolist() == [1] * 5 + [0] * 3 and Y.tolist() == [1.0] * 8
    with pytest.raises(OutOfBounds, match="atomic"):
        with in_bounds():
            counted[(1,)](Y[:4], C, 5, BLOCK=8)


def test_it_refuses_when_nothing_ran_in_the_interpreter_and_does_not_nest():
    with pytest.raises(InterpreterMismatch, match="No kernel ran in Triton's interpreter"):
        with in_bounds():
            pass
    with pytest.raises(RuntimeError, match="do not nest"):
        with in_bounds():
            with in_bounds():
                pass
    with in_bounds():  # still usable afterwards
        launch_scale_rows(torch.randn(2, 4), True)


def test_it_refuses_an_interpreter_built_otherwise(monkeypatch):
    interpreter = interpret_check._interpreter_module()

    def renamed(self, pointers, mask, other, cache_modifier, eviction_policy, is_volatile):
        raise AssertionError("never called")

    monkeypatch.setattr(interpreter.InterpreterBuilder, "create_masked_load", renamed)
    with pytest.raises(InterpreterMismatch, match="create_masked_load takes"):
        with in_bounds():
            pass


def test_the_probe_refuses_an_interpreter_whose_loads_bypass_the_hooks(monkeypatch):
    interpreter = interpret_check._interpreter_module()
    original = interpreter.InterpreterBuilder.create_masked_load

    def create_load(self, ptr, _0, _1, is_volatile):  # an unmasked load that skips create_masked_load
        every_lane = interpreter.TensorHandle(np.ones_like(ptr.data, dtype=bool), tl.int1)
        return original(self, ptr, every_lane, None, _0, _1, is_volatile)

    monkeypatch.setattr(interpreter.InterpreterBuilder, "create_load", create_load)
    monkeypatch.setattr(interpret_check, "_PROBED", {})
    with pytest.raises(InterpreterMismatch, match="probe kernel"):
        with in_bounds():
            pass
    monkeypatch.undo()
    with in_bounds():  # the real interpreter passes the probe again
        launch_scale_rows(torch.randn(2, 4), True)


def test_own_kernel_work_refuses_a_device_function_and_restores_it():
    X, Y = torch.arange(8.0), torch.zeros(8)
    with own_kernel_work("my_kernel", twice):
        with pytest.raises(Exception, match="write my_kernel yourself.*twice"):
            uses_twice[(1,)](X, Y, BLOCK=8)
        with pytest.raises(NotImplementedError):
            twice(X)
    uses_twice[(1,)](X, Y, BLOCK=8)
    assert torch.equal(Y, 2 * X)
    with pytest.raises(TypeError):
        with own_kernel_work("my_kernel", len):
            pass
