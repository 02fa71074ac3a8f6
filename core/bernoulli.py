"""Bernoulli diffusion for binary data y in {0, 1} (BerDiff: Chen, Wang & Shan, MICCAI 2023, 2304.04429).

Forward process (BerDiff's Bernoulli kernel): q(y_t | y_{t-1}) = B((1 - beta_t) y_{t-1} + beta_t / 2) and,
composed, q(y_t | y_0) = B(alpha-bar_t y_0 + (1 - alpha-bar_t) / 2), i.e. y_t = y_0 XOR eps with
eps ~ B((1 - alpha-bar_t) / 2). The released BerDiff and Echo-DND code drop the (1 - alpha-bar_t) / 2 term
(a missing line continuation, medical.md §1.6); it is kept here. A jump from t to any earlier level s
(respacing) is again such a kernel, with the effective alpha = alpha-bar_t / alpha-bar_s, so posteriors and
samplers work on any descending timestep list.

Model outputs are logits: of y_0 (``prediction="x0"``) or of the flip eps (``"flip"``, BerDiff's
eps-parametrisation, y_0 = |y_t - eps|). Sigmoids are applied once, consistently; posteriors and the KL are
computed in log space, so saturated logits give neither log(0) nor dead gradients.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from .gaussian import Trajectory
from .schedule import NoiseSchedule, batch_timesteps, resolve_timesteps

Prediction = Literal["x0", "flip"]
Sampler = Literal["ancestral", "ddim"]
Model = Callable[..., torch.Tensor]


@dataclass
class BernoulliTrajectory(Trajectory):
    """``sample`` is the final y0 probability map and ``mask`` its thresholded mask; ``states[:, i]`` is the
    state after step i (the probability map after the last step); ``x0_preds[:, i]`` the y0 probabilities."""

    mask: torch.Tensor


# log-sigmoid, logit and BCE-with-logits written with softplus / log: torch's own CPU kernels for these three
# (F.logsigmoid, torch.logit, F.binary_cross_entropy_with_logits) took ~8 ms per 1k-element call on a busy
# 2-core machine (thread-pool overhead), about 1000x softplus; the results are the same.
def _log_sigmoid(x: torch.Tensor) -> torch.Tensor:
    return -F.softplus(-x)


def _logit(p: torch.Tensor) -> torch.Tensor:
    """log p - log(1 - p); +-inf for p in {1, 0}."""
    return torch.log(p) - torch.log1p(-p)


def _bce_with_logits(logit: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """-[y log sigmoid(x) + (1 - y) log sigmoid(-x)] = softplus(x) - x y, element-wise."""
    return F.softplus(logit) - logit * target


def _log_mixture(y0_logit: torch.Tensor, alpha_bar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(log P(1), log P(0)) of B(alpha-bar y0 + (1 - alpha-bar)/2) with y0 = sigmoid(logit), in log space:
    log(ab sigmoid(L) + c) = logaddexp(log ab + logsigmoid(L), log c). Logits may be +-inf (hard y0)."""
    log_ab, log_c = torch.log(alpha_bar), torch.log((1.0 - alpha_bar) / 2)
    return (
        torch.logaddexp(log_ab + _log_sigmoid(y0_logit), log_c),
        torch.logaddexp(log_ab + _log_sigmoid(-y0_logit), log_c),
    )


class BernoulliDiffusion:
    """The Bernoulli forward process of a ``NoiseSchedule``, its KL + BCE loss and its samplers (BerDiff).

    Args:
        schedule: the noise schedule shared with the Gaussian process (float64 buffers).
        prediction: ``x0`` (the model outputs logits of y_0) or ``flip`` (logits of the flip noise eps).
        eps: floor of probabilities in ``posterior`` (the loss and samplers work in log space and need none).
    """

    def __init__(self, schedule: NoiseSchedule, prediction: Prediction = "x0", eps: float = 1e-12):
        if prediction not in ("x0", "flip"):
            raise ValueError(f"unknown prediction {prediction!r}; expected x0 or flip")
        self.schedule = schedule
        self.prediction = prediction
        self.eps = float(eps)

    @property
    def num_steps(self) -> int:
        return self.schedule.num_steps

    # ------------------------------------------------------------------ helpers
    def _alpha_bar(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """alpha-bar at per-sample t (B,), broadcast against y, in y's compute dtype (at least float32)."""
        ab = self.schedule.alpha_bar(t).to(device=y.device, dtype=torch.promote_types(y.dtype, torch.float32))
        return ab.reshape(ab.shape + (1,) * (y.ndim - ab.ndim))

    @staticmethod
    def _uniform(y: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        device = generator.device if generator is not None else y.device
        return torch.rand(y.shape, generator=generator, device=device).to(y.device)

    # ------------------------------------------------------------------ forward process
    def q_probs(self, y0: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """P(y_t = 1 | y_0) = alpha-bar_t y_0 + (1 - alpha-bar_t) / 2 (BerDiff's q(y_t | y_0)); y0 may be
        soft."""
        ab = self._alpha_bar(batch_timesteps(t, y0), y0)
        return ab * y0 + (1.0 - ab) / 2

    def q_sample(
        self, y0: torch.Tensor, t: torch.Tensor | int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Draw y_t ~ B(q_probs(y0, t)); returned in y0's dtype."""
        probs = self.q_probs(y0, t)
        return (self._uniform(probs, generator) < probs).to(y0.dtype)

    def posterior(
        self,
        y_t: torch.Tensor,
        y0_prob: torch.Tensor,
        t: torch.Tensor | int,
        t_prev: torch.Tensor | int | None = None,
    ) -> torch.Tensor:
        """theta_post = P(y_{t_prev} = 1 | y_t, y_0) (BerDiff's theta_post), element-wise:
        A1 = [a y_t + (1-a)/2][ab_p y_0 + (1-ab_p)/2], A0 = [a (1-y_t) + (1-a)/2][ab_p (1-y_0) + (1-ab_p)/2],
        theta = A1 / (A0 + A1), with ab_p = alpha-bar_{t_prev} and a = alpha-bar_t / ab_p (a = alpha_t
        for t_prev = t - 1, the default). For a soft y0_prob this is D3PM's x0-parametrised reverse step
        (Austin et al. 2021, eq. 4), since q(y_{t-1} | y_0) is linear in y_0. At t_prev = -1 (the clean
        level) it returns y0_prob.
        """
        t = batch_timesteps(t, y_t)
        t_prev = t - 1 if t_prev is None else batch_timesteps(t_prev, y_t)
        ab_t, ab_p = self._alpha_bar(t, y_t), self._alpha_bar(t_prev, y_t)
        a = ab_t / ab_p
        a1 = (a * y_t + (1 - a) / 2) * (ab_p * y0_prob + (1 - ab_p) / 2)
        a0 = (a * (1 - y_t) + (1 - a) / 2) * (ab_p * (1 - y0_prob) + (1 - ab_p) / 2)
        theta = a1 / (a0 + a1).clamp(min=self.eps)
        return torch.where(ab_p >= 1, y0_prob.to(theta.dtype), theta)

    def posterior_logit(
        self, y_t: torch.Tensor, y0_logit: torch.Tensor, t: torch.Tensor, t_prev: torch.Tensor
    ) -> torch.Tensor:
        """logit(theta_post) = log A1 - log A0 of ``posterior`` from y0 logits, in log space (t_prev >= 0)."""
        ab_t, ab_p = self._alpha_bar(t, y_t), self._alpha_bar(t_prev, y_t)
        a = ab_t / ab_p
        log_k1, log_k0 = torch.log(a * y_t + (1 - a) / 2), torch.log(a * (1 - y_t) + (1 - a) / 2)
        log_m1, log_m0 = _log_mixture(y0_logit.to(ab_t.dtype), ab_p)
        return (log_k1 + log_m1) - (log_k0 + log_m0)

    # ------------------------------------------------------------------ parametrisations
    def y0_logit(self, model_output: torch.Tensor, y_t: torch.Tensor) -> torch.Tensor:
        """Logits of y_0 from the model output. ``flip``: y0_prob = y_t (1 - p_flip) + (1 - y_t) p_flip, whose
        logit for binary y_t is logit(p_flip) (1 - 2 y_t)."""
        out = model_output.float() if model_output.dtype in (torch.float16, torch.bfloat16) else model_output
        return out if self.prediction == "x0" else out * (1 - 2 * y_t.to(out.dtype))

    def predict_y0_prob(self, model_output: torch.Tensor, y_t: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.y0_logit(model_output, y_t))

    # ------------------------------------------------------------------ training
    def training_loss(
        self,
        model: Model,
        y0: torch.Tensor,
        t: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        kl_weight: float = 1.0,
        bce_weight: float = 1.0,
        bits: bool = True,
        generator: torch.Generator | None = None,
        return_terms: bool = False,
        **model_kwargs,
    ) -> torch.Tensor | dict[str, torch.Tensor]:
        """BerDiff's "mix" loss: kl_weight * L_vb + bce_weight * L_bce, each a mean over masked-in entries.

        L_vb = KL(q(y_{t-1} | y_t, y_0) || p_theta(y_{t-1} | y_t)) (Ho et al. eq. 5, Bernoulli posteriors),
        and at t = 0 the decoder NLL -log p_theta(y_0 | y_1), p_theta = B(y0_prob) (D3PM / BerDiff). L_bce is
        the BCE of the logits against the parametrised target (y_0, or the flip |y_t - y_0|). ``bits`` divides
        both by ln 2, as BerDiff and Echo-DND do. ``return_terms`` returns {"loss", "kl", "bce"}.
        """
        b = y0.shape[0]
        if t is None:
            gen_device = generator.device if generator is not None else "cpu"
            t = torch.randint(0, self.num_steps, (b,), generator=generator, device=gen_device)
        t = batch_timesteps(t, y0)
        y0 = y0.to(torch.promote_types(y0.dtype, torch.float32))
        y_t = self.q_sample(y0, t, generator)
        out = model(y_t, t, **model_kwargs)
        if out.shape != y0.shape:
            raise ValueError(f"model output shape {tuple(out.shape)} differs from the data shape {tuple(y0.shape)}")
        logit = self.y0_logit(out, y_t)
        # decoder NLL at t = 0: BCE of y0 under B(sigmoid(logit))
        nll = _bce_with_logits(logit, y0)
        kl = torch.zeros_like(nll)
        if self.num_steps > 1:
            # rows with t = 0 get a dummy step 1 -> 0, discarded below (keeps their gradients finite)
            t_kl = torch.where(t == 0, torch.ones_like(t), t)
            true_logit = self.posterior_logit(y_t, _logit(y0), t_kl, t_kl - 1)
            model_logit = self.posterior_logit(y_t, logit, t_kl, t_kl - 1)
            # KL(B(sigmoid a) || B(sigmoid b)) = sigmoid(a) (a - b) + softplus(b) - softplus(a)
            kl = torch.sigmoid(true_logit) * (true_logit - model_logit) + F.softplus(model_logit)
            kl = kl - F.softplus(true_logit)
        is_first = (t == 0).reshape((b,) + (1,) * (y0.ndim - 1))
        vb = torch.where(is_first, nll, kl)
        target = y0 if self.prediction == "x0" else (y_t - y0).abs()
        bce = _bce_with_logits(out.to(logit.dtype), target)
        scale = 1.0 / math.log(2.0) if bits else 1.0
        if mask is None:
            vb_mean, bce_mean = vb.mean(), bce.mean()
        else:
            mask = torch.broadcast_to(mask.to(device=vb.device, dtype=vb.dtype), vb.shape)
            count = mask.sum().clamp(min=1.0)  # an all-zero mask gives 0, not NaN
            vb_mean, bce_mean = (vb * mask).sum() / count, (bce * mask).sum() / count
        vb_mean, bce_mean = vb_mean * scale, bce_mean * scale
        loss = kl_weight * vb_mean + bce_weight * bce_mean
        if return_terms:
            return {"loss": loss, "kl": vb_mean, "bce": bce_mean}
        return loss

    # ------------------------------------------------------------------ sampling
    @staticmethod
    def _infer_device(model: Model, model_kwargs: dict) -> torch.device:
        for value in model_kwargs.values():
            if isinstance(value, torch.Tensor):
                return value.device
        params = getattr(model, "parameters", None)
        if callable(params):
            for p in params():
                return p.device
        return torch.device("cpu")

    @torch.no_grad()
    def sample(
        self,
        model: Model,
        y_T: torch.Tensor | None = None,
        shape: Sequence[int] | None = None,
        timesteps: int | Sequence[int] | torch.Tensor | None = None,
        sampler: Sampler = "ancestral",
        generator: torch.Generator | None = None,
        return_trajectory: bool = False,
        threshold: float = 0.5,
        device: torch.device | str | None = None,
        **model_kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor] | BernoulliTrajectory:
        """Run the reverse process from ``y_T`` (the state at ``timesteps[0]``; drawn from B(1/2) with
        ``shape`` when None) down to the clean level. Returns (y0 probability map of the last step, the map >=
        threshold), or a ``BernoulliTrajectory`` with ``return_trajectory=True``.

        - ``ancestral``: y_{t_prev} ~ B(theta_post(y_t, y0_prob)) (``posterior``; BerDiff's reverse step).
        - ``ddim``: BerDiff's DDIM-like non-Markovian step (BerDiff, accelerated sampling; Song et al. 2021):
          q_sigma(y_s | y_t, y_0) = B(sigma y_t + (ab_s - sigma ab_t) y_0 + (1 - ab_s - sigma (1 - ab_t))/2),
          which keeps q(y_s | y_0) for any sigma; with BerDiff's sigma = (1 - ab_s) / (1 - ab_t) the constant
          term vanishes and the step is B(sigma y_t + (1 - sigma) y0_prob): keep y_t with probability sigma,
          else take the prediction. It is still a Bernoulli draw (as in the released code); it only ever moves
          entries towards the prediction, and at the clean level (sigma = 0) it returns y0_prob.
        The last listed timestep steps to the clean level, whose output is the model's y0 probability map.
        """
        if sampler not in ("ancestral", "ddim"):
            raise ValueError(f"unknown sampler {sampler!r}; expected ancestral or ddim")
        if y_T is None:
            if shape is None:
                raise ValueError("give y_T or shape")
            device = torch.device(device) if device is not None else self._infer_device(model, model_kwargs)
            y_T = torch.empty(tuple(shape), device=device)
            y_T = (self._uniform(y_T, generator) < 0.5).float()
        ts = resolve_timesteps(timesteps, self.num_steps)
        y = y_T.to(torch.promote_types(y_T.dtype, torch.float32))
        model_dtype = y_T.dtype if y_T.is_floating_point() else y.dtype
        states, y0_preds = [], []
        for i, t in enumerate(ts):
            t_prev = ts[i + 1] if i + 1 < len(ts) else -1
            tt = torch.full((y.shape[0],), t, dtype=torch.long, device=y.device)
            logit = self.y0_logit(model(y.to(model_dtype), tt, **model_kwargs), y).to(y.dtype)
            y0_prob = torch.sigmoid(logit)
            if t_prev < 0:
                y = y0_prob
            else:
                if sampler == "ancestral":
                    theta = torch.sigmoid(self.posterior_logit(y, logit, tt, torch.full_like(tt, t_prev)))
                else:
                    ab_t, ab_s = self.schedule.alpha_bar(t), self.schedule.alpha_bar(t_prev)
                    sigma = float((1 - ab_s) / (1 - ab_t))
                    theta = sigma * y + (1 - sigma) * y0_prob
                y = (self._uniform(y, generator) < theta).to(y.dtype)
            if return_trajectory:
                states.append(y)
                y0_preds.append(y0_prob)
        mask = (y >= threshold).to(y.dtype)
        if not return_trajectory:
            return y, mask
        return BernoulliTrajectory(y, torch.stack(states, dim=1), torch.stack(y0_preds, dim=1), ts, mask)
