"""Benchmark cases of the modern-CNN kernels at ResNet-18's shapes on FashionMNIST resized to 96
(batch 64): batch norm and ReLU after the stem (64x64x48x48) and in the last stage (64x512x3x3),
the stem's 3x3/2 max pooling, the global average pooling, and dropout at AlexNet's classifier
(64x4096). Like ``cases.py``: the raw Numba kernel next to the torch CPU op (dropout: the
engine's mask drawing included, as torch's includes its RNG).
"""
from __future__ import annotations

from typing import List

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.cases import DTYPE, Case, _rng
from kernels import numba_cpu as nb

STEM, LAST = (64, 64, 48, 48), (64, 512, 3, 3)


def _name(shape) -> str:
    return "x".join(map(str, shape))


def batch_norm_cases() -> List[Case]:
    cases = []
    for shape in (STEM, LAST):
        rng = _rng()
        x = rng.standard_normal(shape).astype(DTYPE)
        gy = rng.standard_normal(shape).astype(DTYPE)
        y = nb.relu_forward(x)
        C = shape[1]
        w, b = np.ones(C, DTYPE), np.zeros(C, DTYPE)
        x3, gy3 = x.reshape(shape[0], C, -1), gy.reshape(shape[0], C, -1)
        _, mean, var = nb.batch_norm_forward_train(x3, w, b, 1e-5)
        invstd = (1 / np.sqrt(var + 1e-5)).astype(DTYPE)
        tx, tgy, ty, tw, tb = (torch.from_numpy(a) for a in (x, gy, y, w, b))
        trm, trv = torch.zeros(C), torch.ones(C)
        _, tmean, tinvstd = torch.ops.aten.native_batch_norm(tx, tw, tb, trm.clone(), trv.clone(), True, 0.1, 1e-5)
        cases += [
            Case("batch_norm forward (train)", _name(shape), "",
                 lambda x3=x3, w=w, b=b: nb.batch_norm_forward_train(x3, w, b, 1e-5),
                 lambda tx=tx, tw=tw, tb=tb, C=C: F.batch_norm(tx, torch.zeros(C), torch.ones(C), tw, tb, True)),
            Case("batch_norm backward (train)", _name(shape), "",
                 lambda gy3=gy3, x3=x3, mean=mean, invstd=invstd, w=w: nb.batch_norm_backward(
                     gy3, x3, mean, invstd, w, True),
                 lambda tgy=tgy, tx=tx, tw=tw, tmean=tmean, tinvstd=tinvstd: torch.ops.aten.native_batch_norm_backward(
                     tgy, tx, tw, None, None, tmean, tinvstd, True, 1e-5, [True, True, True])),
            Case("relu forward", _name(shape), "", lambda x=x: nb.relu_forward(x), lambda tx=tx: torch.relu(tx)),
            Case("relu backward", _name(shape), "", lambda gy=gy, y=y: nb.relu_backward(gy, y),
                 lambda tgy=tgy, ty=ty: torch.ops.aten.threshold_backward(tgy, ty, 0)),
        ]
    return cases


def pooling_cases() -> List[Case]:
    x = _rng().standard_normal(STEM).astype(DTYPE)
    y, idx = nb.max_pool2d_forward(x, (3, 3), (2, 2), (1, 1), (1, 1), False)
    gy = _rng().standard_normal(y.shape).astype(DTYPE)
    tx, tgy = torch.from_numpy(x), torch.from_numpy(gy)
    _, tidx = F.max_pool2d(tx, 3, 2, 1, return_indices=True)
    g = _rng().standard_normal(LAST).astype(DTYPE)
    tg = torch.from_numpy(g)
    pooled_grad = torch.from_numpy(_rng().standard_normal(LAST[:2] + (1, 1)).astype(DTYPE))
    return [
        Case("max_pool2d forward", _name(STEM) + " k3 s2 p1", "",
             lambda: nb.max_pool2d_forward(x, (3, 3), (2, 2), (1, 1), (1, 1), False),
             lambda: F.max_pool2d(tx, 3, 2, 1)),
        Case("max_pool2d backward", _name(STEM) + " k3 s2 p1", "",
             lambda: nb.max_pool2d_backward(gy, idx, STEM[2:]),
             lambda: torch.ops.aten.max_pool2d_with_indices_backward(tgy, tx, [3, 3], [2, 2], [1, 1], [1, 1],
                                                                     False, tidx)),
        Case("adaptive_avg_pool2d forward", _name(LAST) + " -> 1x1", "",
             lambda: nb.adaptive_avg_pool2d_forward(g, (1, 1)), lambda: F.adaptive_avg_pool2d(tg, 1)),
        Case("adaptive_avg_pool2d backward", _name(LAST) + " -> 1x1", "",
             lambda: nb.adaptive_avg_pool2d_backward(pooled_grad.numpy(), LAST[2:]),
             lambda: torch.ops.aten._adaptive_avg_pool2d_backward(pooled_grad, tg)),
    ]


def dropout_cases() -> List[Case]:
    x = _rng().standard_normal((64, 4096)).astype(DTYPE)
    tx = torch.from_numpy(x)
    generator = np.random.default_rng(0)

    def engine_dropout():
        keep = (generator.random(x.shape) >= 0.5).astype(np.uint8)
        return nb.dropout_forward(x, keep, 2.0)

    return [Case("dropout forward (with the mask)", "64x4096 p0.5", "", engine_dropout,
                 lambda: F.dropout(tx, 0.5, True))]


def modern_cases() -> List[Case]:
    return batch_norm_cases() + pooling_cases() + dropout_cases()
