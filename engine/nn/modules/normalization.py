"""Batch normalisation layers: ``BatchNorm1d`` ((N, C) or (N, C, L)) and ``BatchNorm2d`` ((N, C, H, W))."""
from engine.creation import ones, tensor, zeros
from engine.device import int64
from engine.nn import functional as F
from engine.nn.module import Module
from engine.nn.parameter import Parameter


class _BatchNorm(Module):
    """Normalise each channel by the batch's mean and variance (training) or the running ones (eval).

    ``weight`` (C,) starts at 1, ``bias`` (C,) at 0 (when ``affine``); buffers ``running_mean`` (0),
    ``running_var`` (1) and ``num_batches_tracked`` (when ``track_running_stats``). ``momentum=None``
    makes the running statistics a cumulative average, as torch.
    """

    input_dims = ()  # the input ranks the layer accepts

    def __init__(self, num_features: int, eps: float = 1e-5, momentum=0.1, affine: bool = True,
                 track_running_stats: bool = True, dtype=None, device=None):
        super().__init__()
        name = type(self).__name__
        if isinstance(num_features, bool) or not isinstance(num_features, int) or num_features <= 0:
            raise ValueError(f"{name}: num_features must be a positive int, got {num_features!r}")
        if momentum is not None and not 0 <= momentum <= 1:
            raise ValueError(f"{name}: momentum must be in [0, 1] or None, got {momentum!r}")
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = Parameter(ones(num_features, dtype=dtype, device=device)) if affine else None
        self.bias = Parameter(zeros(num_features, dtype=dtype, device=device)) if affine else None
        stats = track_running_stats
        self.register_buffer("running_mean", zeros(num_features, dtype=dtype, device=device) if stats else None)
        self.register_buffer("running_var", ones(num_features, dtype=dtype, device=device) if stats else None)
        self.register_buffer("num_batches_tracked", tensor(0, dtype=int64, device=device) if stats else None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.data.fill_(0)
            self.running_var.data.fill_(1)
            self.num_batches_tracked.data.fill_(0)

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            self.weight.data.fill_(1)
            self.bias.data.fill_(0)

    def forward(self, input):
        if input.ndim not in self.input_dims:
            wanted = " or ".join(f"{d}D" for d in self.input_dims)
            raise ValueError(f"{type(self).__name__}: expected {wanted} input, got {input.ndim}D input "
                             f"of shape {tuple(input.shape)}")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data.add_(1)
            if self.momentum is None:
                factor = 1.0 / int(self.num_batches_tracked.item())
        batch_stats = self.training or not self.track_running_stats
        keep_running = not self.training or self.track_running_stats
        return F.batch_norm(input, self.running_mean if keep_running else None,
                            self.running_var if keep_running else None, self.weight, self.bias,
                            batch_stats, factor, self.eps)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, C) or (N, C, L): statistics per channel over N (and L)."""

    input_dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, C, H, W): statistics per channel over N, H and W."""

    input_dims = (4,)
