"""The Tensor API against torch: creation, conversion, shape ops, reductions, arithmetic, indexing, printing."""

from __future__ import annotations

import operator

import numpy as np
import pytest
import torch
from conftest import FLOAT32, FLOAT64, assert_close, engine_tensor, run_side_by_side, to_numpy

import engine


def randn(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# --- creation --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ones", "zeros", "empty", "rand", "randn"])
@pytest.mark.parametrize("shape", [(3,), (2, 3), (1, 1, 6, 8)], ids=str)
def test_creation_shape_and_default_float32(name, shape):
    t = getattr(engine, name)(*shape)
    assert isinstance(t, engine.Tensor)
    assert tuple(t.shape) == shape and t.ndim == len(shape) and t.numel() == int(np.prod(shape))
    assert t.dtype == engine.float32 and t.numpy().dtype == np.float32
    assert t.requires_grad is False and t.grad is None


@pytest.mark.parametrize("name", ["ones", "zeros", "empty", "rand", "randn"])
def test_creation_accepts_a_shape_tuple_and_dtype(name):
    t = getattr(engine, name)((2, 4), dtype=engine.float64)
    assert tuple(t.shape) == (2, 4) and t.dtype == engine.float64 and t.numpy().dtype == np.float64


def test_creation_requires_grad_keyword():
    t = engine.zeros(2, 3, requires_grad=True)
    assert t.requires_grad and t.grad_fn is None


def test_ones_zeros_full_values():
    assert engine.ones(2, 3).tolist() == [[1.0] * 3] * 2
    assert engine.zeros(2).tolist() == [0.0, 0.0]
    f = engine.full((2, 3), 1.5)
    assert tuple(f.shape) == (2, 3) and f.tolist() == [[1.5] * 3] * 2 and f.dtype == engine.float32


def test_arange_like_torch():
    assert engine.arange(5).tolist() == torch.arange(5).tolist()
    assert engine.arange(5).numpy().dtype == np.int64  # torch: integer arguments give int64
    assert engine.arange(2, 11, 3).tolist() == [2, 5, 8]
    f = engine.arange(0.0, 1.0, 0.25)
    assert f.dtype == engine.float32 and f.tolist() == [0.0, 0.25, 0.5, 0.75]


def test_rand_randn_distribution_and_seed():
    engine.manual_seed(3)
    a = engine.rand(20000)
    r = engine.randn(20000)
    engine.manual_seed(3)
    a2 = engine.rand(20000)
    assert a.equal(a2), "manual_seed does not make rand reproducible"
    av = a.numpy()
    assert av.min() >= 0.0 and av.max() < 1.0 and abs(av.mean() - 0.5) < 0.02
    rv = r.numpy()
    assert abs(rv.mean()) < 0.03 and abs(rv.std() - 1.0) < 0.03
    engine.manual_seed(4)
    assert not engine.rand(20000).equal(a)


def test_tensor_from_data():
    t = engine.tensor([[1.0, -1.0]])
    assert t.dtype == engine.float32 and tuple(t.shape) == (1, 2)  # python floats -> float32 like torch
    assert engine.tensor([1, 2, 3]).numpy().dtype == np.int64
    assert engine.tensor(np.zeros((2, 2), np.float64)).dtype == engine.float64  # numpy dtype kept
    assert engine.tensor([1.0, 2.0], dtype=engine.float64).dtype == engine.float64
    assert engine.tensor(2.5).item() == 2.5 and engine.tensor(2.5).ndim == 0
    r = engine.tensor([1.0, 2.0], requires_grad=True)
    assert r.requires_grad and r.grad is None and r.grad_fn is None


def test_tensor_copies_its_data():
    a = np.ones(3)
    t = engine.tensor(a)
    a[0] = 5.0
    assert t.tolist() == [1.0, 1.0, 1.0]


def test_from_numpy_shares_memory_and_keeps_dtype():
    a = np.zeros(3)
    t = engine.from_numpy(a)
    assert t.dtype == engine.float64
    a[0] = 7.0
    assert t[0].item() == 7.0


def test_conversions():
    t = engine.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert isinstance(t.numpy(), np.ndarray) and t.numpy().tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert t.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    s = t.sum()
    assert isinstance(s.item(), float) and s.item() == 10.0
    assert isinstance(engine.tensor([3]).sum().item(), int)
    assert float(s) == 10.0
    assert t.device == engine.device("cpu") and str(t.device) == "cpu" and t.to("cpu").equal(t)
    assert t.to(engine.device("cpu")).equal(t)


def test_detach():
    x = engine.tensor([1.0, 2.0], requires_grad=True)
    d = (x * 2).detach()
    assert not d.requires_grad and d.grad_fn is None and d.tolist() == [2.0, 4.0]
    assert not (d * 3).requires_grad


def test_numel_ndim_equal_zero_():
    t = engine.ones(2, 3, 4)
    assert t.numel() == 24 and t.ndim == 3
    assert t.equal(engine.ones(2, 3, 4)) is True
    assert t.equal(engine.zeros(2, 3, 4)) is False
    assert t.equal(engine.ones(3, 2, 4)) is False  # same numel, other shape
    out = t.zero_()
    assert out is t and t.equal(engine.zeros(2, 3, 4))


# --- shape ops (values and grads vs torch) ---------------------------------------------------

SHAPE_OPS = {
    "reshape": (lambda t: t.reshape(3, -1), (2, 3, 4)),
    "reshape_tuple": (lambda t: t.reshape((4, 6)), (2, 3, 4)),
    "view": (lambda t: t.view(6, 4), (2, 3, 4)),
    "flatten": (lambda t: t.flatten(), (2, 3, 4)),
    "flatten_1": (lambda t: t.flatten(1), (2, 3, 4)),
    "flatten_1_2": (lambda t: t.flatten(1, 2), (2, 3, 4, 5)),
    "transpose": (lambda t: t.transpose(0, 1), (3, 4)),
    "transpose_neg": (lambda t: t.transpose(-1, 1), (2, 3, 4)),
    "T": (lambda t: t.T, (3, 5)),
    "transpose_then_reshape": (lambda t: t.transpose(0, 1).reshape(-1), (3, 4)),
}


@pytest.mark.parametrize("name", SHAPE_OPS)
def test_shape_ops_match_torch(name, dtype):
    fn, shape = SHAPE_OPS[name]
    run_side_by_side(fn, fn, [randn(shape)], dtype)


# --- reductions -------------------------------------------------------------------------------

REDUCTIONS = {
    "sum": lambda t: t.sum(),
    "sum_dim0": lambda t: t.sum(dim=0),
    "sum_dim1_keep": lambda t: t.sum(dim=1, keepdim=True),
    "sum_neg_dim": lambda t: t.sum(dim=-1),
    "sum_positional_dim": lambda t: t.sum(1),
    "mean": lambda t: t.mean(),
    "mean_dim1": lambda t: t.mean(dim=1),
    "mean_dim0_keep": lambda t: t.mean(dim=0, keepdim=True),
    "max": lambda t: t.max(),
    "max_dim1_values": lambda t: t.max(dim=1)[0],
    "max_dim0_keep_values": lambda t: t.max(dim=0, keepdim=True)[0],
}


@pytest.mark.parametrize("name", REDUCTIONS)
def test_reductions_match_torch(name, dtype):
    fn = REDUCTIONS[name]
    run_side_by_side(fn, fn, [randn((3, 5, 2))], dtype)  # random values: no ties in max


@pytest.mark.parametrize("dim,keepdim", [(None, False), (0, False), (1, False), (1, True), (-1, False)])
def test_argmax_and_max_indices_match_torch(dim, keepdim):
    a = randn((4, 5, 3), 1)
    e, t = engine.tensor(a), torch.from_numpy(a)
    kw = {} if dim is None else dict(dim=dim, keepdim=keepdim)
    got, want = e.argmax(**kw), t.argmax(**kw)
    assert tuple(got.shape) == tuple(want.shape) and got.numpy().dtype == np.int64
    assert got.tolist() == want.tolist()
    if dim is not None:
        values, indices = e.max(**kw)  # torch returns (values, indices)
        assert indices.tolist() == t.max(**kw)[1].tolist()
        np.testing.assert_array_equal(values.numpy(), t.max(**kw)[0].numpy())


TIES = {
    "max_all": lambda t: t.max(),  # torch splits the gradient evenly between tied maxima
    "max_dim": lambda t: t.max(dim=1)[0],  # the gradient goes to the returned (first) index
    "sum_dims_tuple": lambda t: t.sum(dim=(0, 1)),
    "mean_dims_tuple_keep": lambda t: t.mean(dim=(1, 0), keepdim=True),
}


@pytest.mark.parametrize("name", TIES)
def test_reductions_with_ties_and_dim_tuples(name, dtype):
    a = np.array([[[1.0, 3.0], [3.0, 0.0]], [[2.0, 2.0], [2.0, 2.0]]])
    run_side_by_side(TIES[name], TIES[name], [a], dtype)


def test_argmax_ties_pick_the_first_like_torch():
    a = np.array([[1.0, 3.0, 3.0], [5.0, 5.0, 5.0]])
    assert engine.tensor(a).argmax(dim=1).tolist() == torch.from_numpy(a).argmax(dim=1).tolist() == [1, 0]
    assert engine.tensor(a).argmax().item() == 3


def test_bool_of_a_multi_element_tensor_raises():
    with pytest.raises(RuntimeError, match="(?i)ambiguous|more than one"):
        bool(engine.tensor([1.0, 2.0]))
    assert bool(engine.tensor([2.0])) is True and bool(engine.tensor(0.0)) is False


def test_sum_of_bool_and_int_tensors():
    a = engine.tensor([1, 2, 3])
    b = engine.tensor([1, 0, 3])
    eq = a == b
    assert eq.numpy().dtype == np.bool_
    assert eq.sum().item() == 2
    assert a.sum().item() == 6


def test_seed_accuracy_accumulation_pattern():
    """lenet_torch.py: acc = 0.0; acc += (y_hat.argmax(dim=1) == y).sum(); acc /= n."""
    y_hat = engine.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    y = engine.tensor([1, 0, 0, 0])
    acc, n = 0.0, 0
    acc += (y_hat.argmax(dim=1) == y).sum()
    n += y.numel()
    acc /= n
    assert float(acc) == pytest.approx(0.75)
    loss_total = 0.0
    loss_total += engine.tensor([0.5, 1.5]).sum()
    loss_total /= 2
    assert float(loss_total) == pytest.approx(1.0)


# --- elementwise math -------------------------------------------------------------------------

UNARY = {
    "exp": lambda t: t.exp(),
    "log": lambda t: (t * t + 0.5).log(),
    "sigmoid": lambda t: t.sigmoid(),
    "relu": lambda t: t.relu(),
    "tanh": lambda t: t.tanh(),
    "neg": lambda t: -t,
    "pow2": lambda t: t**2,
    "pow_half": lambda t: (t * t + 1) ** 0.5,
    "pow_neg": lambda t: (t * t + 1) ** -1.5,
}


@pytest.mark.parametrize("name", UNARY)
def test_unary_ops_match_torch(name, dtype):
    fn = UNARY[name]
    run_side_by_side(fn, fn, [randn((3, 4))], dtype)


BROADCAST_SHAPES = [((2, 3), (2, 3)), ((2, 3), (3,)), ((2, 1), (1, 3)), ((4, 1, 3), (2, 3)), ((3,), ()), ((), (2, 2))]
BINARY = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "div": lambda a, b: a / (b * b + 0.5),
    "pow": lambda a, b: (a * a + 0.5) ** b,
}


@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=str)
@pytest.mark.parametrize("name", BINARY)
def test_broadcasting_binary_ops_and_their_reduced_grads(name, shapes, dtype):
    fn = BINARY[name]
    run_side_by_side(fn, fn, [randn(shapes[0], 1), randn(shapes[1], 2)], dtype)


SCALAR_OPS = {
    "t+2": lambda t: t + 2,
    "2+t": lambda t: 2 + t,
    "t-2.5": lambda t: t - 2.5,
    "2.5-t": lambda t: 2.5 - t,
    "t*3": lambda t: t * 3,
    "3*t": lambda t: 3 * t,
    "t/4": lambda t: t / 4,
    "4/t": lambda t: 4 / (t * t + 1),
    "2**t": lambda t: 2**t,
    "t**3": lambda t: t**3,
    "chain": lambda t: -(3 - t) * 2 / (1 + t * t) + t**2,
}


@pytest.mark.parametrize("name", SCALAR_OPS)
def test_scalar_and_reverse_ops_match_torch(name, dtype):
    fn = SCALAR_OPS[name]
    e_out, _ = run_side_by_side(fn, fn, [randn((2, 3))], dtype)
    assert e_out.dtype == dtype.engine, "a python scalar must not change the tensor's dtype"


@pytest.mark.parametrize("shapes", [((2, 3), (3, 4)), ((1, 5), (5, 1)), ((3,), (3, 4)), ((4, 3), (3,))], ids=str)
def test_matmul_matches_torch(shapes, dtype):
    run_side_by_side(lambda a, b: a @ b, lambda a, b: a @ b, [randn(shapes[0], 1), randn(shapes[1], 2)], dtype)


def test_reused_input_in_binary_op(dtype):
    run_side_by_side(lambda a: a * a + a / (a * a + 1), lambda a: a * a + a / (a * a + 1), [randn((3,))], dtype)


@pytest.mark.parametrize("op", ["<", "<=", ">", ">=", "==", "!="])
def test_comparisons_return_bool_tensors(op):
    fn = {
        "<": operator.lt,
        "<=": operator.le,
        ">": operator.gt,
        ">=": operator.ge,
        "==": operator.eq,
        "!=": operator.ne,
    }[op]
    a = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    b = np.array([2.0, 2.0, 2.0])
    got = fn(engine.tensor(a), engine.tensor(b))
    assert isinstance(got, engine.Tensor) and got.numpy().dtype == np.bool_
    assert got.tolist() == fn(torch.from_numpy(a), torch.from_numpy(b)).tolist()
    scalar = fn(engine.tensor(a), 2.0)
    assert scalar.numpy().dtype == np.bool_ and scalar.tolist() == fn(torch.from_numpy(a), 2.0).tolist()
    assert not got.requires_grad


def test_comparison_of_grad_tensor_builds_no_graph():
    x = engine.tensor([1.0, -1.0], requires_grad=True)
    m = x > 0
    assert not m.requires_grad and m.grad_fn is None


# --- in-place updates ----------------------------------------------------------------------


def test_inplace_add_sub_on_plain_tensor():
    t = engine.ones(2, 2)
    ident = id(t)
    t += 2
    t -= engine.tensor([1.0, 0.5])
    assert id(t) == ident and t.tolist() == [[2.0, 2.5], [2.0, 2.5]]


def test_inplace_update_of_leaf_under_no_grad():
    w = engine.tensor([1.0, 2.0], requires_grad=True)
    (w * w).sum().backward()
    ident = id(w)
    with engine.no_grad():
        w -= 0.5 * w.grad
        w += 0.25
    assert id(w) == ident and w.tolist() == [0.25, 0.25]
    assert w.requires_grad and w.grad_fn is None
    (w * 3).sum().backward()  # still a leaf that accumulates
    assert w.grad.tolist() == [5.0, 7.0]


def test_inplace_on_leaf_requiring_grad_outside_no_grad_raises():
    w = engine.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="(?i)leaf|in-place|inplace"):
        w -= 1.0


def test_data_slice_update_like_the_seed():
    """edge_detection_torch.py: net.weight.data[:] -= lr * net.weight.grad."""
    w = engine.nn.Parameter(engine.tensor([[1.0, -2.0]]))
    (w * w).sum().backward()
    w.data[:] -= 0.1 * w.grad
    np.testing.assert_allclose(w.detach().numpy(), [[0.8, -1.6]], rtol=1e-6)
    assert w.requires_grad and w.grad_fn is None
    assert w.data.reshape(1, 2).tolist() == w.tolist()
    assert not w.data.requires_grad


# --- indexing ---------------------------------------------------------------------------------

INDEXES = {
    "int": lambda t: t[1],
    "neg_int": lambda t: t[-1],
    "col": lambda t: t[:, 1],
    "slice": lambda t: t[1:3],
    "step": lambda t: t[:, ::2],
    "2d_slice": lambda t: t[1:, 1:4],
    "int_int": lambda t: t[0, 2],
    "ellipsis": lambda t: t[..., 0],
    "none": lambda t: t[None, :, 1],
}


@pytest.mark.parametrize("name", INDEXES)
def test_indexing_values_and_grads(name, dtype):
    fn = INDEXES[name]
    run_side_by_side(fn, fn, [randn((4, 5))], dtype)


ADVANCED_INDEXES = {
    "int_list": lambda lib, t: t[[1, 0, 1]],
    "repeated_tensor_index": lambda lib, t: t[lib.tensor([3, 3, 0])],  # repeated rows: gradients add up
    "mask": lambda lib, t: t[t > 0],
    "column_tensor_index": lambda lib, t: t[:, lib.tensor([0, 4, 4])],
}


@pytest.mark.parametrize("name", ADVANCED_INDEXES)
def test_advanced_indexing_values_and_grads(name, dtype):
    fn = ADVANCED_INDEXES[name]
    run_side_by_side(lambda t: fn(engine, t), lambda t: fn(torch, t), [randn((4, 5))], dtype)


def test_slice_assignment_like_the_seed():
    X = engine.ones(6, 8)
    X[:, 2:6] = 0
    Y = engine.zeros(6, 7)
    Y[:, 1], Y[:, 5] = 1, -1
    tX, tY = torch.ones(6, 8), torch.zeros(6, 7)
    tX[:, 2:6] = 0
    tY[:, 1], tY[:, 5] = 1, -1
    assert X.tolist() == tX.tolist() and Y.tolist() == tY.tolist()
    assert X.dtype == engine.float32 and Y.dtype == engine.float32


def test_setitem_with_tensor_value():
    t = engine.zeros(3, 4)
    t[1] = engine.arange(4.0)
    t[2, 1:3] = engine.tensor([5.0, 6.0])
    assert t.tolist() == [[0.0] * 4, [0.0, 1.0, 2.0, 3.0], [0.0, 5.0, 6.0, 0.0]]


# --- printing -----------------------------------------------------------------------------------


def test_format_spec():
    loss = engine.tensor([[1.25, 2.0], [3.0, 4.0]])
    assert f"{loss.sum():.3f}" == "10.250"
    assert f"{engine.tensor(0.5):.2f}" == "0.50"
    assert f"{engine.tensor(2.0)}" == f"{torch.tensor(2.0)}" == "2.0"  # a 0-d tensor formats as its item
    assert f"{engine.tensor([1.0, 2.0])}" == str(torch.tensor([1.0, 2.0]))


@pytest.mark.parametrize(
    "values",
    [
        [[0.9799, -0.9993]],
        [1.0, 2.0, 3.0],
        [[1.5, -2.25], [3.0, 4.125]],
        3.5,
        0.123456,
        [-0.5, 10.0],
    ],
    ids=str,
)
def test_repr_matches_torch(values):
    assert repr(engine.tensor(values)) == repr(torch.tensor(values))
    assert str(engine.tensor(values)) == str(torch.tensor(values))


@pytest.mark.parametrize("values", [[1e6, 2.0], 1.5e9, [[2e-6, 1.0], [3.0, 4.0]]], ids=str)
def test_repr_scientific_notation_like_torch(values):
    """torch switches to scientific notation when max/min > 1000 or max > 1e8."""
    assert repr(engine.tensor(values)) == repr(torch.tensor(values))


def test_repr_int_matches_torch():
    assert repr(engine.tensor([1, 2, 3])) == repr(torch.tensor([1, 2, 3]))


def test_repr_shows_requires_grad_and_grad_fn():
    x = engine.tensor([1.0, 2.0], requires_grad=True)
    assert repr(x) == "tensor([1., 2.], requires_grad=True)"
    assert "grad_fn=" in repr(x * 2)
    assert repr(x.detach()) == "tensor([1., 2.])"


# --- dtype bookkeeping --------------------------------------------------------------------------

PROMOTIONS = {
    "f32+f64": lambda lib: lib.ones(2) + lib.ones(2, dtype=lib.float64),
    "int+float_scalar": lambda lib: lib.tensor([1, 2]) + 0.5,
    "int/int": lambda lib: lib.tensor([1, 2]) / lib.tensor([2, 2]),
    "f32*int": lambda lib: lib.ones(2) * lib.tensor([1, 2]),
    "int*int_scalar": lambda lib: lib.tensor([1, 2]) * 3,
    "bool_sum": lambda lib: (lib.tensor([1.0, 2.0]) > 1.5).sum(),
    "f32*f64_scalar0d": lambda lib: lib.ones(2) * lib.tensor(2.0, dtype=lib.float64),
    "float_scalar/int": lambda lib: 1.5 / lib.tensor([1, 2]),
}


@pytest.mark.parametrize("name", PROMOTIONS)
def test_dtype_promotion_like_torch(name):
    got, want = PROMOTIONS[name](engine), PROMOTIONS[name](torch)
    assert got.numpy().dtype == want.numpy().dtype, f"{got.numpy().dtype} != torch's {want.dtype}"
    np.testing.assert_allclose(got.numpy(), want.numpy())


@pytest.mark.parametrize("dt", [FLOAT32, FLOAT64], ids=str)
def test_grads_have_the_tensor_dtype(dt):
    x = engine_tensor(randn((2, 3)).astype(dt.np), requires_grad=True)
    ((x * 2).exp().sum() / 3).backward()
    assert x.grad.dtype == dt.engine and tuple(x.grad.shape) == (2, 3)
    expected = torch.from_numpy(randn((2, 3)).astype(dt.np)).requires_grad_()
    ((expected * 2).exp().sum() / 3).backward()
    assert_close(x.grad, expected.grad, dt)


def test_to_numpy_helper_detaches():
    x = engine.tensor([1.0], requires_grad=True)
    assert to_numpy(x * 2).tolist() == [2.0]
