"""The benchmarked ops: each a raw Numba kernel call next to the torch (CPU) op it mirrors.

Shared by ``benchmarks/test_bench_ops.py`` (pytest-benchmark) and ``python -m benchmarks.compare``.
Every case holds ready inputs, so timing measures the kernel alone: ``engine()`` and ``torch()``
are zero-argument callables; ``flops`` is the useful floating-point work of one call (0 when
not meaningful). Shapes are LeNet's at batch 256 plus two larger convolutions (batch 64, 32x32).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List

import numpy as np
import torch
import torch.nn.functional as F

from kernels import numba_cpu as nb

DTYPE = np.float32


@dataclass
class Case:
    op: str
    shape: str
    algo: str
    engine: Callable[[], object]
    torch: Callable[[], object]
    flops: float = 0.0


@dataclass(frozen=True)
class ConvShape:
    name: str
    n: int
    c: int
    o: int
    hw: int
    k: int
    p: int

    def describe(self) -> str:
        return f"{self.name} {self.n}x{self.c}x{self.hw}x{self.hw} -> {self.o} k{self.k} p{self.p}"


CONV_SHAPES = [
    ConvShape("lenet conv1", 256, 1, 6, 28, 5, 2),
    ConvShape("lenet conv2", 256, 6, 16, 14, 5, 0),
    ConvShape("conv 3->64", 64, 3, 64, 32, 3, 1),
    ConvShape("conv 64->64", 64, 64, 64, 32, 3, 1),
]


def _rng():
    return np.random.default_rng(0)


def conv_cases(shape: ConvShape, algos=("direct", "im2col")) -> List[Case]:
    rng = _rng()
    x = rng.standard_normal((shape.n, shape.c, shape.hw, shape.hw)).astype(DTYPE)
    w = (rng.standard_normal((shape.o, shape.c, shape.k, shape.k)) * 0.1).astype(DTYPE)
    b = rng.standard_normal(shape.o).astype(DTYPE)
    one, pad = (1, 1), (shape.p, shape.p)
    out = shape.hw + 2 * shape.p - shape.k + 1
    gy = rng.standard_normal((shape.n, shape.o, out, out)).astype(DTYPE)
    flops = 2.0 * shape.n * shape.o * shape.c * shape.k * shape.k * out * out
    tx, tw, tb, tgy = (torch.from_numpy(a) for a in (x, w, b, gy))

    def torch_backward(mask):
        return lambda: torch.ops.aten.convolution_backward(
            tgy, tx, tw, [shape.o], [1, 1], list(pad), [1, 1], False, [0, 0], 1, mask)

    hw, khw = (shape.hw, shape.hw), (shape.k, shape.k)

    # each kernel is called alone, without the ``saved`` layouts a training step's forward hands to
    # backward, so it pays for its own copies
    cases = []
    for algo in algos:
        cases += [
            Case("conv2d forward", shape.describe(), algo,
                 lambda a=algo: nb.conv2d_forward(x, w, b, one, pad, one, a),
                 lambda: F.conv2d(tx, tw, tb, padding=shape.p), flops),
            Case("conv2d backward-input", shape.describe(), algo,
                 lambda a=algo: nb.conv2d_backward_input(gy, w, hw, one, pad, one, a),
                 torch_backward([True, False, False]), flops),
            Case("conv2d backward-weight", shape.describe(), algo,
                 lambda a=algo: nb.conv2d_backward_weight(gy, x, khw, one, pad, one, a),
                 torch_backward([False, True, False]), flops),
        ]
    return cases


def pool_cases() -> List[Case]:
    cases = []
    for shape in [(256, 6, 28, 28), (256, 16, 10, 10)]:
        x = _rng().standard_normal(shape).astype(DTYPE)
        y = nb.avg_pool2d_forward(x, (2, 2), (2, 2), (0, 0), False, True)
        gy = _rng().standard_normal(y.shape).astype(DTYPE)
        tx, tgy = torch.from_numpy(x), torch.from_numpy(gy)
        name = "x".join(map(str, shape)) + " k2 s2"
        cases += [
            Case("avg_pool2d forward", name, "",
                 lambda x=x: nb.avg_pool2d_forward(x, (2, 2), (2, 2), (0, 0), False, True),
                 lambda tx=tx: F.avg_pool2d(tx, 2)),
            Case("avg_pool2d backward", name, "",
                 lambda gy=gy, s=shape: nb.avg_pool2d_backward(gy, s[2:], (2, 2), (2, 2), (0, 0), False, True),
                 lambda tgy=tgy, tx=tx: torch.ops.aten.avg_pool2d_backward(
                     tgy, tx, [2, 2], [2, 2], [0, 0], False, True, None)),
        ]
    return cases


def activation_cases() -> List[Case]:
    cases = []
    for shape in [(256, 6, 28, 28), (256, 16, 10, 10), (256, 120)]:
        x = _rng().standard_normal(shape).astype(DTYPE)
        y = nb.sigmoid_forward(x)
        gy = _rng().standard_normal(shape).astype(DTYPE)
        tx, ty, tgy = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(gy)
        name = "x".join(map(str, shape))
        cases += [
            Case("sigmoid forward", name, "", lambda x=x: nb.sigmoid_forward(x), lambda tx=tx: torch.sigmoid(tx)),
            Case("sigmoid backward", name, "", lambda gy=gy, y=y: nb.sigmoid_backward(gy, y),
                 lambda tgy=tgy, ty=ty: torch.ops.aten.sigmoid_backward(tgy, ty)),
        ]
    return cases


def linear_and_loss_cases() -> List[Case]:
    """The engine's linear layer is a NumPy matmul (BLAS); the loss is a Numba kernel."""
    rng = _rng()
    cases = []
    for n_in, n_out in [(400, 120), (120, 84), (84, 10)]:
        x = rng.standard_normal((256, n_in)).astype(DTYPE)
        w = rng.standard_normal((n_out, n_in)).astype(DTYPE)
        b = rng.standard_normal(n_out).astype(DTYPE)
        tx, tw, tb = (torch.from_numpy(a) for a in (x, w, b))
        cases.append(Case("linear forward (numpy matmul)", f"256x{n_in} -> {n_out}", "",
                          lambda x=x, w=w, b=b: x @ w.T + b, lambda tx=tx, tw=tw, tb=tb: F.linear(tx, tw, tb),
                          2.0 * 256 * n_in * n_out))
    z = rng.standard_normal((256, 10)).astype(DTYPE)
    t = rng.integers(0, 10, 256).astype(np.int64)
    _, probs = nb.softmax_cross_entropy_forward(z, t)
    g = np.full(256, 1 / 256, DTYPE)
    tz, tt = torch.from_numpy(z), torch.from_numpy(t)
    tzg = tz.clone().requires_grad_()
    tloss = F.cross_entropy(tzg, tt, reduction="none")
    tg = torch.from_numpy(g)
    cases += [
        Case("softmax-CE forward", "256x10", "", lambda: nb.softmax_cross_entropy_forward(z, t),
             lambda: F.cross_entropy(tz, tt, reduction="none")),
        Case("softmax-CE backward", "256x10", "", lambda: nb.softmax_cross_entropy_backward(g, probs, t),
             lambda: torch.autograd.grad(tloss, tzg, tg, retain_graph=True)),
    ]
    return cases


def fused_cases() -> List[Case]:
    """LeNet's two conv -> sigmoid -> avg_pool2d(2) blocks as the one fused kernel each way, against
    torch's three ops (backward: autograd through them, the gradients a training step needs)."""
    cases = []
    for shape, needs_gx in ((CONV_SHAPES[0], False), (CONV_SHAPES[1], True)):
        rng = _rng()
        x = rng.standard_normal((shape.n, shape.c, shape.hw, shape.hw)).astype(DTYPE)
        w = (rng.standard_normal((shape.o, shape.c, shape.k, shape.k)) * 0.1).astype(DTYPE)
        b = rng.standard_normal(shape.o).astype(DTYPE)
        pad = (shape.p, shape.p)
        y, saved, _ = nb.fused_conv_act_pool_forward(x, w, b, pad, "sigmoid", True)
        gy = rng.standard_normal(y.shape).astype(DTYPE)
        tgy = torch.from_numpy(gy)
        out = shape.hw + 2 * shape.p - shape.k + 1
        conv_flops = 2.0 * shape.n * shape.o * shape.c * shape.k * shape.k * out * out
        tx = torch.from_numpy(x).requires_grad_(needs_gx)
        tw, tb = (torch.from_numpy(a).requires_grad_() for a in (w, b))
        ty = F.avg_pool2d(torch.sigmoid(F.conv2d(tx, tw, tb, padding=shape.p)), 2)
        inputs = (tx, tw, tb) if needs_gx else (tw, tb)
        name = shape.describe() + " +sigmoid+pool"
        needs = (needs_gx, True, True)
        cases += [
            Case("fused block forward", name, "fused",
                 lambda x=x, w=w, b=b, pad=pad: nb.fused_conv_act_pool_forward(x, w, b, pad, "sigmoid", True),
                 lambda tx=tx, tw=tw, tb=tb, p=shape.p: F.avg_pool2d(torch.sigmoid(F.conv2d(tx, tw, tb, padding=p)),
                                                                     2).detach(), conv_flops),
            Case("fused block backward", name, "fused",
                 lambda gy=gy, w=w, saved=saved, hw=x.shape[2:], pad=pad, needs=needs:
                     nb.fused_conv_act_pool_backward(gy, w, saved, hw, pad, "sigmoid", needs),
                 lambda ty=ty, inputs=inputs, tgy=tgy:
                     torch.autograd.grad(ty, inputs, tgy, retain_graph=True),
                 conv_flops * (2 if needs_gx else 1)),
        ]
    return cases


def all_cases(large: bool = True) -> List[Case]:
    shapes = CONV_SHAPES if large else CONV_SHAPES[:2]
    cases = [c for s in shapes for c in conv_cases(s)]
    return cases + fused_cases() + pool_cases() + activation_cases() + linear_and_loss_cases()
