"""engine: a from-scratch convolution engine with autograd and a PyTorch-style API.

>>> import engine
>>> x = engine.ones(1, 1, 6, 8, requires_grad=True)
>>> y = engine.nn.functional.conv2d(x, engine.tensor([[[[1.0, -1.0]]]]))
>>> y.sum().backward()
"""
from engine import backend as backends  # noqa: F401  (engine.backends.set_backend, ...)
from engine import cuda
from engine.autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from engine.autotune import get_conv_algo, set_conv_algo
from engine.backend import get_backend, get_default_device, set_backend, set_default_device
from engine.creation import (arange, as_tensor, empty, from_numpy, full, linspace, ones, ones_like, rand, randint,
                             randn, tensor, zeros, zeros_like)
from engine.device import bool_ as bool  # noqa: A004
from engine.device import (device, double, float, float16, float32, float64, int32, int64, long,  # noqa: A004
                           uint8)
from engine.random import get_rng_state, manual_seed, set_rng_state
from engine.tensor import Size, Tensor
from engine.threads import get_num_threads, set_num_threads
from engine import nn, optim  # noqa: E402  (nn and optim need the names above)
from engine.nn.fusion import get_fusion, set_fusion  # noqa: E402
from engine.gradcheck import gradcheck  # noqa: E402


def sigmoid(input):
    return input.sigmoid()


def relu(input):
    return input.relu()


def tanh(input):
    return input.tanh()


def exp(input):
    return input.exp()


def log(input):
    return input.log()


def sum(input, dim=None, keepdim=False):  # noqa: A001
    return input.sum(dim, keepdim)


def mean(input, dim=None, keepdim=False):
    return input.mean(dim, keepdim)


def max(input, dim=None, keepdim=False):  # noqa: A001
    return input.max(dim, keepdim)


def argmax(input, dim=None, keepdim=False):
    return input.argmax(dim, keepdim)


def matmul(a, b):
    return a @ b


def equal(a, b) -> bool:
    return a.equal(b)


def is_tensor(obj) -> bool:
    return isinstance(obj, Tensor)


# --- modern CNNs: the functions the d2l chapters call on ``torch``
from engine.creation import normal  # noqa: E402
from engine.functions.join import cat as _cat  # noqa: E402
from engine.functions.join import stack as _stack  # noqa: E402


def cat(tensors, dim=0, *, axis=None):
    """Concatenate along ``dim`` (``axis`` is its alias), like ``torch.cat``."""
    return _cat(tensors, _dim_or_axis("cat", dim, axis, 0))


concat = cat


def stack(tensors, dim=0, *, axis=None):
    """Join same-shape tensors along a new dim ``dim`` (``axis`` is its alias), like ``torch.stack``."""
    return _stack(tensors, _dim_or_axis("stack", dim, axis, 0))


def sqrt(input):
    return input.sqrt()


def abs(input):  # noqa: A001
    return input.abs()


def _dim_or_axis(op, dim, axis, default):
    if axis is None:
        return dim
    if dim != default:
        raise TypeError(f"{op}: got both dim={dim!r} and axis={axis!r}; axis is an alias of dim")
    return axis


__version__ = "0.1.0"
