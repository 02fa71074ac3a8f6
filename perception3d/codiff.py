"""CoDiff (Huang et al., arXiv 2502.14891): the fused BEV map is compressed into the latent space of a small
autoencoder, and a conditional diffusion model refines that latent, conditioned on every agent's compressed features
warped to the ego frame; the heads read ``blend * fused + (1 - blend) * decoded refinement``.

Built on the core: ``GaussianDiffusion`` with eps-prediction and min-SNR weighting (gamma 5, Hang et al. 2023), a
``UNet2D`` denoiser with the condition concatenated on the channel axis, and a warm start: sampling begins from the
fused latent forward-noised to ``timesteps[0]`` (the core contract's ``x_T``), not from pure noise, over a few DDIM
steps (8 in the released config).

Deviations, stated: the released code uses a continuous cosine log-SNR schedule; this uses the core's discrete cosine
schedule (``num_steps`` = 1000). The released training draws its condition always from index 0 (the fused map
itself) and normalises differently for training and sampling; here every agent's latent is a condition slot and one
fixed per-channel normalisation (running statistics frozen after the diffusion stage) serves both. Our choice: the
diffusion target is the latent of the same frame fused with the CLEAN poses while the condition and the starting
point come from the shared (noisy, delayed) ones, so the refinement learns to undo pose error; the released code
denoises the noisy fused latent itself.

Stages (``stage``): ``"detector"`` trains the attention-fusion detector alone; ``"diffusion"`` freezes it and trains
the autoencoder (reconstruction) and the denoiser; ``"finetune"`` trains everything, the detection loss read through
a one-step refinement (the x0 prediction at a random warm-start level) so that it stays differentiable and cheap.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import Tensor, nn

from diffusekit.core import GaussianDiffusion, NoiseSchedule
from diffusekit.core.unet import UNet2D

from .detector import CooperativeDetector
from .networks import NaiveCompressor, warp_to_ego

__all__ = ["CoDiff"]

STAGES = ("detector", "diffusion", "finetune")


@MODELS.register_module()
class CoDiff(CooperativeDetector):
    """CoDiff on the attention-fusion detector (module docstring).

    Args:
        latent_channels: channels of the fused latent (released: 256 -> 8).
        agent_latent_channels: channels of each agent's compressed pillar map (released: 64 -> 8).
        max_cav: condition slots (ego included); missing agents are zero slots.
        denoiser: `UNet2D` kwargs (channels, num_res_blocks, attention_levels).
        num_steps, schedule: the discrete noise schedule. min_snr_gamma: loss weighting (5).
        steps: sampling steps (8). start: warm-start level as a fraction of ``num_steps``. blend: weight of the fused
        map in the output (0.5). recon_weight: autoencoder reconstruction loss weight. stage: training stage.
        seed: seed of the warm-start noise at inference (results are reproducible per batch).
        detector kwargs: as `CooperativeDetector` (fusion is always "attention").
    """

    def __init__(
        self,
        latent_channels: int = 8,
        agent_latent_channels: int = 8,
        max_cav: int = 5,
        denoiser: dict | None = None,
        num_steps: int = 1000,
        schedule: str = "cosine",
        min_snr_gamma: float = 5.0,
        steps: int = 8,
        start: float = 0.3,
        blend: float = 0.5,
        recon_weight: float = 1.0,
        stage: str = "diffusion",
        seed: int = 0,
        **detector: Any,
    ):
        detector["fusion"] = "attention"
        super().__init__(**detector)
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        if not 0.0 < start <= 1.0 or not 0.0 <= blend <= 1.0 or steps < 1:
            raise ValueError(f"need 0 < start <= 1, 0 <= blend <= 1 and steps >= 1 (got {start}, {blend}, {steps})")
        channels = self.backbone.out_channels
        pillar_channels = self.pillar_net.linear.out_features
        self.compressor = NaiveCompressor(channels, latent_channels)
        stride = self.backbone.stride
        self.agent_encoder = nn.Sequential(
            nn.Conv2d(pillar_channels, agent_latent_channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(agent_latent_channels, eps=1e-3, momentum=0.01),
            nn.ReLU(),
            nn.Conv2d(agent_latent_channels, agent_latent_channels, 3, stride, 1),
        )
        self.max_cav = max_cav
        cond_channels = latent_channels + max_cav * agent_latent_channels
        self.denoiser = UNet2D(latent_channels, cond_channels=cond_channels, **(denoiser or {}))
        self.diffusion = GaussianDiffusion(
            NoiseSchedule.named(schedule, num_steps=num_steps), prediction="eps", min_snr_gamma=min_snr_gamma
        )
        self.register_buffer("latent_mean", torch.zeros(latent_channels))
        self.register_buffer("latent_std", torch.ones(latent_channels))
        self.register_buffer("latent_batches", torch.zeros((), dtype=torch.long))
        self.steps, self.start, self.blend, self.recon_weight, self.seed = steps, start, blend, recon_weight, seed
        self.stage = stage
        self._apply_stage()

    # ------------------------------------------------------------------ stages
    def detector_modules(self) -> list[nn.Module]:
        return [self.pillar_net, self.backbone, self.head]

    def diffusion_modules(self) -> list[nn.Module]:
        return [self.compressor, self.agent_encoder, self.denoiser]

    def _apply_stage(self) -> None:
        """Parameters a stage does not train are frozen (and so never left without gradients under DDP)."""
        for module in self.detector_modules():
            module.requires_grad_(self.stage != "diffusion")
        for module in self.diffusion_modules():
            module.requires_grad_(self.stage != "detector")

    def train(self, mode: bool = True):
        """Frozen detector modules stay in eval mode (their BatchNorm statistics are not updated)."""
        super().train(mode)
        if mode and self.stage == "diffusion":
            for module in self.detector_modules():
                module.eval()
        return self

    # ------------------------------------------------------------------ latents
    def encode(self, fused: Tensor) -> Tensor:
        """Normalised latent of a fused map."""
        z = self.compressor.encoder(fused)
        return (z - self.latent_mean[:, None, None]) / self.latent_std[:, None, None]

    def decode_latent(self, latent: Tensor) -> Tensor:
        z = latent * self.latent_std[:, None, None] + self.latent_mean[:, None, None]
        return self.compressor.decoder(z)

    @torch.no_grad()
    def _update_statistics(self, fused: Tensor) -> None:
        """Running per-channel mean/std of the raw latent during the diffusion stage (frozen afterwards)."""
        z = self.compressor.encoder(fused).float()
        mean, std = z.mean(dim=(0, 2, 3)), z.std(dim=(0, 2, 3)).clamp(min=1e-3)
        momentum = max(0.01, 1.0 / float(self.latent_batches + 1))
        self.latent_mean.lerp_(mean, momentum)
        self.latent_std.lerp_(std, momentum)
        self.latent_batches += 1

    def condition(self, fused_latent: Tensor, pillars: Tensor, inputs: dict[str, Any]) -> Tensor:
        """[fused latent, agent 1 .. agent max_cav latents warped to the ego frame] on the channel axis."""
        agent_latents = self.agent_encoder(pillars)
        slots = []
        start = 0
        h, w = fused_latent.shape[-2:]
        for count in inputs["agents"]:
            maps = agent_latents[start : start + count][: self.max_cav]
            if len(maps) > 1:
                warped = warp_to_ego(
                    maps[1:], inputs["to_ego"][start + 1 : start + len(maps)], self.grid.point_cloud_range
                )
                maps = torch.cat([maps[:1], warped])
            maps = maps[..., :h, :w]
            pad = maps.new_zeros(self.max_cav - len(maps), *maps.shape[1:])
            slots.append(torch.cat([maps, pad]).flatten(0, 1))
            start += count
        return torch.cat([fused_latent, torch.stack(slots)], dim=1)

    def refine(self, fused: Tensor, pillars: Tensor, inputs: dict[str, Any], steps: int | None = None) -> Tensor:
        """The CoDiff output map: warm-started DDIM over ``steps`` steps from the fused latent, decoded and blended."""
        latent = self.encode(fused)
        cond = self.condition(latent, pillars, inputs)
        timesteps = self.timesteps(steps or self.steps)
        generator = torch.Generator().manual_seed(self.seed)
        noise = torch.randn(latent.shape, generator=generator, dtype=latent.dtype).to(latent.device)
        t0 = torch.full((latent.shape[0],), int(timesteps[0]), dtype=torch.long, device=latent.device)
        x_start = self.diffusion.q_sample(latent, t0, noise)
        refined = self.diffusion.sample(self.denoiser, x_start, timesteps=timesteps, sampler="ddim", cond=cond)
        return self.blend * fused + (1 - self.blend) * self.decode_latent(refined)

    def timesteps(self, steps: int) -> list[int]:
        """``steps`` descending integer timesteps from the warm-start level down to 0."""
        first = max(0, min(self.diffusion.num_steps - 1, round(self.start * self.diffusion.num_steps) - 1))
        values = torch.linspace(first, 0, min(steps, first + 1)).round().long().tolist()
        return sorted(set(values), reverse=True)

    # ------------------------------------------------------------------ BaseModel
    def _losses(self, inputs: dict[str, Any]) -> dict[str, Tensor]:
        """Stages "diffusion" and "finetune": autoencoder reconstruction of the clean-pose fused map, the min-SNR
        eps loss of the denoiser towards its latent (conditioned on the shared-pose latents), and when fine-tuning
        the detection loss read through a one-step refinement."""
        frozen = self.stage == "diffusion"
        with torch.no_grad() if frozen else contextlib.nullcontext():
            pillars, scales = self.agent_features(inputs)
            fused = self.fuse_scales(scales, inputs, inputs["to_ego"])
            clean = self.fuse_scales(scales, inputs, inputs["to_ego_clean"]).detach()  # a target: no gradient
        if frozen and self.training:
            self._update_statistics(clean)
        losses = {"loss_recon": self.recon_weight * F.mse_loss(self.compressor(clean), clean)}
        target = self.encode(clean).detach()  # the encoder learns from reconstruction, not from the diffusion loss
        latent = self.encode(fused)
        cond = self.condition(latent, pillars, inputs)
        first = self.timesteps(self.steps)[0]
        t = torch.randint(0, first + 1, (target.shape[0],), device=target.device)
        losses["loss_diffusion"] = self.diffusion.training_loss(
            self.denoiser, target, t=t, weighting="min_snr", cond=cond
        )
        if not frozen:
            t = torch.randint(0, first + 1, (latent.shape[0],), device=latent.device)
            x_t = self.diffusion.q_sample(latent, t, torch.randn_like(latent))
            x0, _ = self.diffusion.to_x0_eps(self.denoiser(x_t, t, cond=cond), x_t, t)
            refined = self.blend * fused + (1 - self.blend) * self.decode_latent(x0.to(latent.dtype))
            losses.update(self.loss_from_features(refined, inputs["gt_boxes"]))
        return losses

    def forward(self, inputs: dict[str, Any], data_samples: list[dict] | None = None, mode: str = "tensor"):
        if mode != "loss":
            return super().forward(inputs, data_samples, mode)
        if self.stage == "detector":
            fused, _ = self.fused_features(inputs)
            return self.loss_from_features(fused, inputs["gt_boxes"])
        return self._losses(inputs)

    def detection_features(self, inputs: dict[str, Any]) -> Tensor:
        fused, pillars = self.fused_features(inputs)
        if self.stage == "detector":
            return fused
        return self.refine(fused, pillars, inputs)
