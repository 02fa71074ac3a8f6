"""Batch noise assignment for immiscible diffusion (Li et al., NeurIPS 2024, arXiv 2406.12303; Li et al. 2025,
arXiv 2505.18521).

Each datum is paired with a nearby noise draw, so that the denoiser learns a less tangled mapping. Two strategies:

- ``"hungarian"``: a batch linear assignment between data and noise (scipy's ``linear_sum_assignment``) on the L2
  distances of the 0.1-scaled flattened tensors, quantised to fp16 as in the reference code. The noise pool is
  only permuted, so its Gaussian marginal is unchanged; at batch size 1 it is a no-op.
- ``"knn"``: per datum, ``k`` noise candidates, the nearest one kept. Works at batch 1 and needs no CPU sync, but it
  biases each selected noise towards its datum (the marginal is no longer exactly N(0, I)).

The loss must regress the *assigned* noise: ``GaussianDiffusion.training_loss`` uses the returned tensor as target.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

AssignMethod = Literal["hungarian", "knn"]


def _flat(x: torch.Tensor, scale: float) -> torch.Tensor:
    return (x.detach().reshape(x.shape[0], -1).float()) * scale


def hungarian_assignment(x0: torch.Tensor, noise: torch.Tensor, scale: float = 0.1) -> torch.Tensor:
    """Indices ``perm`` such that ``noise[perm]`` minimises the total data-to-noise L2 distance.

    Distances are computed in float32 and rounded to fp16 (the reference's "quantised assignment"; fp16 matmuls are
    not available on every CPU), then solved exactly on the CPU.
    """
    if x0.shape != noise.shape:
        raise ValueError(f"x0 {tuple(x0.shape)} and noise {tuple(noise.shape)} must have the same shape")
    if x0.shape[0] == 1:
        return torch.zeros(1, dtype=torch.long, device=x0.device)
    cost = torch.cdist(_flat(x0, scale), _flat(noise, scale)).half().float()
    _, cols = linear_sum_assignment(cost.cpu().numpy())
    return torch.as_tensor(np.asarray(cols), dtype=torch.long, device=x0.device)


def knn_selection(
    x0: torch.Tensor, k: int = 4, scale: float = 0.1, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``k`` noise candidates per datum and keep the nearest; returns (noise, chosen candidate index)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    b = x0.shape[0]
    candidates = torch.randn((b, k, *x0.shape[1:]), generator=generator, device=x0.device, dtype=x0.dtype)
    data = _flat(x0, scale).unsqueeze(1)  # (B, 1, D)
    cand = candidates.reshape(b, k, -1).float() * scale  # (B, k, D)
    dist = (cand - data).norm(dim=-1).half()  # (B, k)
    idx = dist.float().argmin(dim=1)
    return candidates[torch.arange(b, device=x0.device), idx], idx


def assign_noise(
    x0: torch.Tensor,
    noise: torch.Tensor | None = None,
    method: AssignMethod = "hungarian",
    *,
    k: int = 4,
    scale: float = 0.1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Return the noise assigned to each datum of the batch ``x0``.

    ``hungarian`` permutes ``noise`` (drawn here when None); ``knn`` draws its own ``k`` candidates per datum and
    ignores ``noise``.
    """
    if method == "hungarian":
        if noise is None:
            noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        return noise[hungarian_assignment(x0, noise, scale)]
    if method == "knn":
        return knn_selection(x0, k=k, scale=scale, generator=generator)[0]
    raise ValueError(f"unknown noise assignment {method!r}; expected 'hungarian' or 'knn'")
