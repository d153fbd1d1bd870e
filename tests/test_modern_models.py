"""engine.models against torch: with the same weights, the same outputs, input and parameter
gradients and running statistics on a small batch.

Torch's twin of each model is built from the model's own file with its imports switched to torch
(``import torch as engine``, ``from torch import nn``, ...): the zoo's files import nothing else,
which is the "only the imports changed" promise of the chapters themselves. The architecture
against the book is checked by the parameter counts below.
"""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import torch
from conftest import FLOAT32, FLOAT64, DType, assert_close, engine_tensor

import engine
from engine import backend as engine_backend
from engine import models

ROOT = pathlib.Path(__file__).resolve().parents[1]

SWAPS = {"from engine.nn import functional as F": "from torch.nn import functional as F",
         "from engine import nn": "from torch import nn", "import engine\n": "import torch as engine\n"}


def torch_twin(module: str, function: str, **kwargs):
    path = ROOT / "engine" / "models" / f"{module}.py"
    source = path.read_text()
    for old, new in SWAPS.items():
        source = source.replace(old, new)
    assert "from engine" not in source and "import engine\n" not in source, f"{path} imports more than engine/nn/F"
    namespace: dict = {}
    exec(compile(source, str(path), "exec"), namespace)
    return namespace[function](**kwargs)


# name: (file, input side, eval mode (dropout models: the identity), parameters at that size with 10 classes)
MODELS = {
    "lenet_bn": ("lenet_bn", 28, False, 44_878),
    "alexnet": ("alexnet", 67, True, 21_598_922),
    "vgg11": ("vgg", 32, True, 28_142_858),
    "nin": ("nin", 67, True, 1_992_166),
    "googlenet": ("googlenet", 32, False, 5_977_530),
    "resnet18": ("resnet", 32, False, 11_178_378),
    "densenet": ("densenet", 32, False, 758_226),
}


def _use(backend_name):
    if not engine_backend.is_available(backend_name):
        pytest.skip(f"backend {backend_name!r} is not available")
    previous = engine_backend.get_backend()
    engine.set_backend(backend_name)
    return previous


CASES = [(name, "numba", FLOAT64) for name in MODELS] + [("lenet_bn", "reference", FLOAT64),
                                                         ("lenet_bn", "numba", FLOAT32),
                                                         ("resnet18", "reference", FLOAT64)]


@pytest.mark.parametrize("name,backend_name,dtype", CASES, ids=[f"{n}-{b}-{d}" for n, b, d in CASES])
def test_zoo_model_matches_torch(name, backend_name, dtype):
    module, side, eval_mode, expected_count = MODELS[name]
    previous = _use(backend_name)
    try:
        _compare_with_torch(name, module, side, eval_mode, expected_count, dtype)
    finally:
        engine.set_backend(previous)


def _compare_with_torch(name, module, side, eval_mode, expected_count, dtype):
    torch.manual_seed(0)
    t_model = torch_twin(module, name).to(dtype.torch)
    e_model = getattr(models, name)().to(dtype.engine)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 1, side, side)).astype(dtype.np)
    labels = np.array([3, 7])
    with torch.no_grad(), engine.no_grad():  # materialise the lazy layers, without touching running statistics
        t_model.eval()(torch.from_numpy(x))
        e_model.eval()(engine_tensor(x))
    assert sum(p.numel() for p in e_model.parameters()) == expected_count
    e_model.load_state_dict({k: v.detach().numpy() for k, v in t_model.state_dict().items()})
    e_model.train(not eval_mode)
    t_model.train(not eval_mode)

    e_x, t_x = engine_tensor(x, requires_grad=True), torch.from_numpy(x).requires_grad_(True)
    e_y, t_y = e_model(e_x), t_model(t_x)
    assert_close(e_y, t_y, dtype, what=f"{name} output")
    engine.nn.functional.cross_entropy(e_y, engine.tensor(labels)).backward()
    torch.nn.functional.cross_entropy(t_y, torch.from_numpy(labels)).backward()
    # float32 gradients through several batch norms lose digits to cancellation (on torch's side too)
    tolerance = dtype if dtype is FLOAT64 else DType("float32", np.float32, rtol=1e-2, atol=1e-3)
    assert_close(e_x.grad, t_x.grad, tolerance, what=f"{name} input gradient")
    t_params = dict(t_model.named_parameters())
    for p_name, p in e_model.named_parameters():
        assert p.grad is not None, f"{name}: {p_name} got no gradient"
        assert_close(p.grad, t_params[p_name].grad, tolerance, what=f"{name} gradient of {p_name}")
    t_buffers = dict(t_model.named_buffers())
    for b_name, b in e_model.named_buffers():
        if b.dtype.kind == "f":
            assert_close(b, t_buffers[b_name], tolerance, what=f"{name} buffer {b_name}")
        else:
            assert int(b.item()) == int(t_buffers[b_name].item()), f"{name} buffer {b_name}"


def test_zoo_models_take_num_classes_and_document_their_input_size():
    for name in MODELS:
        fn = getattr(models, name)
        assert "Input (N, in_channels" in fn.__doc__, f"{name}'s docstring gives no input size"
    y = models.resnet18(num_classes=3)(engine.randn(2, 1, 32, 32))
    assert tuple(y.shape) == (2, 3)
