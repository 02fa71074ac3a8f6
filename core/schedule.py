"""Noise schedules and timestep lists shared by every diffusion process of diffusekit.

All schedule arrays are float64 tensors (as guided-diffusion keeps them) and are cast to the sample's dtype only at
use time, so that fp16/bf16 training never rounds alpha-bar towards 1 (diffusers PR #3005).
"""

from __future__ import annotations

import math
import warnings
from typing import Literal

import numpy as np
import torch

ScheduleName = Literal["linear", "scaled_linear", "cosine", "quad"]
Spacing = Literal["leading", "trailing", "linspace", "logsnr"]

# Default beta endpoints per named schedule (beta_start, beta_end).
_DEFAULT_ENDPOINTS: dict[str, tuple[float, float]] = {
    "linear": (1e-4, 0.02),  # Ho et al. 2020, T=1000
    "scaled_linear": (0.00085, 0.012),  # latent diffusion / Stable Diffusion
    "quad": (1e-4, 0.5),  # CSDI / ImDiffusion, T=50
}


def rescale_zero_terminal_snr(betas: torch.Tensor) -> torch.Tensor:
    """Algorithm 1 of Lin et al. 2023 (arXiv 2305.08891): shift sqrt(alpha-bar) so that the last value is 0 and
    rescale it so that the first is unchanged, then re-derive the betas (the last beta becomes exactly 1)."""
    sqrt_ab = torch.cumprod(1.0 - betas, dim=0).sqrt()
    first, last = sqrt_ab[0].clone(), sqrt_ab[-1].clone()
    sqrt_ab = (sqrt_ab - last) * first / (first - last)
    alphas_cumprod = sqrt_ab**2
    alphas = torch.cat([alphas_cumprod[:1], alphas_cumprod[1:] / alphas_cumprod[:-1]])
    return 1.0 - alphas


class NoiseSchedule:
    """A variance-preserving noise schedule: betas, alphas and their cumulative product, all float64.

    ``NoiseSchedule(betas)`` takes any 1-D sequence of betas in (0, 1]; ``NoiseSchedule.named(...)`` builds the
    schedules of the literature. With ``zero_terminal_snr=True`` the betas are rescaled so that alpha-bar_T = 0
    (Lin et al. 2023); use v-prediction (or x0) and "trailing" timesteps with it.
    """

    def __init__(self, betas, zero_terminal_snr: bool = False):
        betas = torch.as_tensor(np.asarray(betas, dtype=np.float64), dtype=torch.float64)
        if betas.ndim != 1 or betas.numel() < 1:
            raise ValueError(f"betas must be a non-empty 1-D sequence, got shape {tuple(betas.shape)}")
        if not torch.isfinite(betas).all() or (betas <= 0).any() or (betas > 1).any():
            raise ValueError("betas must be finite and lie in (0, 1]")
        if zero_terminal_snr:
            betas = rescale_zero_terminal_snr(betas)
        elif (betas[:-1] >= 1).any():
            raise ValueError("only the last beta may be 1 (a zero terminal SNR)")
        self.betas = betas
        self.zero_terminal_snr = bool(zero_terminal_snr) or bool(betas[-1] >= 1)
        self.alphas = 1.0 - betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        # Previous alpha-bar with alpha-bar_{-1} = 1 (the clean data), used by posteriors and samplers.
        self.alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod[:-1]])

    @classmethod
    def named(
        cls,
        name: ScheduleName,
        num_steps: int = 1000,
        beta_start: float | None = None,
        beta_end: float | None = None,
        zero_terminal_snr: bool = False,
    ) -> NoiseSchedule:
        """Build a schedule of the literature.

        - ``linear``: linspace(beta_start, beta_end) (Ho et al. 2020; default 1e-4..0.02 as in diffusers, unscaled).
        - ``scaled_linear``: linspace(sqrt(b0), sqrt(b1))**2 (latent diffusion; default 0.00085..0.012).
        - ``cosine``: alpha-bar(t) = cos^2(((t/T) + s)/(1 + s) * pi/2), s = 0.008, betas capped at 0.999
          (Nichol & Dhariwal 2021, eq. 17; diffusers' "squaredcos_cap_v2").
        - ``quad``: linspace(sqrt(b0), sqrt(b1))**2 with CSDI's endpoints (default 1e-4..0.5), as in ImDiffusion.
        """
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        if name == "cosine":
            if beta_start is not None or beta_end is not None:
                raise ValueError("the cosine schedule takes no beta endpoints")
            betas = cosine_betas(num_steps)
        elif name in _DEFAULT_ENDPOINTS:
            b0, b1 = _DEFAULT_ENDPOINTS[name]
            b0 = b0 if beta_start is None else beta_start
            b1 = b1 if beta_end is None else beta_end
            if name == "linear":
                betas = np.linspace(b0, b1, num_steps, dtype=np.float64)
            else:
                betas = np.linspace(math.sqrt(b0), math.sqrt(b1), num_steps, dtype=np.float64) ** 2
        else:
            raise ValueError(f"unknown schedule {name!r}; expected one of linear, scaled_linear, cosine, quad")
        schedule = cls(betas, zero_terminal_snr=zero_terminal_snr)
        if not zero_terminal_snr and schedule.alphas_cumprod[-1] > 0.05:
            warnings.warn(
                f"{name} schedule with T={num_steps} ends at alpha-bar_T={float(schedule.alphas_cumprod[-1]):.3f}: "
                "x_T is far from pure noise; raise beta_end or num_steps",
                stacklevel=2,
            )
        return schedule

    @property
    def num_steps(self) -> int:
        return self.betas.numel()

    def __len__(self) -> int:
        return self.num_steps

    def __repr__(self) -> str:
        return (
            f"NoiseSchedule(T={self.num_steps}, beta=[{float(self.betas[0]):.3g}..{float(self.betas[-1]):.3g}], "
            f"alpha_bar_T={float(self.alphas_cumprod[-1]):.3g})"
        )

    def alpha_bar(self, t: torch.Tensor | int) -> torch.Tensor:
        """alpha-bar at integer timesteps; t = -1 means the clean data (alpha-bar = 1). float64."""
        t = torch.as_tensor(t, dtype=torch.long).cpu()  # the schedule lives on the CPU; callers move the result
        return torch.where(t < 0, torch.ones((), dtype=torch.float64), self.alphas_cumprod[t.clamp(min=0)])

    def snr(self, t: torch.Tensor | int) -> torch.Tensor:
        """Signal-to-noise ratio alpha-bar / (1 - alpha-bar) at integer timesteps (float64)."""
        ab = self.alpha_bar(t)
        return ab / (1.0 - ab)


def cosine_betas(num_steps: int, s: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
    """Betas of the cosine schedule (Nichol & Dhariwal 2021, eq. 17), capped at ``max_beta``."""

    def alpha_bar(u: np.ndarray) -> np.ndarray:
        return np.cos((u + s) / (1 + s) * math.pi / 2) ** 2

    u = np.arange(num_steps + 1, dtype=np.float64) / num_steps
    betas = 1.0 - alpha_bar(u[1:]) / alpha_bar(u[:-1])
    return np.minimum(betas, max_beta)


def make_timesteps(
    num_train_steps: int, num_steps: int, spacing: Spacing = "trailing", schedule: NoiseSchedule | None = None
) -> list[int]:
    """Descending integer timesteps for sampling: the spacings of Lin et al. 2023, Table 2, and logSNR.

    - ``trailing``: round(arange(T, 0, -T/n)) - 1, starts at T-1 (use with zero terminal SNR).
    - ``leading``: arange(n) * (T // n), reversed; never visits T-1 (DDIM's default in diffusers).
    - ``linspace``: round(linspace(0, T-1, n)), reversed.
    - ``logsnr``: uniform in lambda = log(alpha_t / sigma_t) from t = T-1 to t = 0 (DPM-Solver, Lu et al. 2022,
      §5 "uniform logSNR" steps); needs ``schedule``. Equal lambda steps keep DPM-Solver++(2M)'s ratio r = 1,
      whereas t-uniform spacings give very unequal lambda steps near t = 0.
    The result is strictly descending with no duplicates (diffusers #12771).
    """
    T, n = int(num_train_steps), int(num_steps)
    if not 1 <= n <= T:
        raise ValueError(f"num_steps must be in [1, {T}], got {n}")
    if spacing == "logsnr":
        return _logsnr_timesteps(T, n, schedule)
    if spacing == "trailing":
        ts = np.round(np.arange(T, 0, -T / n)).astype(np.int64) - 1
    elif spacing == "leading":
        ts = (np.arange(n) * (T // n))[::-1].astype(np.int64)
    elif spacing == "linspace":
        ts = np.round(np.linspace(0, T - 1, n))[::-1].astype(np.int64)
    else:
        raise ValueError(f"unknown spacing {spacing!r}; expected trailing, leading, linspace or logsnr")
    out = [int(t) for t in ts]
    if any(b >= a for a, b in zip(out, out[1:])):
        raise ValueError(f"{spacing} spacing of {n} steps over T={T} gives repeated timesteps: {out}")
    return out


def _logsnr_timesteps(T: int, n: int, schedule: NoiseSchedule | None) -> list[int]:
    if schedule is None or schedule.num_steps != T:
        raise ValueError("logsnr spacing needs the NoiseSchedule of the T training steps (schedule=...)")
    ab = schedule.alphas_cumprod.clamp(max=1 - 1e-12)
    lam = 0.5 * (torch.log(ab) - torch.log1p(-ab))  # decreasing in t
    lam_T = lam[-1] if torch.isfinite(lam[-1]) else lam[-2]  # zero terminal SNR: lambda_T = -inf
    targets = torch.linspace(float(lam_T), float(lam[0]), n, dtype=torch.float64)
    out = [int((lam - target).abs().argmin()) for target in targets]  # nearest timesteps, descending
    out[0] = T - 1  # start from pure noise also under a zero terminal SNR (lambda_T = -inf)
    # lambda rises steeply as t -> 0, so several targets can share a timestep there: keep step i inside the
    # range [n-1-i, T-1-i] that leaves room for the others, then push shared timesteps apart upwards
    out = [min(max(t, n - 1 - i), T - 1 - i) for i, t in enumerate(out)]
    for i in range(n - 2, -1, -1):
        out[i] = max(out[i], out[i + 1] + 1)
    return out


def validate_timesteps(timesteps, num_train_steps: int) -> list[int]:
    """Check that a user's timestep list is integral, strictly descending and inside [0, T)."""
    ts = [int(t) for t in (timesteps.tolist() if isinstance(timesteps, torch.Tensor) else timesteps)]
    if not ts:
        raise ValueError("timesteps is empty")
    if ts[0] >= num_train_steps or ts[-1] < 0:
        raise ValueError(f"timesteps must lie in [0, {num_train_steps}), got {ts[0]}..{ts[-1]}")
    if any(b >= a for a, b in zip(ts, ts[1:])):
        raise ValueError(f"timesteps must be strictly descending without duplicates, got {ts}")
    return ts


def resolve_timesteps(timesteps, num_train_steps: int) -> list[int]:
    """A sampler's ``timesteps`` argument as a list: None = all T steps; an int n = n "trailing" steps; a
    sequence or tensor = validated descending timesteps."""
    if timesteps is None:
        return list(range(num_train_steps - 1, -1, -1))
    if isinstance(timesteps, int):
        return make_timesteps(num_train_steps, timesteps, "trailing")
    return validate_timesteps(timesteps, num_train_steps)


def batch_timesteps(t: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor:
    """``t`` as a LongTensor (B,) on ``like``'s device; a scalar is repeated over the batch of ``like``."""
    t = torch.as_tensor(t, dtype=torch.long, device=like.device)
    return t.expand(like.shape[0]) if t.ndim == 0 else t
