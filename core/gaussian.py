"""Gaussian diffusion (DDPM, Ho et al. 2020) with eps / x0 / v prediction and stateless samplers.

Notation: alpha_t = sqrt(alpha-bar_t), sigma_t = sqrt(1 - alpha-bar_t), x_t = alpha_t x_0 + sigma_t eps.
Samplers take an explicit descending timestep list; alpha-bar of the previous level always comes from the next
listed timestep (never from t - T//n, diffusers #11347), and the step after the last listed timestep lands on the
clean sample (alpha-bar = 1, DDIM's ``set_alpha_to_one``).
"""

from __future__ import annotations

import math
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
        learn_variance: the model also outputs the variance interpolation ``v`` ("learned range", Nichol & Dhariwal
            2021, eq. 15): its output has twice the data's channels along dim 1, ``[prediction, v]``; the ``ddpm``
            sampler then uses the learned variance and ``training_loss`` adds the variational bound term.
    """

    def __init__(
        self,
        schedule: NoiseSchedule,
        prediction: Prediction = "eps",
        clip_x0: tuple[float, float] | None = None,
        min_snr_gamma: float = 5.0,
        learn_variance: bool = False,
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
        self.learn_variance = bool(learn_variance)

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

    # ------------------------------------------------------------------ learned variance
    def split_output(self, model_output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(prediction, v) of a model output: v is None unless ``learn_variance`` (then the channels split in two)."""
        if not self.learn_variance:
            return model_output, None
        if model_output.shape[1] % 2:
            raise ValueError(f"learn_variance needs an even channel count [prediction, v], got {model_output.shape}")
        return model_output.chunk(2, dim=1)

    def model_log_variance(self, v: torch.Tensor, t: torch.Tensor, t_prev: torch.Tensor | None = None) -> torch.Tensor:
        """log Sigma = f log beta + (1 - f) log beta~, f = (v + 1) / 2 (Nichol & Dhariwal 2021, eq. 15), with the
        step's beta = 1 - alpha-bar_t / alpha-bar_prev (respaced steps included) and beta~ its posterior variance.
        beta~ is 0 on the step into the clean level; as in the released code it is clipped to beta~ of the
        first step there."""
        t = batch_timesteps(t, v)
        t_prev = t - 1 if t_prev is None else batch_timesteps(t_prev, v)
        ab_t, ab_prev = self.schedule.alpha_bar(t), self.schedule.alpha_bar(t_prev)
        beta = 1.0 - ab_t / ab_prev
        tilde = beta * (1.0 - ab_prev) / (1.0 - ab_t)
        ab = self.schedule.alphas_cumprod
        tilde_first = (1.0 - ab[1] / ab[0]) * (1.0 - ab[0]) / (1.0 - ab[1]) if len(ab) > 1 else beta
        log_tilde = torch.log(torch.where(tilde > 0, tilde, torch.as_tensor(tilde_first, dtype=tilde.dtype)))
        frac = (v.to(_compute_dtype(v)) + 1) / 2
        return frac * self._coef(beta.log(), v) + (1 - frac) * self._coef(log_tilde, v)

    def vb_terms(
        self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, prediction: torch.Tensor, v: torch.Tensor
    ) -> torch.Tensor:
        """Element-wise variational-bound term in bits (Ho et al. eq. 5): KL(q(x_{t-1}|x_t, x0) || p(x_{t-1}|x_t))
        for t > 0 and the discretised decoder NLL -log p(x0 | x_1) at t = 0 (Ho et al. section 3.3, 255 bins on
        [-1, 1]). p's mean comes from ``prediction`` (pass it detached to train only the variance, as the improved
        DDPM does) and its variance from ``v``."""
        t = batch_timesteps(t, x_t)
        x0_hat, _ = self._to_x0_eps_unclipped(prediction, x_t, t)
        true_mean, _ = self.q_posterior(x0.to(x0_hat.dtype), x_t.to(x0_hat.dtype), t)
        model_mean, _ = self.q_posterior(x0_hat, x_t.to(x0_hat.dtype), t)
        log_var = self.model_log_variance(v, t)
        true_log_var = self.model_log_variance(-torch.ones_like(v), t)  # beta~ (clipped at t = 0)
        kl = 0.5 * (-1.0 + log_var - true_log_var + torch.exp(true_log_var - log_var))
        kl = kl + 0.5 * (true_mean - model_mean) ** 2 * torch.exp(-log_var)
        nll = -_discretized_gaussian_log_likelihood(x0.to(model_mean.dtype), model_mean, 0.5 * log_var)
        is_first = (t == 0).reshape((-1,) + (1,) * (x0.ndim - 1))
        return torch.where(is_first, nll, kl) / math.log(2.0)

    # ------------------------------------------------------------------ parametrisations
    def _to_x0_eps_unclipped(
        self, prediction: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        alpha, sigma = self._alpha_sigma(t, x_t)
        out, x = prediction.to(alpha.dtype), x_t.to(alpha.dtype)
        if self.prediction == "eps":
            return (x - sigma * out) / alpha, out
        if self.prediction == "x0":
            return out, (x - alpha * out) / sigma
        return alpha * x - sigma * out, sigma * x + alpha * out  # v = alpha eps - sigma x0

    def to_x0_eps(
        self, model_output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Convert the model output (its prediction half with ``learn_variance``) to (x0, eps) predictions; clip x0
        when ``clip_x0`` is set and re-derive eps."""
        t = batch_timesteps(t, x_t)
        prediction, _ = self.split_output(model_output)
        x0, eps = self._to_x0_eps_unclipped(prediction, x_t, t)
        if self.clip_x0 is not None:
            alpha, sigma = self._alpha_sigma(t, x_t)
            x = x_t.to(alpha.dtype)
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
        vb_weight: float = 1.0,
        return_terms: bool = False,
        **model_kwargs,
    ) -> torch.Tensor | dict[str, torch.Tensor]:
        """Mean squared error of the model's prediction at a random (or given) t (Ho et al. eq. 14).

        ``mask`` (broadcastable to x0) restricts the loss to entries where it is 1; the mean runs over masked-in
        entries only. ``noise_assignment`` ("hungarian" | "knn") pairs data and noise first (immiscible diffusion)
        and the target is the assigned noise. With ``learn_variance`` the loss is the improved DDPM's hybrid
        ``mse + vb_weight * vb`` (Nichol & Dhariwal 2021, section 3.1): vb is `vb_terms` in bits with the mean's
        prediction detached, so it trains the variance only (``vb_weight=1`` is their lambda = 0.001 times T = 1000).
        ``return_terms`` returns {"loss", "mse", "vb"}.
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
        expected = (b, 2 * x0.shape[1], *x0.shape[2:]) if self.learn_variance else tuple(x0.shape)
        if tuple(out.shape) != expected:
            raise ValueError(f"model output shape {tuple(out.shape)} differs from the expected {expected}")
        out, v = self.split_output(out)
        err = (out.float() - self.target(x0, noise, t).float()) ** 2
        weights = self.loss_weights(t, weighting)
        if weights is not None:
            err = err * self._coef(weights, err)
        terms = {"mse": _masked_mean(err, mask)}
        terms["vb"] = torch.zeros_like(terms["mse"])
        if v is not None and vb_weight:
            terms["vb"] = _masked_mean(self.vb_terms(x0, x_t, t, out.detach(), v).float(), mask)
        terms["loss"] = terms["mse"] + vb_weight * terms["vb"]
        return terms if return_terms else terms["loss"]

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

        Samplers: ``ddpm`` (ancestral, posterior variance or the learned one; Ho et al. Alg. 2), ``ddim`` (Song
        et al. eq. 12, with eta; eq. 16 for sigma), ``dpmpp_2m`` (DPM-Solver++(2M), Lu et al. 2022, Alg. 2: first
        order on the first step and on the step into sigma = 0). ``known`` / ``known_mask`` re-impose known entries,
        forward-noised to the current level, before every model call and exactly at the end (RePaint-style
        replacement).
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
            output = model(x.to(x_T.dtype), tt, **model_kwargs)
            x0, eps = self.to_x0_eps(output, x, tt)
            ab_t, ab_prev = self.schedule.alpha_bar(t), self.schedule.alpha_bar(t_prev)
            if sampler == "ddpm":
                mean, var = self.q_posterior(x0, x.to(dtype), tt, torch.full_like(tt, t_prev))
                _, v = self.split_output(output)
                if v is not None:
                    var = torch.exp(self.model_log_variance(v, tt, torch.full_like(tt, t_prev)))
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


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over entries where mask is 1; an all-zero mask gives 0 (with a gradient path), not NaN."""
    if mask is None:
        return values.mean()
    mask = torch.broadcast_to(mask.to(device=values.device, dtype=values.dtype), values.shape)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def _discretized_gaussian_log_likelihood(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """log P(x) of data on 255 bins of [-1, 1] under N(mean, exp(log_scale)^2), the edge bins open-ended (Ho et al.
    section 3.3). Written out because no library ships this decoder."""
    inv_std = torch.exp(-log_scale)
    upper = torch.special.ndtr(inv_std * (x - mean + 1.0 / 255.0))
    lower = torch.special.ndtr(inv_std * (x - mean - 1.0 / 255.0))
    tiny = 1e-12
    log_mid = torch.log((upper - lower).clamp(min=tiny))
    return torch.where(
        x < -0.999,
        torch.log(upper.clamp(min=tiny)),
        torch.where(x > 0.999, torch.log((1.0 - lower).clamp(min=tiny)), log_mid),
    )
