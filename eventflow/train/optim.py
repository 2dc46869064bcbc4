"""The optimiser registry (the reference evaluates the optimiser name from its config; here names are looked up).

>>> import torch
>>> build_optimizer("Adam", [torch.nn.Parameter(torch.zeros(1))], lr=2e-4).defaults["lr"]
0.0002
>>> build_optimizer("adam", [], lr=1.0)
Traceback (most recent call last):
...
ValueError: unknown optimizer 'adam'; valid names: Adam, AdamW, SGD
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

#: Optimiser name (as in the reference configs) -> class.
OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "Adam": torch.optim.Adam,
    "AdamW": torch.optim.AdamW,
    "SGD": torch.optim.SGD,
}


def build_optimizer(name: str, params: Iterable[torch.nn.Parameter], lr: float) -> torch.optim.Optimizer:
    """The optimiser ``name`` over ``params`` with learning rate ``lr`` and PyTorch's other defaults (the
    paper: Adam, lr 2e-4, betas (0.9, 0.999), eps 1e-8)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; valid names: {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name](params, lr=lr)
