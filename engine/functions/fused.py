"""conv2d + bias + activation + 2x2 average pooling as one Function (LeNet's block).

``nn.Sequential`` runs its Conv2d -> Sigmoid/ReLU/Tanh -> AvgPool2d(2) runs through this when the
backend has the fused kernels (see ``engine.nn.fusion``, which decides); the values and gradients
are those of the three unfused Functions (the bias gradient's sum may round differently).
"""
from __future__ import annotations

from engine.autograd import Function, is_grad_enabled
from engine.backend import backend_for, contiguous


class ConvActPool(Function):
    """y (N,O,OH/2,OW/2) = avg_pool2d(act(conv2d(x (N,C,H,W), w (O,C,KH,KW), b (O,), stride 1)), 2)."""

    def forward(self, x, w, b, padding, activation, handoff=None):
        """``handoff`` (from ``engine.nn.fusion``): None, or a dict whose "x_layout" (x in this conv's
        padded batch-innermost layout, from the previous block) is used if present, and whose
        "next_padding" asks for y in that layout for the next block, returned in "next_layout"."""
        x, w, b = contiguous(x), contiguous(w), contiguous(b)
        keep = is_grad_enabled() and any(self.needs_input_grad)
        handoff = {} if handoff is None else handoff
        y, saved, handoff["next_layout"] = backend_for(x).fused_conv_act_pool_forward(
            x, w, b, padding, activation, keep, handoff.get("x_layout"), handoff.get("next_padding"))
        self.padding, self.activation, self.input_hw = padding, activation, x.shape[2:]
        # x is saved (unread: forward kept its own copy) so an in-place change to it still raises
        self.save_for_backward(x, w, saved)
        return y

    def backward(self, gy):
        _, w, saved = self.saved_tensors
        needs = tuple(self.needs_input_grad[:3])
        return backend_for(gy).fused_conv_act_pool_backward(contiguous(gy), w, saved, self.input_hw,
                                                            self.padding, self.activation, needs)
