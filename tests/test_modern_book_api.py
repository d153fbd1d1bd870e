"""The API each PyTorch cell of d2l's two CNN chapters calls, in programs of our own.

Each program takes the library as arguments ``(torch, nn, F)`` and runs once with the engine
(``engine``, ``engine.nn``, ``engine.nn.functional``) and once with torch; their results must agree.
Inputs are deterministic (arange, ones, or arrays passed in), and where a lazy layer initialises
randomly the program overwrites the weights with given values, so both runs compute the same numbers.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch as real_torch
from conftest import corr2d

import engine

LIBRARIES = {"engine": (engine, engine.nn, engine.nn.functional),
             "torch": (real_torch, real_torch.nn, real_torch.nn.functional)}


def both(program, *args):
    """program's results (nested tuples of tensors, numbers, shapes) on the engine and on torch."""
    return [program(*LIBRARIES[name], *args) for name in ("engine", "torch")]


def assert_same(a, b, rtol=1e-5, atol=1e-6, path="result"):
    if isinstance(a, (tuple, list)) and not hasattr(a, "numel"):
        assert len(a) == len(b), f"{path}: {len(a)} items vs torch's {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, rtol, atol, f"{path}[{i}]")
        return
    if hasattr(a, "detach"):
        a, b = np.asarray(a.detach().cpu().numpy()), b.detach().cpu().numpy()
        assert a.shape == b.shape, f"{path}: shape {a.shape} vs torch's {b.shape}"
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=path)
    elif isinstance(a, float):
        assert a == pytest.approx(b, rel=rtol, abs=atol), f"{path}: {a!r} vs torch's {b!r}"
    else:
        assert a == b, f"{path}: {a!r} vs torch's {b!r}"


def test_7_2_convolutions_for_images():
    """corr2d by hand, edge detection, and learning the kernel with a LazyConv2d and .data updates."""
    def program(torch, nn, F):
        X = torch.ones((6, 8))
        X[:, 2:6] = 0
        K = torch.tensor([[1.0, -1.0]])
        Y = corr2d(torch, X, K)
        conv2d = nn.LazyConv2d(1, kernel_size=(1, 2), bias=False)
        Xb, Yb = X.reshape((1, 1, 6, 8)), Y.reshape((1, 1, 6, 7))
        conv2d(Xb)
        conv2d.weight.data[:] = torch.tensor([[[[0.3, 0.2]]]])
        losses = []
        for _ in range(10):
            Y_hat = conv2d(Xb)
            loss = (Y_hat - Yb) ** 2
            conv2d.zero_grad()
            loss.sum().backward()
            conv2d.weight.data[:] -= 3e-2 * conv2d.weight.grad
            losses.append(float(loss.sum().detach()))
        return Y, corr2d(torch, X.t(), K), conv2d.weight.data.reshape((1, 2)), type(conv2d).__name__, losses
    e, t = both(program)
    assert_same(e, t, rtol=1e-4)


def test_7_3_padding_and_stride():
    def program(torch, nn, F):
        X = torch.rand(size=(8, 8))
        shapes = []
        for layer in (nn.LazyConv2d(1, kernel_size=3, padding=1), nn.LazyConv2d(1, kernel_size=(5, 3), padding=(2, 1)),
                      nn.LazyConv2d(1, kernel_size=3, padding=1, stride=2),
                      nn.LazyConv2d(1, kernel_size=(3, 5), padding=(0, 1), stride=(3, 4))):
            Y = layer(X.reshape((1, 1) + X.shape))
            shapes.append(tuple(Y.reshape(Y.shape[2:]).shape))
        return shapes
    e, t = both(program)
    assert_same(e, t)


def test_7_4_multiple_channels():
    """Multi-input / multi-output correlation with stack and sum, and 1x1 convolution as matmul."""
    def corr2d_multi_in(torch, X, K):
        return sum(corr2d(torch, x, k) for x, k in zip(X, K))

    def program(torch, nn, F, x1, x2):
        X = torch.tensor([[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]],
                          [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]])
        K = torch.tensor([[[0.0, 1.0], [2.0, 3.0]], [[1.0, 2.0], [3.0, 4.0]]])
        K3 = torch.stack((K, K + 1, K + 2), 0)
        multi_out = torch.stack([corr2d_multi_in(torch, X, k) for k in K3], 0)
        c_i, h, w = x1.shape
        k1 = torch.tensor(x2)
        X1 = torch.tensor(x1)
        Y1 = torch.matmul(k1.reshape((2, c_i)), X1.reshape((c_i, h * w))).reshape((2, h, w))
        Y2 = torch.stack([corr2d_multi_in(torch, X1, k) for k in k1], 0)
        noise = torch.normal(0, 1, (3, 3, 3))
        return (corr2d_multi_in(torch, X, K), K3.shape, multi_out, Y1, float(torch.abs(Y1 - Y2).sum()) < 1e-5,
                tuple(noise.shape))
    rng = np.random.default_rng(0)
    e, t = both(program, rng.standard_normal((3, 3, 3)).astype(np.float32),
                rng.standard_normal((2, 3, 1, 1)).astype(np.float32))
    assert_same(e, t)


def test_7_5_pooling():
    def pool2d(torch, X, pool_size, mode):
        p_h, p_w = pool_size
        Y = torch.zeros((X.shape[0] - p_h + 1, X.shape[1] - p_w + 1))
        for i in range(Y.shape[0]):
            for j in range(Y.shape[1]):
                window = X[i:i + p_h, j:j + p_w]
                Y[i, j] = window.max() if mode == "max" else window.mean()
        return Y

    def program(torch, nn, F):
        X = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]])
        X4 = torch.arange(16, dtype=torch.float32).reshape((1, 1, 4, 4))
        X8 = torch.cat((X4, X4 + 1), 1)
        return (pool2d(torch, X, (2, 2), "max"), pool2d(torch, X, (2, 2), "avg"), nn.MaxPool2d(3)(X4),
                nn.MaxPool2d(3, padding=1, stride=2)(X4), nn.MaxPool2d((2, 3), stride=(2, 3), padding=(0, 1))(X4),
                nn.MaxPool2d(3, padding=1, stride=2)(X8))
    e, t = both(program)
    assert_same(e, t)


def _layer_summary(net, X):
    rows = []
    for layer in net:
        X = layer(X)
        rows.append((layer.__class__.__name__, tuple(X.shape)))
    return rows


def _init_cnn(nn):
    def init(module):
        if type(module) is nn.Linear or type(module) is nn.Conv2d:
            nn.init.xavier_uniform_(module.weight)
    return init


def test_7_6_lenet_lazy_layers_summary_and_init():
    def program(torch, nn, F):
        net = nn.Sequential(
            nn.LazyConv2d(6, kernel_size=5, padding=2), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
            nn.LazyConv2d(16, kernel_size=5), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2), nn.Flatten(),
            nn.LazyLinear(120), nn.Sigmoid(), nn.LazyLinear(84), nn.Sigmoid(), nn.LazyLinear(10))
        summary = _layer_summary(net, torch.randn(1, 1, 28, 28))
        net.apply(_init_cnn(nn))
        return summary, [type(m).__name__ for m in net], sum(p.numel() for p in net.parameters())
    e, t = both(program)
    assert_same(e, t)


def test_lazy_parameter_used_before_the_first_forward_names_the_layer():
    layer = engine.nn.LazyLinear(4)
    with pytest.raises(ValueError, match=r"LazyLinear\(out_features=4.*'weight' is uninitialized.*first forward"):
        _ = layer.weight.shape
    optimizer = engine.optim.SGD(layer.parameters(), lr=0.1)  # built before the forward: still updates
    layer(engine.ones(2, 3)).sum().backward()
    before = layer.weight.detach().clone()
    optimizer.step()
    assert type(layer) is engine.nn.Linear and not layer.weight.equal(before)


def test_8_1_to_8_4_blocks_of_alexnet_vgg_nin_googlenet():
    """The chapters' blocks written with lazy layers: output shapes as torch's, layer by layer."""
    def program(torch, nn, F):
        def vgg_block(num_convs, out_channels):
            layers = []
            for _ in range(num_convs):
                layers += [nn.LazyConv2d(out_channels, kernel_size=3, padding=1), nn.ReLU()]
            return nn.Sequential(*layers, nn.MaxPool2d(kernel_size=2, stride=2))

        def nin_block(out_channels, kernel_size, strides, padding):
            return nn.Sequential(nn.LazyConv2d(out_channels, kernel_size, strides, padding), nn.ReLU(),
                                 nn.LazyConv2d(out_channels, kernel_size=1), nn.ReLU(),
                                 nn.LazyConv2d(out_channels, kernel_size=1), nn.ReLU())

        class Inception(nn.Module):
            def __init__(self, c1, c2, c3, c4):
                super().__init__()
                self.b1 = nn.LazyConv2d(c1, kernel_size=1)
                self.b2 = nn.Sequential(nn.LazyConv2d(c2[0], kernel_size=1), nn.ReLU(),
                                        nn.LazyConv2d(c2[1], kernel_size=3, padding=1))
                self.b3 = nn.Sequential(nn.LazyConv2d(c3[0], kernel_size=1), nn.ReLU(),
                                        nn.LazyConv2d(c3[1], kernel_size=5, padding=2))
                self.b4 = nn.Sequential(nn.MaxPool2d(kernel_size=3, stride=1, padding=1), nn.LazyConv2d(c4, 1))

            def forward(self, x):
                return torch.cat((F.relu(self.b1(x)), F.relu(self.b2(x)), F.relu(self.b3(x)), F.relu(self.b4(x))),
                                 dim=1)

        net = nn.Sequential(vgg_block(1, 8), nin_block(16, 3, 1, 1), Inception(4, (4, 8), (2, 4), 4),
                            nn.Dropout(0.5), nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.LazyLinear(10))
        return _layer_summary(net, torch.randn(size=(2, 1, 16, 16)))
    e, t = both(program)
    assert_same(e, t)


def test_8_5_batch_norm_from_scratch_and_concise():
    """The from-scratch batch norm (is_grad_enabled, mean over dims with keepdim, sqrt, moving
    averages through .data) gives torch's numbers; the concise layers and accuracy with argmax(axis=1)."""
    def batch_norm(torch, X, gamma, beta, moving_mean, moving_var, eps, momentum):
        if not torch.is_grad_enabled():
            X_hat = (X - moving_mean) / torch.sqrt(moving_var + eps)
        else:
            assert len(X.shape) in (2, 4)
            if len(X.shape) == 2:
                mean = X.mean(dim=0)
                var = ((X - mean) ** 2).mean(dim=0)
            else:
                mean = X.mean(dim=(0, 2, 3), keepdim=True)
                var = ((X - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)
            X_hat = (X - mean) / torch.sqrt(var + eps)
            moving_mean = (1.0 - momentum) * moving_mean + momentum * mean
            moving_var = (1.0 - momentum) * moving_var + momentum * var
        return gamma * X_hat + beta, moving_mean.data, moving_var.data

    def program(torch, nn, F, x, labels):
        class BatchNorm(nn.Module):
            def __init__(self, num_features, num_dims):
                super().__init__()
                shape = (1, num_features) if num_dims == 2 else (1, num_features, 1, 1)
                self.gamma = nn.Parameter(torch.ones(shape))
                self.beta = nn.Parameter(torch.zeros(shape))
                self.moving_mean, self.moving_var = torch.zeros(shape), torch.ones(shape)

            def forward(self, X):
                if self.moving_mean.device != X.device:
                    self.moving_mean = self.moving_mean.to(X.device)
                    self.moving_var = self.moving_var.to(X.device)
                Y, self.moving_mean, self.moving_var = batch_norm(
                    torch, X, self.gamma, self.beta, self.moving_mean, self.moving_var, eps=1e-5, momentum=0.1)
                return Y

        X = torch.tensor(x)
        scratch = BatchNorm(3, num_dims=4)
        Y = scratch(X)
        Y.sum().backward()
        with torch.no_grad():
            Y_eval = scratch(X)
        concise = nn.Sequential(nn.LazyConv2d(4, kernel_size=3), nn.LazyBatchNorm2d(), nn.Sigmoid(), nn.Flatten(),
                                nn.LazyLinear(5), nn.LazyBatchNorm1d(), nn.Sigmoid(), nn.LazyLinear(3))
        concise(X)
        for i, p in enumerate(concise.parameters()):
            p.data[...] = torch.linspace(-1, 1, p.numel()).reshape(p.shape) * (0.3 + 0.1 * i)
        for layer in (concise[1], concise[5]):  # forget the first forward's batch, made with random weights
            layer.reset_running_stats()
        Y_hat = concise(X)
        preds = Y_hat.argmax(axis=1).type(torch.tensor(labels).dtype)
        accuracy = (preds == torch.tensor(labels).reshape(-1)).type(torch.float32).mean()
        return (Y, Y_eval, scratch.gamma.grad, scratch.moving_mean, Y_hat, accuracy,
                concise[1].weight.reshape((-1,)).shape, concise[1].running_var)
    rng = np.random.default_rng(0)
    e, t = both(program, rng.standard_normal((4, 3, 5, 5)).astype(np.float32), np.array([0, 2, 1, 1]))
    assert_same(e, t, rtol=1e-4, atol=1e-5)


def _resnext_block_class(torch, nn, F):
    """The ResNeXt block of 8.6 written for library ``(torch, nn, F)``; 8.8's AnyNet stacks it too."""
    class ResNeXtBlock(nn.Module):
        def __init__(self, num_channels, groups, bot_mul, use_1x1conv=False, strides=1):
            super().__init__()
            bot_channels = int(round(num_channels * bot_mul))
            self.conv1 = nn.LazyConv2d(bot_channels, kernel_size=1, stride=1)
            self.conv2 = nn.LazyConv2d(bot_channels, kernel_size=3, stride=strides, padding=1,
                                       groups=bot_channels // groups)
            self.conv3 = nn.LazyConv2d(num_channels, kernel_size=1, stride=1)
            self.bn1, self.bn2, self.bn3 = nn.LazyBatchNorm2d(), nn.LazyBatchNorm2d(), nn.LazyBatchNorm2d()
            self.conv4 = nn.LazyConv2d(num_channels, kernel_size=1, stride=strides) if use_1x1conv else None
            self.bn4 = nn.LazyBatchNorm2d() if use_1x1conv else None

        def forward(self, X):
            Y = F.relu(self.bn1(self.conv1(X)))
            Y = F.relu(self.bn2(self.conv2(Y)))
            Y = self.bn3(self.conv3(Y))
            if self.conv4:
                X = self.bn4(self.conv4(X))
            Y += X  # in place on a tensor in the graph, as the book writes it
            return F.relu(Y)

    return ResNeXtBlock


def test_8_8_anynet_design_space():
    """A small AnyNet: stem, named stages of ResNeXt blocks (add_module), head, init through apply."""
    def program(torch, nn, F):
        block = _resnext_block_class(torch, nn, F)

        def stage(depth, num_channels, groups, bot_mul):
            blocks = [block(num_channels, groups, bot_mul, use_1x1conv=True, strides=2)]
            blocks += [block(num_channels, groups, bot_mul) for _ in range(depth - 1)]
            return nn.Sequential(*blocks)

        net = nn.Sequential(nn.Sequential(nn.LazyConv2d(8, kernel_size=3, stride=2, padding=1),
                                          nn.LazyBatchNorm2d(), nn.ReLU()))
        for i, s in enumerate(((1, 8, 4, 1), (2, 16, 8, 1))):
            net.add_module(f"stage{i + 1}", stage(*s))
        net.add_module("head", nn.Sequential(nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.LazyLinear(10)))
        summary = _layer_summary(net, torch.randn(2, 1, 32, 32))
        net.apply(_init_cnn(nn))
        return summary, [n for n, _ in net.named_children()], sum(p.numel() for p in net.parameters())
    e, t = both(program)
    assert_same(e, t)


def test_8_6_resnet_and_resnext_blocks():
    """Residual blocks with lazy layers, a grouped 3x3 convolution (ResNeXt) and the book's ``Y += X``."""
    def program(torch, nn, F, x):
        ResNeXtBlock = _resnext_block_class(torch, nn, F)

        X = torch.tensor(x, requires_grad=True)
        block = ResNeXtBlock(8, 4, 1, use_1x1conv=True, strides=2)
        block(X)
        for i, p in enumerate(block.parameters()):
            p.data[...] = torch.linspace(-1, 1, p.numel()).reshape(p.shape) * (0.5 + 0.05 * i)
        Y = block(X)
        Y.sum().backward()
        return Y, X.grad, block.conv2.weight.grad, tuple(block.conv2.weight.shape)
    x = np.random.default_rng(1).standard_normal((2, 4, 6, 6)).astype(np.float32)
    e, t = both(program, x)
    assert_same(e, t, rtol=1e-4, atol=1e-5)


def test_8_7_densenet_blocks():
    def program(torch, nn, F):
        def conv_block(num_channels):
            return nn.Sequential(nn.LazyBatchNorm2d(), nn.ReLU(), nn.LazyConv2d(num_channels, kernel_size=3, padding=1))

        class DenseBlock(nn.Module):
            def __init__(self, num_convs, num_channels):
                super().__init__()
                self.net = nn.Sequential(*[conv_block(num_channels) for _ in range(num_convs)])

            def forward(self, X):
                for blk in self.net:
                    X = torch.cat((X, blk(X)), dim=1)
                return X

        def transition_block(num_channels):
            return nn.Sequential(nn.LazyBatchNorm2d(), nn.ReLU(), nn.LazyConv2d(num_channels, kernel_size=1),
                                 nn.AvgPool2d(kernel_size=2, stride=2))

        Y = DenseBlock(2, 10)(torch.randn(4, 3, 8, 8))
        net = nn.Sequential()
        net.add_module("dense", DenseBlock(2, 4))
        net.add_module("transition", transition_block(6))
        net.add_module("last", nn.Sequential(nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.LazyLinear(3)))
        return tuple(Y.shape), tuple(transition_block(10)(Y).shape), _layer_summary(net, torch.randn(2, 3, 8, 8)), \
            len(net), [type(m).__name__ for m in net[1:]]
    e, t = both(program)
    assert_same(e, t)
