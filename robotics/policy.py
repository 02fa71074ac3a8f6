"""Diffusion Policy (Chi et al., RSS 2023) on the core's Gaussian diffusion, with Real-Time Iteration inference
(RTI-DP, Duan, Yin & Kragic 2025, Alg. 1).

Training: eps-prediction MSE of the action chunk (horizon T) given the flattened, normalised observation history
(n_obs steps), DDPM with 100 steps on the squared-cosine schedule, x0 clipped to [-1, 1] while sampling (DP's
``clip_sample``). Inference modes (`predict_chunk`): DDPM over all 100 steps (fixed-small posterior variance) or
DDIM over a few trailing steps. RTI (`rti_refine`): the previous chunk, shifted by one step with its last action
repeated, is used directly as the state at level K' (no noise added) and only the listed steps run.

Two readings of an RTI step list such as [3, 1, 0]:
- ``consistent`` (default): the core sampler steps between consecutive listed levels (3 -> 1 -> 0 -> clean).
- ``official``: the RTI-DP code's loop, one DDPM t -> t-1 update at each listed t, so a gap (2 here) is skipped
  and the next update treats the state as if it were at the listed level. Both agree on contiguous lists.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from mmengine.model import BaseModel
from mmengine.registry import MODELS

from diffusekit.core import GaussianDiffusion, NoiseSchedule, make_timesteps
from diffusekit.robotics.models import ConditionalUnet1D
from diffusekit.robotics.normalizer import LinearNormalizer

__all__ = ["DiffusionPolicy", "rti_error_factors", "rti_step_list", "select_start_step", "shift_chunk"]


def shift_chunk(chunk: torch.Tensor) -> torch.Tensor:
    """RTI-DP's warm start: drop the executed first action, repeat the last one: [a_1 .. a_{T-1}, a_{T-1}]."""
    return torch.cat([chunk[:, 1:], chunk[:, -1:]], dim=1)


def select_start_step(diffusion: GaussianDiffusion, clean: torch.Tensor, guess: torch.Tensor) -> int:
    """RTI-DP's offline choice of K': the level k whose forward-diffusion mean sqrt(alpha-bar_k) x0 (x0 = the fully
    denoised chunk) lies closest to the shifted guess (mean squared distance over the batch)."""
    ab = diffusion.schedule.alphas_cumprod.to(clean.dtype)
    means = ab.sqrt()[:, None, None, None] * clean[None]
    distance = ((means - guess[None]) ** 2).flatten(2).mean(-1).mean(-1)
    return int(distance.argmin())


def rti_step_list(start: int, calls: int = 3) -> tuple[int, ...]:
    """``calls`` levels from K' = ``start`` down to 0, evenly spaced (duplicates dropped): 18 -> (18, 9, 0)."""
    levels = sorted({int(round(v)) for v in torch.linspace(start, 0, max(calls, 1)).tolist()}, reverse=True)
    return tuple(levels) if levels[-1] == 0 else (*levels, 0)


def rti_error_factors(schedule: NoiseSchedule, lipschitz: float) -> torch.Tensor:
    """The per-step factors c_k of RTI-DP's Theorem 1 (error bound ||A~0 - A0|| <= prod_{k <= K'} c_k delta):
    c_k = [sqrt((1 - alpha-bar_k) alpha_k) + sqrt(alpha-bar_k) beta_k L] / sqrt((1 - alpha-bar_k) alpha_k).
    As written, c_k = 1 + (a non-negative term) >= 1 for any L >= 0, so the bound does not contract; the paper's
    claim c_k < 1 does not follow from it (docs/robotics.md)."""
    betas = schedule.betas.to(torch.float64)
    alphas, ab = 1 - betas, schedule.alphas_cumprod.to(torch.float64)
    base = ((1 - ab) * alphas).sqrt()
    return (base + ab.sqrt() * betas * lipschitz) / base


@MODELS.register_module()
class DiffusionPolicy(BaseModel):
    """Diffusion Policy as an mmengine model.

    Args:
        obs_dim, action_dim: widths of one observation and one action.
        horizon, n_obs, n_action: chunk length T (16), observation history (2), actions executed per chunk (8).
        unet: `ConditionalUnet1D` arguments (down_dims, step_embed_dim, kernel, groups).
        num_steps, schedule: the DDPM (100 steps, "cosine" = squaredcos_cap_v2).
        normalizer: `LinearNormalizer` statistics (set by ``train`` from the replay buffer).
        gripper_dims: binary gripper action dims (executed as sign).
        val_sampler, val_steps: how validation samples a chunk (default DDIM-10, a fixed noise seed per batch);
            ``val_step`` returns the executed actions ``[n_obs - 1, n_obs - 1 + n_action)`` of the sampled and the
            demonstrated chunk for :class:`~diffusekit.robotics.metrics.ActionChunkMSE`.
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        horizon: int = 16,
        n_obs: int = 2,
        n_action: int = 8,
        unet: dict | None = None,
        num_steps: int = 100,
        schedule: str = "cosine",
        normalizer: dict | None = None,
        gripper_dims: Sequence[int] = (),
        val_sampler: str = "ddim",
        val_steps: int = 10,
        init_cfg: dict | None = None,
    ):
        super().__init__(init_cfg=init_cfg)
        self.obs_dim, self.action_dim = int(obs_dim), int(action_dim)
        self.horizon, self.n_obs, self.n_action = int(horizon), int(n_obs), int(n_action)
        if self.n_obs - 1 + self.n_action > self.horizon:
            raise ValueError(f"n_obs - 1 + n_action = {n_obs - 1 + n_action} exceeds the horizon {horizon}")
        self.gripper_dims = tuple(int(g) for g in gripper_dims)
        self.net = ConditionalUnet1D(self.action_dim, self.n_obs * self.obs_dim, **(unet or {}))
        self.normalizer = LinearNormalizer(self.obs_dim, self.action_dim, normalizer)
        self.num_steps = int(num_steps)
        if val_sampler not in ("ddpm", "ddim") or not 1 <= int(val_steps) <= self.num_steps:
            raise ValueError(f"val_sampler must be ddpm or ddim and val_steps in [1, {num_steps}], got "
                             f"{val_sampler!r} and {val_steps}")  # fmt: skip
        self.val_sampler, self.val_steps = val_sampler, int(val_steps)
        self.diffusion = GaussianDiffusion(
            NoiseSchedule.named(schedule, num_steps=num_steps), prediction="eps", clip_x0=(-1.0, 1.0)
        )

    def _denoiser(self, obs: torch.Tensor):
        cond = obs.flatten(1)
        return lambda x_t, t: self.net(x_t, t, cond)

    def loss(self, obs: torch.Tensor, action: torch.Tensor) -> dict[str, torch.Tensor]:
        """Normalised obs (B, n_obs, obs_dim) and action chunk (B, T, action_dim) -> {"loss": eps MSE}."""
        return {"loss": self.diffusion.training_loss(self._denoiser(obs), action)}

    @torch.no_grad()
    def predict_chunk(
        self,
        obs: torch.Tensor,
        sampler: str = "ddpm",
        steps: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """A normalised action chunk (B, T, action_dim) from N(0, I): ``ddpm`` over all steps (or ``steps``
        trailing ones), ``ddim`` (eta 0) over ``steps`` trailing steps."""
        shape = (obs.shape[0], self.horizon, self.action_dim)
        x_T = torch.randn(shape, generator=generator, device="cpu").to(obs.device)
        timesteps = make_timesteps(self.num_steps, steps or self.num_steps, spacing="trailing")
        return self.diffusion.sample(
            self._denoiser(obs), x_T, timesteps=timesteps, sampler=sampler, generator=generator
        )

    @torch.no_grad()
    def rti_refine(
        self,
        obs: torch.Tensor,
        guess: torch.Tensor,
        steps: Sequence[int] = (2, 1, 0),
        mode: str = "consistent",
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Denoise the warm-start ``guess`` (the state at level ``steps[0]``, no noise added) with one network call per
        listed step (see the module docstring for ``consistent`` versus ``official``)."""
        steps = [int(s) for s in steps]
        if any(b >= a for a, b in zip(steps, steps[1:])) or steps[-1] < 0 or steps[0] >= self.num_steps:
            raise ValueError(f"RTI steps must descend within [0, {self.num_steps - 1}], got {steps}")
        model = self._denoiser(obs)
        if mode == "consistent":
            return self.diffusion.sample(model, guess, timesteps=steps, sampler="ddpm", generator=generator)
        if mode != "official":
            raise ValueError(f"unknown RTI mode {mode!r}; expected consistent or official")
        x = guess
        for t in steps:  # one t -> t-1 DDPM update per listed t, whatever the next listed t is
            tt = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
            x0, _ = self.diffusion.to_x0_eps(model(x, tt), x, tt)
            mean, var = self.diffusion.q_posterior(x0, x, tt, tt - 1)
            if t > 0:
                mean = mean + var.sqrt() * torch.randn(x.shape, generator=generator, device="cpu").to(x.device)
            x = mean.to(guess.dtype)
        return x

    def forward(
        self,
        obs: torch.Tensor,
        action: torch.Tensor | None = None,
        mode: str = "tensor",
        sampler: str = "ddpm",
        steps: int | None = None,
        generator: torch.Generator | None = None,
    ):
        """``loss`` -> {"loss"}; ``predict`` / ``tensor`` -> `predict_chunk` (sampler, steps, generator)."""
        if mode == "loss":
            if action is None:
                raise ValueError("mode='loss' needs the action chunks")
            return self.loss(obs, action)
        if mode in ("predict", "tensor"):
            return self.predict_chunk(obs, sampler, steps, generator)
        raise ValueError(f"unknown mode {mode!r}; expected 'loss', 'predict' or 'tensor'")

    @torch.no_grad()
    def val_step(self, data: dict) -> list[dict[str, torch.Tensor]]:
        """Validation: per window, the executed actions of a sampled chunk (``pred``) and of the demonstration
        (``target``), normalised; the noise is seeded per batch so that successive validations compare alike."""
        data = self.data_preprocessor(data, False)
        generator = torch.Generator().manual_seed(0)
        chunk = self.predict_chunk(data["obs"], self.val_sampler, self.val_steps, generator)
        part = slice(self.n_obs - 1, self.n_obs - 1 + self.n_action)
        return [{"pred": p, "target": t} for p, t in zip(chunk[:, part], data["action"][:, part])]

    test_step = val_step
