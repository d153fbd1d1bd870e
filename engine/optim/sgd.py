from engine import autograd
from engine.backend import backend_for
from engine.optim.optimizer import Optimizer
from engine.tensor import Tensor


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, dampening, weight decay and Nesterov (torch's rule:
    buf = momentum * buf + (1 - dampening) * g; p -= lr * (g + momentum * buf if nesterov else buf))."""

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        for name, value in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
            if not value >= 0:  # also refuses NaN
                raise ValueError(f"SGD: invalid {name} {value!r} (must be >= 0)")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    @autograd.no_grad()
    def step(self):
        plain = set()
        for group in self.param_groups:
            if not (group["momentum"] or group["weight_decay"]):
                plain.update(id(p) for p in self._plain_update(group))
        for group, p in self._params():
            if p.grad is None or id(p) in plain:
                continue
            g = p.grad._data
            if group["weight_decay"]:
                g = g + group["weight_decay"] * p._data
            momentum = group["momentum"]
            if momentum:
                state = self.state.setdefault(id(p), {})
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = g.copy()
                else:
                    buf *= momentum
                    buf += (1 - group["dampening"]) * g
                g = g + momentum * buf if group["nesterov"] else buf
            p.sub_(group["lr"] * g)

    @staticmethod
    def _plain_update(group):
        """p -= lr * g for the group's contiguous parameters, one backend ``sgd_step`` call per
        (backend, dtype); returns the parameters it updated (the rest, e.g. one given a grad of another
        dtype by hand, take the general loop)."""
        batches = {}
        for p in group["params"]:
            g = p.grad
            if g is not None and p._data.flags.c_contiguous and g.dtype == p.dtype and g.device == p.device:
                backend = backend_for(p._data)
                batches.setdefault((backend.NAME, p.dtype), (backend, []))[1].append(p)
        for backend, params in batches.values():
            grads = tuple(p.grad._data.ravel() for p in params)  # a view, or a copy of a strided grad
            step = backend.sgd_step
            Tensor._write_flat_in_place(params, lambda arrays, step=step, grads=grads: step(arrays, grads, group["lr"]))
        return [p for _, params in batches.values() for p in params]
