"""DiffPose (Feng et al., ICCV'23, arXiv 2307.16687): video 2D pose estimation as conditional heatmap diffusion.

No official code exists; this follows the paper's description (see docs/pose.md for the choices it leaves open):

- STRL, the SpatioTemporal Representation Learner: per-frame backbone features of the clip <I_{t-d} .. I_{t+d}>,
  projected to tokens with a learned position embedding, concatenated over frames, L pre-LN transformer encoders,
  then an MLP that aggregates the frames of each location into the condition map F (C x h x w). F is computed once
  per clip and reused at every denoising step.
- The pose decoder: the timestep embedding rescales the embedded noisy heatmaps (x_bar_t = FiLM(conv(x_t), t));
  three size-matched pairs are made by upsampling F (x1, deconv x2, x4) and downsampling x_bar_t (strided convs).
- LMSFI, the Lookup-based MultiScale Feature Interaction: at the lowest scale a transformer self-refines the
  heatmap tokens, a channel-max squeeze + sigmoid gives the lookup mask A, and [A * F, F] goes through a
  transformer; the two higher scales do the same with convolutions. The three scales are summed (upsampled) and a
  3 x 3 conv head gives the K heatmaps.
- x0 prediction with an L2 loss on the heatmaps (``GaussianDiffusion(prediction="x0")``); heatmaps in [0, 1] are
  diffused as ``(2 H - 1) * signal_scale``. Inference: DDIM at any step count, N samples and flip averaging.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from mmengine.model import BaseModel
from mmengine.registry import MODELS
from torch import nn

from diffusekit.core import FiLM, GaussianDiffusion, NoiseSchedule, TimestepEmbedder, TransformerBlock, make_timesteps
from diffusekit.pose.backbones import build_backbone
from diffusekit.pose.codec import flip_heatmaps

__all__ = ["STRL", "DiffPose", "LMSFIDecoder"]


class STRL(nn.Module):
    """Backbone per frame -> tokens of all frames -> transformer -> per-location MLP over frames -> F (B, D, h, w)."""

    def __init__(
        self,
        backbone: dict,
        input_size: Sequence[int],
        frames: int,
        dim: int = 256,
        depth: int = 2,
        heads: int = 8,
    ):
        super().__init__()
        self.backbone = build_backbone(backbone, input_size)
        width, height = input_size
        self.grid = (height // self.backbone.stride, width // self.backbone.stride)
        self.frames = frames
        self.dim = dim
        self.embed = nn.Linear(self.backbone.out_channels, dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, frames * self.grid[0] * self.grid[1], dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.aggregate = nn.Sequential(nn.Linear(frames * dim, dim), nn.GELU(), nn.Linear(dim, dim))

    def check_heatmap_size(self, heatmap_size: Sequence[int]) -> None:
        """The decoders work at 4x the feature grid (stride 4 of the crop)."""
        if tuple(heatmap_size) != (4 * self.grid[1], 4 * self.grid[0]):
            raise ValueError(f"heatmap size {tuple(heatmap_size)} must be 4x the feature grid {self.grid[::-1]}")

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        b, t = clip.shape[:2]
        if t != self.frames:
            raise ValueError(f"clip of {t} frames for a model built for {self.frames}")
        features = self.backbone(clip.flatten(0, 1))  # (B T, C, h, w)
        h, w = features.shape[-2:]
        tokens = rearrange(features, "(b t) c h w -> b (t h w) c", b=b)
        tokens = self.embed(tokens) + self.pos_embed
        for block in self.blocks:
            tokens = block(tokens)
        tokens = rearrange(self.norm(tokens), "b (t n) d -> b n (t d)", t=t)
        return rearrange(self.aggregate(tokens), "b (h w) d -> b d h w", h=h, w=w)


def _conv(cin: int, cout: int, stride: int = 1, groups: int = 8) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.GroupNorm(min(groups, cout), cout), nn.SiLU())


def _up(cin: int, cout: int, groups: int = 8) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1), nn.GroupNorm(min(groups, cout), cout), nn.SiLU())


class LMSFIDecoder(nn.Module):
    """The pose decoder with LMSFI: ``(x_t (B, K, 4h, 4w), t (B,), F (B, C, h, w)) -> x0 heatmaps (B, K, 4h, 4w)``."""

    def __init__(self, keypoints: int, cond_channels: int, grid: Sequence[int], dim: int = 128, heads: int = 8,
                 depth: int = 1):  # fmt: skip
        super().__init__()
        self.time = TimestepEmbedder(dim)
        self.embed = nn.Conv2d(keypoints, dim, 3, padding=1)
        self.rescale = FiLM(dim, dim)  # the timestep embedding rescales the noisy heatmaps
        # size-matched pairs: F at x1 / x2 / x4, x_bar_t at /4 / /2 / x1
        self.cond = nn.ModuleList([nn.Conv2d(cond_channels, dim, 1), _up(cond_channels, dim),
                                   nn.Sequential(_up(cond_channels, dim), _up(dim, dim))])  # fmt: skip
        self.down = nn.ModuleList([nn.Sequential(_conv(dim, dim, 2), _conv(dim, dim, 2)), _conv(dim, dim, 2)])
        # lowest scale: transformers
        self.low_pos = nn.Parameter(torch.zeros(1, grid[0] * grid[1], dim))
        nn.init.trunc_normal_(self.low_pos, std=0.02)
        self.refine = nn.ModuleList(TransformerBlock(dim, heads, cond_dim=dim) for _ in range(depth))
        self.low_mix = nn.Linear(2 * dim, dim)
        self.lookup = nn.ModuleList(TransformerBlock(dim, heads, cond_dim=dim) for _ in range(depth))
        # higher scales: convolutions
        self.conv_refine = nn.ModuleList([_conv(dim, dim), _conv(dim, dim)])
        self.conv_lookup = nn.ModuleList([nn.Sequential(_conv(2 * dim, dim), _conv(dim, dim)) for _ in range(2)])
        self.head = nn.Sequential(_conv(dim, dim), nn.Conv2d(dim, keypoints, 3, padding=1))

    @staticmethod
    def _mask(x: torch.Tensor, channel_dim: int) -> torch.Tensor:
        """LMSFI's lookup mask: squeeze the channels by their max, then a sigmoid."""
        return torch.sigmoid(x.amax(dim=channel_dim, keepdim=True))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        emb = self.time(t)
        x = self.rescale(self.embed(x_t), F.silu(emb))
        xs = [self.down[0](x), self.down[1](x), x]  # scales 1/4, 1/2, 1 of the heatmap
        fs = [layer(condition) for layer in self.cond]
        if fs[0].shape[-2:] != xs[0].shape[-2:] or fs[2].shape[-2:] != x.shape[-2:]:
            raise ValueError(f"heatmaps {tuple(x.shape[-2:])} are not 4x the condition map {tuple(fs[0].shape[-2:])}")
        h, w = xs[0].shape[-2:]
        # lowest scale: transformer self-refinement, lookup mask, transformer on [A * F, F] (+ the heatmap tokens)
        tokens = rearrange(xs[0], "b d h w -> b (h w) d") + self.low_pos
        for block in self.refine:
            tokens = block(tokens, cond=emb)
        f_tokens = rearrange(fs[0], "b d h w -> b (h w) d")
        mixed = self.low_mix(torch.cat([self._mask(tokens, -1) * f_tokens, f_tokens], dim=-1)) + tokens
        for block in self.lookup:
            mixed = block(mixed, cond=emb)
        outs = [rearrange(mixed, "b (h w) d -> b d h w", h=h, w=w)]
        # higher scales: the same interaction with convolutions
        for refine, lookup, xi, fi in zip(self.conv_refine, self.conv_lookup, xs[1:], fs[1:]):
            xi = refine(xi) + xi
            outs.append(lookup(torch.cat([self._mask(xi, 1) * fi, fi], dim=1)) + xi)
        size = x.shape[-2:]
        total = sum(F.interpolate(o, size=size, mode="bilinear", align_corners=False) for o in outs[:2]) + outs[2]
        return self.head(total)


@MODELS.register_module()
class DiffPose(BaseModel):
    """DiffPose as an mmengine model (see the module docstring).

    Args:
        backbone: `build_backbone` config (``type`` vit | conv, ``weights`` an optional path).
        input_size, heatmap_size: (W, H) of the crops and heatmaps (heatmaps are 4x the stride-16 feature grid).
        frames: clip length (2 d + 1).
        strl: ``dim``, ``depth``, ``heads`` of the STRL transformer.
        decoder: ``dim``, ``heads``, ``depth`` of the pose decoder.
        num_steps, schedule: the diffusion process; signal_scale: heatmaps are diffused as (2 H - 1) * scale.
        val_sampling: keyword arguments of `predict_heatmaps` for ``mode="predict"`` without them (validation
            during training), e.g. ``dict(steps=1, flip=False)``.
    """

    def __init__(
        self,
        backbone: dict,
        input_size: Sequence[int] = (192, 256),
        heatmap_size: Sequence[int] = (48, 64),
        frames: int = 3,
        keypoints: int = 17,
        strl: dict | None = None,
        decoder: dict | None = None,
        num_steps: int = 1000,
        schedule: str = "cosine",
        signal_scale: float = 1.0,
        val_sampling: dict | None = None,
        init_cfg: dict | None = None,
    ):
        super().__init__(init_cfg=init_cfg)
        self.val_sampling = dict(val_sampling or {})
        self.strl = STRL(backbone, input_size, frames, **(strl or {}))
        self.decoder = LMSFIDecoder(keypoints, self.strl.dim, self.strl.grid, **(decoder or {}))
        self.strl.check_heatmap_size(heatmap_size)
        self.signal_scale = float(signal_scale)
        self.num_steps = int(num_steps)
        self.diffusion = GaussianDiffusion(
            NoiseSchedule.named(schedule, num_steps=num_steps),
            prediction="x0",
            clip_x0=(-self.signal_scale, self.signal_scale),
        )

    def to_signal(self, heatmaps: torch.Tensor) -> torch.Tensor:
        return (2 * heatmaps - 1) * self.signal_scale

    def from_signal(self, x: torch.Tensor) -> torch.Tensor:
        return (x / self.signal_scale + 1) / 2

    def _denoiser(self, condition: torch.Tensor):
        return lambda x_t, t: self.decoder(x_t, t, condition)

    def loss(self, clip: torch.Tensor, heatmaps: torch.Tensor, weights: torch.Tensor) -> dict[str, torch.Tensor]:
        condition = self.strl(clip)
        mask = weights[:, :, None, None].expand_as(heatmaps)
        loss = self.diffusion.training_loss(self._denoiser(condition), self.to_signal(heatmaps), mask=mask)
        return {"loss_l2": loss}

    @torch.no_grad()
    def predict_heatmaps(
        self,
        clip: torch.Tensor,
        steps: int = 5,
        samples: int = 1,
        flip: bool = True,
        sampler: str = "ddim",
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """(B, K, h, w) heatmaps in [0, 1]: the mean over ``samples`` DDIM runs of ``steps`` steps (and over the
        flipped clip when ``flip``); STRL runs once per clip."""
        b = clip.shape[0]
        clips = torch.cat([clip, clip.flip(-1)]) if flip else clip
        condition = self.strl(clips).repeat(samples, 1, 1, 1)  # sample-major: (N * V * B, ...)
        k = self.decoder.head[-1].out_channels
        h, w = 4 * condition.shape[-2], 4 * condition.shape[-1]
        x_T = torch.randn((condition.shape[0], k, h, w), generator=generator, device="cpu").to(clip.device)
        ts = make_timesteps(self.num_steps, steps, spacing="trailing")
        x0 = self.diffusion.sample(self._denoiser(condition), x_T, timesteps=ts, sampler=sampler, generator=generator)
        maps = self.from_signal(x0).reshape(samples, -1, b, k, h, w)  # (N, views, B, K, h, w)
        if flip:
            maps = torch.cat([maps[:, :1], flip_heatmaps(maps[:, 1:])], dim=1)
        return maps.mean(dim=(0, 1))

    def forward(
        self,
        clip: torch.Tensor,
        heatmaps: torch.Tensor | None = None,
        weights: torch.Tensor | None = None,
        mode: str = "tensor",
        **kwargs,
    ):
        """``loss`` -> {"loss_l2"}; ``predict`` -> heatmaps (`predict_heatmaps` with the sampling keywords given,
        else ``val_sampling``); ``tensor`` -> the STRL map. Other keywords (the batch's ``keypoints``, ``matrix``,
        ``index``) are ignored."""
        if mode == "loss":
            if heatmaps is None or weights is None:
                raise ValueError("mode='loss' needs the target heatmaps and weights")
            return self.loss(clip, heatmaps, weights)
        sample_kwargs = {k: v for k, v in kwargs.items() if k in ("steps", "samples", "flip", "sampler", "generator")}
        if mode == "predict":
            return self.predict_heatmaps(clip, **{**self.val_sampling, **sample_kwargs})
        if mode == "tensor":
            return self.strl(clip)
        raise ValueError(f"unknown mode {mode!r}; expected 'loss', 'predict' or 'tensor'")
