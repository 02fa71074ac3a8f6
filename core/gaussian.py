"""Gaussian diffusion (DDPM, Ho et al. 2020) with eps / x0 / v prediction and stateless samplers.

Notation: alpha_t = sqrt(alpha-bar_t), sigma_t = sqrt(1 - alpha-bar_t), x_t = alpha_t x_0 + sigma_t eps.
Samplers take an explicit descending timestep list; alpha-bar of the previous level always comes from the next
listed timestep (never from t - T//n, diffusers #11347), and the step after the last listed timestep lands on the
clean sample (alpha-bar = 1, DDIM's ``set_alpha_to_one``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from .noise_assignment import AssignMethod, assign_noise
from .schedule import NoiseSchedule, batch_timesteps, resolve_timesteps

Prediction = Literal["eps", "x0", "v"]
Sampler = Literal["ddpm", "ddim", "dpmpp_2m"]
Model = Callable[..., torch.Tensor]


@dataclass
class Trajectory:
    """What ``sample(..., return_trajectory=True)`` returns.

    ``states[:, i]`` is the state after step i (at level ``timesteps[i + 1]``, the clean sample for the last step);
    ``x0_preds[:, i]`` is the model's x0 prediction at step i. Both are stacked along dim 1: (B, S, ...).
    """

    sample: torch.Tensor
    states: torch.Tensor
    x0_preds: torch.Tensor
    timesteps: list[int]


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """Coefficients are applied in at least float32 so that fp16/bf16 samples never round alpha-bar to 1."""
    return torch.promote_types(x.dtype, torch.float32)


class GaussianDiffusion:
    """The Gaussian forward process of a ``NoiseSchedule``, its training loss and its samplers.

    Args:
        schedule: the noise schedule (float64 buffers).
        prediction: what the model predicts: ``eps`` (noise), ``x0`` (clean sample) or ``v`` (Salimans & Ho 2022).
        clip_x0: optional (low, high) clip of the x0 prediction while sampling (off by default: it ruins latent-space
            sampling, diffusers #271).
        min_snr_gamma: gamma of Min-SNR loss weighting (Hang et al. 2023), used when ``weighting="min_snr"``.
    """

    def __init__(
        self,
        schedule: NoiseSchedule,
        prediction: Prediction = "eps",
        clip_x0: tuple[float, float] | None = None,
        min_snr_gamma: float = 5.0,
    ):
        if prediction not in ("eps", "x0", "v"):
            raise ValueError(f"unknown prediction {prediction!r}; expected eps, x0 or v")
        if schedule.zero_terminal_snr and prediction == "eps":
            raise ValueError(
                "zero terminal SNR with eps-prediction divides by sqrt(alpha-bar_T) = 0 (diffusers #3851): "
                "use prediction='v' or 'x0'"
            )
        self.schedule = schedule
        self.prediction = prediction
        self.clip_x0 = clip_x0
        self.min_snr_gamma = float(min_snr_gamma)

    @property
    def num_steps(self) -> int:
        return self.schedule.num_steps

    # ------------------------------------------------------------------ coefficients
    def _coef(self, values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Per-sample float64 values (B,) broadcast against x, in the compute dtype, on x's device."""
        values = values.to(device=x.device, dtype=_compute_dtype(x))
        return values.reshape(values.shape + (1,) * (x.ndim - values.ndim))

    def _alpha_sigma(self, t: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ab = self.schedule.alpha_bar(t)
        return self._coef(ab.sqrt(), x), self._coef((1.0 - ab).sqrt(), x)

    # ------------------------------------------------------------------ forward process
    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """x_t = sqrt(alpha-bar_t) x0 + sqrt(1 - alpha-bar_t) noise (Ho et al. eq. 4); t is a LongTensor (B,)."""
        if noise is None:
            noise = torch.randn_like(x0)
        t = batch_timesteps(t, x0)
        alpha, sigma = self._alpha_sigma(t, x0)
        return (alpha * x0 + sigma * noise).to(x0.dtype)

    def q_posterior(
        self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, t_prev: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of q(x_{t_prev} | x_t, x0) (Ho et al. eq. 6-7), for any t_prev < t (default t - 1;
        t_prev = -1 is the clean data). With respacing the step's effective beta is 1 - alpha-bar_t/alpha-bar_prev."""
        t = batch_timesteps(t, x_t)
        t_prev = t - 1 if t_prev is None else batch_timesteps(t_prev, x_t)
        ab_t, ab_prev = self.schedule.alpha_bar(t), self.schedule.alpha_bar(t_prev)
        beta = 1.0 - ab_t / ab_prev
        coef_x0 = ab_prev.sqrt() * beta / (1.0 - ab_t)
        coef_xt = (1.0 - beta).sqrt() * (1.0 - ab_prev) / (1.0 - ab_t)
        var = beta * (1.0 - ab_prev) / (1.0 - ab_t)
        mean = self._coef(coef_x0, x_t) * x0 + self._coef(coef_xt, x_t) * x_t
        return mean, self._coef(var, x_t)

    # ------------------------------------------------------------------ parametrisations
    def to_x0_eps(
        self, model_output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Convert the model output to (x0, eps) predictions; clip x0 when ``clip_x0`` is set and re-derive eps."""
        t = batch_timesteps(t, x_t)
        alpha, sigma = self._alpha_sigma(t, x_t)
        out, x = model_output.to(alpha.dtype), x_t.to(alpha.dtype)
        if self.prediction == "eps":
            x0, eps = (x - sigma * out) / alpha, out
        elif self.prediction == "x0":
            x0, eps = out, (x - alpha * out) / sigma
        else:  # v = alpha eps - sigma x0
            x0, eps = alpha * x - sigma * out, sigma * x + alpha * out
        if self.clip_x0 is not None:
            x0 = x0.clamp(*self.clip_x0)
            eps = (x - alpha * x0) / sigma
        return x0, eps

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The regression target of the configured prediction type."""
        if self.prediction == "eps":
            return noise
        if self.prediction == "x0":
            return x0
        alpha, sigma = self._alpha_sigma(batch_timesteps(t, x0), x0)
        return (alpha * noise - sigma * x0).to(x0.dtype)

    def loss_weights(self, t: torch.Tensor, weighting: str | None) -> torch.Tensor | None:
        """Per-sample loss weights. ``min_snr``: min(SNR, gamma) expressed for the prediction type
        (Hang et al. 2023, eq. 8-10): /SNR for eps, /(SNR + 1) for v, as is for x0."""
        if weighting is None:
            return None
        if weighting != "min_snr":
            raise ValueError(f"unknown weighting {weighting!r}; expected None or 'min_snr'")
        snr = self.schedule.snr(t)
        clipped = snr.clamp(max=self.min_snr_gamma)
        if self.prediction == "eps":
            if torch.isinf(snr).any() or (snr == 0).any():
                raise ValueError("min_snr weighting with eps-prediction needs 0 < SNR < inf at every t")
            return clipped / snr
        if self.prediction == "v":
            return clipped / (snr + 1.0)
        return clipped

    # ------------------------------------------------------------------ training
    def training_loss(
        self,
        model: Model,
        x0: torch.Tensor,
        t: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        weighting: str | None = None,
        noise_assignment: AssignMethod | None = None,
        generator: torch.Generator | None = None,
        **model_kwargs,
    ) -> torch.Tensor:
        """Mean squared error of the model's prediction at a random (or given) t (Ho et al. eq. 14).

        ``mask`` (broadcastable to x0) restricts the loss to entries where it is 1; the mean runs over masked-in
        entries only. ``noise_assignment`` ("hungarian" | "knn") pairs data and noise first (immiscible diffusion)
        and the target is the assigned noise.
        """
        b = x0.shape[0]
        if t is None:
            t = torch.randint(0, self.num_steps, (b,), generator=generator, device="cpu").to(x0.device)
        t = batch_timesteps(t, x0)
        if noise is None and noise_assignment != "knn":
            noise = torch.randn(x0.shape, generator=generator, device="cpu", dtype=x0.dtype).to(x0.device)
        if noise_assignment is not None:
            noise = assign_noise(x0, noise, noise_assignment, generator=generator)
        x_t = self.q_sample(x0, t, noise)
        out = model(x_t, t, **model_kwargs)
        if out.shape != x0.shape:
            raise ValueError(f"model output shape {tuple(out.shape)} differs from the data shape {tuple(x0.shape)}")
        err = (out.float() - self.target(x0, noise, t).float()) ** 2
        weights = self.loss_weights(t, weighting)
        if weights is not None:
            err = err * self._coef(weights, err)
        if mask is None:
            return err.mean()
        mask = torch.broadcast_to(mask.to(err.dtype), err.shape)
        # clamp keeps an all-zero mask at 0 (with a gradient path) instead of NaN
        return (err * mask).sum() / mask.sum().clamp(min=1.0)

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(
        self,
        model: Model,
        x_T: torch.Tensor,
        timesteps: int | Sequence[int] | torch.Tensor | None = None,
        sampler: Sampler = "ddim",
        eta: float = 0.0,
        generator: torch.Generator | None = None,
        known: torch.Tensor | None = None,
        known_mask: torch.Tensor | None = None,
        return_trajectory: bool = False,
        **model_kwargs,
    ) -> torch.Tensor | Trajectory:
        """Run the reverse process from ``x_T``, the state at ``timesteps[0]``, down to the clean sample.

        Samplers: ``ddpm`` (ancestral, posterior variance; Ho et al. Alg. 2), ``ddim`` (Song et al. eq. 12, with
        eta; eq. 16 for sigma), ``dpmpp_2m`` (DPM-Solver++(2M), Lu et al. 2022, Alg. 2: first order on the first
        step and on the step into sigma = 0). ``known`` / ``known_mask`` re-impose known entries, forward-noised to
        the current level, before every model call and exactly at the end (RePaint-style replacement).
        """
        if sampler not in ("ddpm", "ddim", "dpmpp_2m"):
            raise ValueError(f"unknown sampler {sampler!r}; expected ddpm, ddim or dpmpp_2m")
        if (known is None) != (known_mask is None):
            raise ValueError("known and known_mask must be given together")
        ts = resolve_timesteps(timesteps, self.num_steps)
        x = x_T
        dtype = _compute_dtype(x_T)
        if known is not None:
            known = known.to(device=x.device, dtype=dtype)
            known_mask = torch.broadcast_to(known_mask.to(device=x.device, dtype=dtype), x.shape)
        states, x0_preds = [], []
        x0_prev: torch.Tensor | None = None  # previous x0 prediction (DPM-Solver++ 2M)
        lambda_prev: torch.Tensor | None = None

        def randn() -> torch.Tensor:
            return torch.randn(x.shape, generator=generator, device="cpu", dtype=dtype).to(x.device)

        for i, t in enumerate(ts):
            t_prev = ts[i + 1] if i + 1 < len(ts) else -1
            tt = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
            if known is not None:
                x = known_mask * self.q_sample(known, tt, randn()) + (1 - known_mask) * x.to(dtype)
            x0, eps = self.to_x0_eps(model(x.to(x_T.dtype), tt, **model_kwargs), x, tt)
            ab_t, ab_prev = self.schedule.alpha_bar(t), self.schedule.alpha_bar(t_prev)
            if sampler == "ddpm":
                mean, var = self.q_posterior(x0, x.to(dtype), tt, torch.full_like(tt, t_prev))
                x = mean + var.sqrt() * randn() if t_prev >= 0 else mean
            elif sampler == "ddim":
                sigma = eta * ((1 - ab_prev) / (1 - ab_t) * (1 - ab_t / ab_prev)).sqrt()
                dir_coef = (1 - ab_prev - sigma**2).clamp(min=0).sqrt()
                x = float(ab_prev.sqrt()) * x0 + float(dir_coef) * eps
                if sigma > 0:
                    x = x + float(sigma) * randn()
            else:
                x, x0_prev, lambda_prev = self._dpmpp_2m_step(x.to(dtype), x0, ab_t, ab_prev, x0_prev, lambda_prev)
            if known is not None and t_prev < 0:
                x = known_mask * known + (1 - known_mask) * x
            if return_trajectory:
                states.append(x.to(x_T.dtype))
                x0_preds.append(x0.to(x_T.dtype))
        x = x.to(x_T.dtype)
        if not return_trajectory:
            return x
        return Trajectory(x, torch.stack(states, dim=1), torch.stack(x0_preds, dim=1), ts)

    @staticmethod
    def _dpmpp_2m_step(x, x0, ab_s, ab_t, x0_prev, lambda_prev):
        """One DPM-Solver++(2M) step from level s to level t (Lu et al. 2022, eq. 8 and Alg. 2):
        x_t = (sigma_t/sigma_s) x_s - alpha_t (e^{-h} - 1) D, D = (1 + 1/(2r)) x0 - 1/(2r) x0_prev, r = h_prev/h."""
        alpha_s, sigma_s = ab_s.sqrt(), (1 - ab_s).sqrt()
        lambda_s = torch.log(alpha_s / sigma_s)
        if ab_t >= 1:  # into sigma = 0: the first-order step lands exactly on D = x0
            return x0, x0, lambda_s
        alpha_t, sigma_t = ab_t.sqrt(), (1 - ab_t).sqrt()
        lambda_t = torch.log(alpha_t / sigma_t)
        h = lambda_t - lambda_s
        d = x0
        if x0_prev is not None:
            r = (lambda_s - lambda_prev) / h
            d = (1 + 1 / (2 * r)).item() * x0 - (1 / (2 * r)).item() * x0_prev
        x_t = float(sigma_t / sigma_s) * x - float(alpha_t * torch.expm1(-h)) * d
        return x_t, x0, lambda_s
