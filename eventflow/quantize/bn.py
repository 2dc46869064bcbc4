"""BatchNorm folding: a convolution followed by inference-mode BatchNorm becomes one convolution with a bias.

With the BatchNorm's running mean ``mu``, variance ``sigma^2``, ``eps``, scale ``gamma`` and shift ``b``:

    BN(W * x + c) = gamma (W * x + c - mu) / sqrt(sigma^2 + eps) + b = W' * x + c'
    W'_o = W_o gamma_o / sqrt(sigma_o^2 + eps),   c'_o = (c_o - mu_o) gamma_o / sqrt(sigma_o^2 + eps) + b_o

so the integer convolution needs no separate normalisation (Jacob et al., CVPR 2018, Sec. 3.2). None of the
paper's models has BatchNorm (the derivative's LIF normalises its input current with one); :func:`fold_batchnorm`
is the first step of every quantisation here and leaves such models unchanged. It folds each
``BatchNorm2d`` that directly follows a ``Conv2d`` in an ``nn.Sequential`` and replaces it with ``nn.Identity``.

>>> import torch
>>> from torch import nn
>>> net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4)).eval()
>>> net[1].running_mean.uniform_(-1, 1); net[1].running_var.uniform_(0.5, 2.0)  # doctest: +ELLIPSIS
tensor(...)
tensor(...)
>>> x = torch.randn(1, 2, 6, 6)
>>> before = net(x)
>>> fold_batchnorm(net), type(net[1]).__name__
(1, 'Identity')
>>> torch.allclose(net(x), before, atol=1e-5)
True
"""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def fold_conv_batchnorm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new ``Conv2d`` (with bias) equal to ``bn(conv(x))`` with ``bn`` in inference mode (running statistics)."""
    if bn.num_features != conv.out_channels:
        raise ValueError(f"BatchNorm2d has {bn.num_features} features but the convolution {conv.out_channels} "
                         "output channels")
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("BatchNorm2d without running statistics (track_running_stats=False) cannot be folded")
    folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                       conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode,
                       device=conv.weight.device, dtype=conv.weight.dtype)
    inv_std = torch.rsqrt(bn.running_var + bn.eps)  # (C_out,)
    gamma = bn.weight if bn.affine else torch.ones_like(inv_std)
    shift = bn.bias if bn.affine else torch.zeros_like(inv_std)
    factor = gamma * inv_std
    folded.weight.copy_(conv.weight * factor.view(-1, 1, 1, 1))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(inv_std)
    folded.bias.copy_((bias - bn.running_mean) * factor + shift)
    return folded


def fold_batchnorm(module: nn.Module) -> int:
    """Fold, in place, every ``BatchNorm2d`` that directly follows a ``Conv2d`` inside an ``nn.Sequential`` of
    ``module`` (the BatchNorm becomes ``nn.Identity``). Returns the number of folds."""
    folds = 0
    for seq in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(seq) - 1):
            if isinstance(seq[i], nn.Conv2d) and isinstance(seq[i + 1], nn.BatchNorm2d):
                seq[i] = fold_conv_batchnorm(seq[i], seq[i + 1])
                seq[i + 1] = nn.Identity()
                folds += 1
    return folds
