"""Elementwise activations (any shape); each backward receives the forward's output ``y``.

LLVM cannot vectorise a call to libm's ``exp``, so float32 sigmoid uses its own ``exp``
(Cephes' expf: range reduction by ln 2, a degree-5 polynomial, and 2**n built from the exponent
bits), accurate to about 2 ulp. float64 keeps ``np.exp`` for its 1e-10 tolerance.
"""
from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

_FAST = {"contract", "nsz", "arcp"}  # no reassociation, NaN/inf kept: results stay exact enough


@intrinsic
def _int32_bits_as_float32(typingctx, bits):
    """Reinterpret an int32's bits as a float32 (a no-op move between registers)."""
    sig = types.float32(types.int32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return sig, codegen


_F = np.float32
_LOG2E, _LN2_HI, _LN2_LO = _F(1.44269504088896341), _F(0.693359375), _F(-2.12194440e-4)
_EXP_MIN, _EXP_MAX = _F(-87.3), _F(88.3)  # exp stays a finite, normal float32 in between
_P0, _P1, _P2 = _F(1.9875691500e-4), _F(1.3981999507e-3), _F(8.3334519073e-3)
_P3, _P4, _P5 = _F(4.1665795894e-2), _F(1.6666665459e-1), _F(5.0000001201e-1)
_ONE, _HALF = _F(1.0), _F(0.5)


@njit(cache=True, fastmath=_FAST, inline="always")
def _exp_f32(x):
    x = min(max(x, _EXP_MIN), _EXP_MAX)
    n = np.floor(x * _LOG2E + _HALF)
    r = x - n * _LN2_HI - n * _LN2_LO
    p = ((((_P0 * r + _P1) * r + _P2) * r + _P3) * r + _P4) * r + _P5
    p = p * r * r + r + _ONE
    return p * _int32_bits_as_float32((np.int32(n) + np.int32(127)) << np.int32(23))


SIGMOID, RELU, TANH = 0, 1, 2  # one kernel per direction and dtype serves all three (compile time)

# The scalar formulas, each defined once: the elementwise kernels below and the fused convolution
# kernels (conv_fused.py) inline them under the same fastmath flags, so both give the same bits.


@njit(cache=True, fastmath=_FAST, inline="always")
def sigmoid_f32(v):
    """float32 sigmoid through the vectorisable exp; NaN in, NaN out. Compile with _FAST."""
    s = _ONE / (_ONE + _exp_f32(-v))
    return s if v == v else v


@njit(cache=True, inline="always")
def activate(v, op, zero, one):
    """op(v), with zero and one of v's type; float32 sigmoid has :func:`sigmoid_f32`. Compile
    without fastmath."""
    if op == SIGMOID:  # no exp ever overflows
        if v >= zero:
            return one / (one + np.exp(-v))
        e = np.exp(v)
        return e / (one + e)
    if op == RELU:
        return zero if v < zero else v  # NaN stays NaN, as in torch
    return np.tanh(v)


@njit(cache=True, fastmath=_FAST, inline="always")
def gradient(g, v, op, zero, one):
    """The gradient of op's input from g, the gradient of its output v (zero and one of v's type:
    a bare 1 would make Numba compute in float64). Compile with _FAST."""
    if op == SIGMOID:
        return g * v * (one - v)
    if op == RELU:
        return zero if v <= zero else g  # a NaN y passes the gradient, as in torch
    return g * (one - v * v)


@njit(parallel=True, cache=True, fastmath=_FAST)
def _sigmoid_f32(x, y):
    for i in prange(x.size):
        y[i] = sigmoid_f32(x[i])


@njit(parallel=True, cache=True)
def _forward(x, y, op):
    """y = op(x); the branch is loop-invariant, so LLVM moves it out of the loop."""
    zero, one = x.dtype.type(0), x.dtype.type(1)
    for i in prange(x.size):
        y[i] = activate(x[i], op, zero, one)


@njit(parallel=True, cache=True, fastmath=_FAST)
def _backward(gy, y, gx, op):
    """gx from gy and the forward's output y."""
    zero, one = gy.dtype.type(0), gy.dtype.type(1)
    for i in prange(gy.size):
        gx[i] = gradient(gy[i], y[i], op, zero, one)


# The same three loops for small arrays, on the calling thread: waking a second thread costs
# more than it saves there (far more when the other core is busy with another process), and
# even a parallel kernel told to use one thread pays ~5 us to switch the count and back. They
# are separate functions because Numba's cache does not tell apart two compilations of one
# function with different flags. error_model="numpy", as inside prange: Python's, which checks
# each division for a zero divisor, keeps LLVM from vectorising the loop (7x slower).


@njit(cache=True, fastmath=_FAST, error_model="numpy")
def _sigmoid_f32_serial(x, y):
    for i in range(x.size):
        y[i] = sigmoid_f32(x[i])


@njit(cache=True, error_model="numpy")
def _forward_serial(x, y, op):
    zero, one = x.dtype.type(0), x.dtype.type(1)
    for i in range(x.size):
        y[i] = activate(x[i], op, zero, one)


@njit(cache=True, fastmath=_FAST, error_model="numpy")
def _backward_serial(gy, y, gx, op):
    zero, one = gy.dtype.type(0), gy.dtype.type(1)
    for i in range(gy.size):
        gx[i] = gradient(gy[i], y[i], op, zero, one)


# Elements below which a kernel runs on the calling thread alone. On this project's 2-core VM a
# launch that wakes the sleeping second thread costs 60-100 us, so loops of a few operations per
# element (relu either way, every backward) run serial up to 512k elements (relu on 295k took
# 28 us serial and 72-100 parallel, sigmoid backward on 410k 69 and 105; on 1.2M elements coming
# from memory, one thread's bandwidth lost); float32 sigmoid too (serial broke even near 400k).
# exp-heavy loops that LLVM cannot vectorise (tanh, float64 sigmoid) split from torch's grain size.
SERIAL_BELOW = 1 << 15
CHEAP_SERIAL_BELOW = 1 << 19
SIGMOID_F32_SERIAL_BELOW = 1 << 19


def _pick(parallel, serial, size, serial_below):
    """The kernel for an array of ``size`` elements."""
    return serial if size < serial_below or numba.get_num_threads() == 1 else parallel


# ascontiguousarray costs nothing on the C-contiguous arrays of the contract, and keeps a stray
# strided view from compiling a new signature (or from reshape(-1) silently copying).
def _unary(x, op):
    x = np.ascontiguousarray(x)
    y = np.empty(x.shape, x.dtype)
    if op == SIGMOID and x.dtype == np.float32:
        _pick(_sigmoid_f32, _sigmoid_f32_serial, x.size, SIGMOID_F32_SERIAL_BELOW)(x.reshape(-1), y.reshape(-1))
    else:
        serial_below = CHEAP_SERIAL_BELOW if op == RELU else SERIAL_BELOW
        _pick(_forward, _forward_serial, x.size, serial_below)(x.reshape(-1), y.reshape(-1), op)
    return y


def _binary(gy, y, op):
    gy, y = np.ascontiguousarray(gy), np.ascontiguousarray(y)
    gx = np.empty(gy.shape, gy.dtype)
    _pick(_backward, _backward_serial, gy.size, CHEAP_SERIAL_BELOW)(gy.reshape(-1), y.reshape(-1), gx.reshape(-1), op)
    return gx


def sigmoid_forward(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x))."""
    return _unary(x, SIGMOID)


def sigmoid_backward(gy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """gx = gy * y * (1 - y)."""
    return _binary(gy, y, SIGMOID)


def relu_forward(x: np.ndarray) -> np.ndarray:
    """max(x, 0); NaN stays NaN."""
    return _unary(x, RELU)


def relu_backward(gy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """gx = 0 where y <= 0, else gy (also where y is NaN, as torch's threshold_backward)."""
    return _binary(gy, y, RELU)


def tanh_forward(x: np.ndarray) -> np.ndarray:
    """tanh(x)."""
    return _unary(x, TANH)


def tanh_backward(gy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """gx = gy * (1 - y**2)."""
    return _binary(gy, y, TANH)
