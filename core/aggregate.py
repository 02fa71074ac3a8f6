"""Fusing several samples (of a segmentation, a prediction) into one map plus an uncertainty map.

STAPLE is written here rather than imported: no maintained library in our dependency set offers it on torch
tensors (MONAI has none; SimpleITK's ``STAPLEImageFilter`` would add a heavy dependency and a numpy/ITK round
trip per image). Note that the ``staple()`` of the MedSegDiff code base (reused by Echo-DND) returns (mean of
the samples)^2 after one pass; that is not STAPLE, and it is not what ``method="staple"`` computes here.
"""

from __future__ import annotations

from typing import Literal

import torch

Method = Literal["mean", "median", "vote", "staple"]


def binary_entropy(p: torch.Tensor) -> torch.Tensor:
    """H(p) = -p log2 p - (1 - p) log2(1 - p), in bits (0 at p in {0, 1}, 1 at p = 1/2)."""
    p = p.clamp(0.0, 1.0)
    return -(torch.xlogy(p, p) + torch.xlogy(1 - p, 1 - p)) / torch.log(torch.tensor(2.0, dtype=p.dtype))


def _median(x: torch.Tensor, dim: int) -> torch.Tensor:
    """The median along dim, averaging the two middle values for an even count (torch.median returns the lower
    one, and torch.quantile refuses inputs of more than 2**24 elements)."""
    n = x.shape[dim]
    ordered = x.sort(dim=dim).values
    upper = ordered.narrow(dim, n // 2, 1)
    if n % 2 == 1:
        return upper.squeeze(dim)
    return ((ordered.narrow(dim, n // 2 - 1, 1) + upper) / 2).squeeze(dim)


def _staple_e_step(d: torch.Tensor, p: torch.Tensor, q: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """W_i = a_i / (a_i + b_i) = sigmoid(log a_i - log b_i); d: (raters, batch, voxels), p, q: (raters, batch, 1)."""
    log_a = torch.log(f) + (d * torch.log(p) + (1 - d) * torch.log1p(-p)).sum(0)
    log_b = torch.log1p(-f) + ((1 - d) * torch.log(q) + d * torch.log1p(-q)).sum(0)
    return torch.sigmoid(log_a - log_b)


def staple(
    decisions: torch.Tensor,
    dim: int = 0,
    batch_ndim: int = 0,
    max_iter: int = 100,
    tol: float = 1e-6,
    prior: float | torch.Tensor | None = None,
    init: float = 0.99,
    eps: float = 1e-6,
    update_prior: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Binary STAPLE (Warfield, Zou & Wells, IEEE TMI 23(7):903-921, 2004): EM estimate of the hidden truth
    T and of each rater's sensitivity p_j = P(D_j = 1 | T = 1) and specificity q_j = P(D_j = 0 | T = 0).

    ``decisions`` holds binary decisions D_ij, raters along ``dim``; the first ``batch_ndim`` other dimensions
    index independent problems (images), the remaining ones are the voxels i pooled for p_j and q_j.
    The prior f = P(T_i = 1) is the mean decision over raters and voxels per problem (the paper's global
    prior; ``prior`` overrides it), fixed unless ``update_prior`` re-estimates it as mean(W) in each M-step
    (the Dawid & Skene 1979 maximum-likelihood variant). Iterating from p_j = q_j = ``init``:
      E-step: a_i = f prod_j p_j^D_ij (1 - p_j)^(1 - D_ij), b_i = (1 - f) prod_j q_j^(1 - D_ij)
        (1 - q_j)^D_ij, W_i = a_i / (a_i + b_i) (computed in log space);
      M-step: p_j = sum_i W_i D_ij / sum_i W_i, q_j = sum_i (1 - W_i)(1 - D_ij) / sum_i (1 - W_i);
    until max |change| of p and q < ``tol``. Returns (W, sensitivity, specificity): W has the shape of
    ``decisions`` without ``dim``; p and q have shape (*batch, raters). p, q are clamped to [eps, 1 - eps].
    """
    d = decisions.movedim(dim, 0)
    dtype = torch.promote_types(d.dtype, torch.float32)
    n_raters, batch_shape, voxel_shape = d.shape[0], d.shape[1 : 1 + batch_ndim], d.shape[1 + batch_ndim :]
    # (raters, batch, voxels) with batch and voxels flattened
    d = d.to(dtype).reshape(n_raters, max(1, batch_shape.numel()), -1)
    if ((d != 0) & (d != 1)).any():
        raise ValueError("staple expects binary decisions (0/1); binarise the samples first")
    if prior is None:
        f = d.mean(dim=(0, 2))
    else:
        f = torch.as_tensor(prior, dtype=dtype, device=d.device).expand(d.shape[1])
    f = f.clamp(eps, 1 - eps)[:, None]
    p = torch.full((n_raters, d.shape[1], 1), init, dtype=dtype, device=d.device)
    q = p.clone()
    for _ in range(max_iter):
        w = _staple_e_step(d, p, q, f)  # (batch, voxels)
        # M-step
        p_new = (w * d).sum(-1, keepdim=True) / w.sum(-1, keepdim=True).clamp(min=eps)
        q_new = ((1 - w) * (1 - d)).sum(-1, keepdim=True) / (1 - w).sum(-1, keepdim=True).clamp(min=eps)
        p_new, q_new = p_new.clamp(eps, 1 - eps), q_new.clamp(eps, 1 - eps)
        if update_prior:
            f = w.mean(-1, keepdim=True).clamp(eps, 1 - eps)
        change = torch.maximum((p_new - p).abs().max(), (q_new - q).abs().max())
        p, q = p_new, q_new
        if change < tol:
            break
    w = _staple_e_step(d, p, q, f).reshape(batch_shape + voxel_shape)
    sens = p[..., 0].T.reshape(batch_shape + (n_raters,))
    spec = q[..., 0].T.reshape(batch_shape + (n_raters,))
    return w, sens, spec


def aggregate(
    samples: torch.Tensor,
    method: Method = "mean",
    dim: int = 0,
    threshold: float = 0.5,
    max_iter: int = 100,
    tol: float = 1e-6,
    batch_ndim: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fuse the samples along ``dim``; returns (fused, uncertainty), both shaped like one sample.

    - ``mean``: the mean and the population standard deviation (correction 0, finite for a single sample).
    - ``median``: the median (mean of the two middle values for an even count) and the median absolute
      deviation median(|x - median|), unscaled (multiply by 1.4826 for a Gaussian-consistent sigma).
    - ``vote``: samples binarised as x >= ``threshold``; the fused map is the strict majority (vote fraction
      > 1/2; a tie goes to background, as MONAI's VoteEnsemble rounds it) and the uncertainty the vote
      entropy H(fraction) in bits.
    - ``staple``: Warfield's EM STAPLE (``staple``) on the binarised samples; fused = (W >= 0.5) and
      uncertainty = H(W) in bits. Call ``staple`` for the soft W and the per-sample sensitivity / specificity.
      ``batch_ndim``: how many leading non-sample dimensions index independent images (STAPLE estimates one
      sensitivity / specificity per sample and image); 0 pools every entry.
    """
    if samples.shape[dim] < 1:
        raise ValueError("aggregate needs at least one sample")
    x = samples.to(torch.promote_types(samples.dtype, torch.float32))
    if method == "mean":
        return x.mean(dim), x.std(dim, correction=0)
    if method == "median":
        med = _median(x, dim)
        return med, _median((x - med.unsqueeze(dim)).abs(), dim)
    binary = (x >= threshold).to(x.dtype)
    if method == "vote":
        fraction = binary.mean(dim)
        return (fraction > 0.5).to(x.dtype), binary_entropy(fraction)
    if method == "staple":
        w, _, _ = staple(binary, dim=dim, batch_ndim=batch_ndim, max_iter=max_iter, tol=tol)
        return (w >= 0.5).to(x.dtype), binary_entropy(w)
    raise ValueError(f"unknown method {method!r}; expected mean, median, vote or staple")
