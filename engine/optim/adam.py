import math

from engine import autograd
from engine.backend import backend_for
from engine.optim.optimizer import Optimizer


class Adam(Optimizer):
    """Adam (Kingma & Ba) with torch's bias correction and L2 ``weight_decay``."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0):
        if not (lr >= 0 and eps >= 0 and weight_decay >= 0):  # also refuses NaN
            raise ValueError(f"Adam: lr, eps and weight_decay must be >= 0, got {lr}, {eps}, {weight_decay}")
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"Adam: betas must be in [0, 1), got {betas}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    @autograd.no_grad()
    def step(self):
        for group, p in self._params():
            if p.grad is None:
                continue
            xp = backend_for(p._data).xp
            g = p.grad._data
            if group["weight_decay"]:
                g = g + group["weight_decay"] * p._data
            state = self.state.setdefault(id(p), {})
            if not state:
                state.update(step=0, exp_avg=xp.zeros_like(p._data), exp_avg_sq=xp.zeros_like(p._data))
            beta1, beta2 = group["betas"]
            state["step"] += 1
            m, v = state["exp_avg"], state["exp_avg_sq"]
            m += (g - m) * (1 - beta1)
            v *= beta2
            v += (1 - beta2) * g * g
            bias1 = 1 - beta1 ** state["step"]
            bias2 = 1 - beta2 ** state["step"]
            denom = xp.sqrt(v) / math.sqrt(bias2) + group["eps"]
            p.sub_((group["lr"] / bias1) * m / denom)
