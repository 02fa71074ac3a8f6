"""DIVD: video deblurring as conditional diffusion on the sharp frames (Long, Wang & Wang, arXiv 2412.00773).

The denoiser sees the noisy sharp clip concatenated on the channel axis with the blurry clip and predicts
v = alpha eps - sigma x0 (Salimans & Ho 2022; our choice: with eps-prediction the x0 estimate at high noise is the
network's error times sigma / alpha, ~160 at t = T for the linear schedule, and few-step sampling fails) through the
video U-Net of `networks` (WTSA + MRPE). Sampling
runs any of the core samplers at any step count; N samples are fused with the core's ``aggregate`` (mean) and
their standard deviation is the uncertainty map.

``predictor`` turns on predict-and-refine (DvSR, Whang et al. CVPR 2022): a deterministic video network g(y)
predicts the sharp clip, and diffusion models only the residual ``(x - g(y)) / residual_scale`` conditioned on y
and g(y). The two networks are trained jointly (L1 on g(y) plus the diffusion loss; the residual target uses g(y)
detached). The residual has little variance, so a few steps suffice: the CPU-scale variant.

``DeterministicDeblur`` is the same video network trained as a plain regressor (L1 on the predicted residual):
the benchmark's "same network, no diffusion" baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.registry import MODELS

from diffusekit.core import GaussianDiffusion, NoiseSchedule, make_timesteps
from diffusekit.core.aggregate import aggregate
from diffusekit.core.config_checks import check_kwargs
from diffusekit.video.networks import VideoUNet

__all__ = ["DIVD", "DeterministicDeblur", "Restoration"]

VAL_SEED = 0
DEFAULT_VAL_SAMPLING = dict(steps=10, samples=1, sampler="ddim")


@dataclass
class Restoration:
    """Restored clips (B, T, 3, H, W) in [0, 1], the per-pixel standard deviation over samples (B, T, H, W; zero
    for one sample or a deterministic model) and the network evaluations per clip."""

    frames: torch.Tensor
    uncertainty: torch.Tensor
    evaluations: int


def _check_clip(blur: torch.Tensor, sharp: torch.Tensor | None = None) -> None:
    if blur.ndim != 5 or blur.shape[2] != 3:
        raise ValueError(f"expected blurry clips (B, T, 3, H, W), got {tuple(blur.shape)}")
    if sharp is not None and sharp.shape != blur.shape:
        raise ValueError(f"sharp clips {tuple(sharp.shape)} do not match the blurry ones {tuple(blur.shape)}")


def pad_to_multiple(clip: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad (B, T, C, H, W) at the bottom and right to multiples of ``multiple``; returns the original H, W."""
    h, w = clip.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        clip = F.pad(clip.flatten(0, 1), (0, pw, 0, ph), mode=mode).unflatten(0, clip.shape[:2])
    return clip, (h, w)


class _VideoValidation:
    """``val_step``: restore each validation clip and hand ``{"pred", "gt"}`` (T, 3, H, W) in [0, 1] to
    ``metrics.VideoRestorationMetric``."""

    @torch.no_grad()
    def val_step(self, data: dict) -> list[dict]:
        data = self.data_preprocessor(data, False)
        restored = self.validation_restore(data["blur"])
        return [{"pred": p.cpu(), "gt": g.cpu()} for p, g in zip(restored, data["sharp"], strict=True)]

    def test_step(self, data: dict) -> list[dict]:
        return self.val_step(data)

    def forward(self, blur: torch.Tensor, sharp: torch.Tensor | None = None, mode: str = "tensor", **kwargs):
        """``loss`` -> loss terms; ``predict`` -> `Restoration`; ``tensor`` -> `tensor_output` in [0, 1]."""
        if mode == "loss":
            if sharp is None:
                raise ValueError("mode='loss' needs the sharp frames")
            return self.loss(blur, sharp)
        if mode == "predict":
            return self.restore(blur, **kwargs)
        if mode == "tensor":
            return self.tensor_output(blur)
        raise ValueError(f"unknown mode {mode!r}; expected 'loss', 'predict' or 'tensor'")


@MODELS.register_module()
class DIVD(_VideoValidation, BaseModel):
    """DIVD (see the module docstring).

    Args:
        denoiser: keyword arguments of the denoiser `VideoUNet` (``channels``, ``num_res_blocks``,
            ``attention_levels``, ``attention_heads``, ``window``, ``max_frames``, ``temporal`` (WTSA),
            ``relative_position`` (MRPE), ``norm_groups``, ``dropout``).
        predictor: keyword arguments of the predictor `VideoUNet` (predict-and-refine), or None.
        num_steps, schedule, prediction: the diffusion (ours: linear, T = 1000, v-prediction; not from the paper).
        residual_scale: the residual target is divided by this (predict-and-refine only).
        predictor_weight: weight of the predictor's L1 loss.
        val_sampling: `restore` keyword arguments for validation during training.
    """

    def __init__(
        self,
        denoiser: dict | None = None,
        predictor: dict | None = None,
        num_steps: int = 1000,
        schedule: str = "linear",
        prediction: str = "v",
        residual_scale: float = 0.1,
        predictor_weight: float = 1.0,
        val_sampling: dict | None = None,
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
    ):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.refine = predictor is not None
        cond = 6 if self.refine else 3
        self.denoiser = VideoUNet(3, 3, cond_channels=cond, **dict(denoiser or {}))
        self.predictor = None
        if self.refine:
            self.predictor = VideoUNet(3, 3, cond_channels=0, timestep=False, **dict(predictor))
        self.residual_scale = float(residual_scale)
        if self.residual_scale <= 0:
            raise ValueError(f"residual_scale must be positive, got {residual_scale}")
        # x0 estimates are clipped to what the target can be: images in [-1, 1], residuals within +-2 / scale
        bound = 2.0 / self.residual_scale if self.refine else 1.0
        self.diffusion = GaussianDiffusion(
            NoiseSchedule.named(schedule, num_steps), prediction=prediction, clip_x0=(-bound, bound)
        )
        self.predictor_weight = float(predictor_weight)
        self.val_sampling = DEFAULT_VAL_SAMPLING | dict(val_sampling or {})
        check_kwargs(self.restore, self.val_sampling, "DIVD(val_sampling=...)")

    @property
    def num_steps(self) -> int:
        return self.diffusion.num_steps

    @property
    def size_multiple(self) -> int:
        nets = [self.denoiser] + ([self.predictor] if self.predictor is not None else [])
        return max(net.size_multiple for net in nets)

    @property
    def max_frames(self) -> int:
        return self.denoiser.max_frames

    def predict_initial(self, blur: torch.Tensor) -> torch.Tensor:
        """g(y): the predictor's sharp estimate in [-1, 1] (a residual on the blurry input)."""
        y = blur * 2 - 1
        return y + self.predictor(y)

    def _target_and_cond(self, blur: torch.Tensor, sharp: torch.Tensor | None):
        """(x0 in the diffusion's space or None, the condition, g(y) or None); images map to [-1, 1]."""
        y = blur * 2 - 1
        if not self.refine:
            return (None if sharp is None else sharp * 2 - 1), y, None
        initial = self.predict_initial(blur)
        g = initial.detach()
        x0 = None if sharp is None else ((sharp * 2 - 1) - g) / self.residual_scale
        return x0, torch.cat([y, g], dim=2), initial

    def loss(self, blur: torch.Tensor, sharp: torch.Tensor) -> dict[str, torch.Tensor]:
        """The diffusion loss (eps MSE) and, for predict-and-refine, the predictor's L1 loss."""
        _check_clip(blur, sharp)
        x0, cond, initial = self._target_and_cond(blur, sharp)
        losses = {"loss_diffusion": self.diffusion.training_loss(self.denoiser, x0, cond=cond)}
        if initial is not None:
            losses["loss_predictor"] = self.predictor_weight * F.l1_loss(initial, sharp * 2 - 1)
        return losses

    @torch.no_grad()
    def restore(
        self,
        blur: torch.Tensor,
        steps: int | None = 10,
        samples: int = 1,
        sampler: str = "ddim",
        eta: float = 0.0,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Restoration:
        """Sample ``samples`` sharp clips for blurry clips (B, T, 3, H, W) in [0, 1] and fuse them (mean).

        ``steps``: sampler steps (None or >= T: all T). ``noise``: the initial states (samples, B, T, 3, H, W),
        drawn from ``generator`` when None (tiled inference passes slices of one full-frame draw, so tiles agree).
        """
        _check_clip(blur)
        padded, (h, w) = pad_to_multiple(blur, self.size_multiple)
        _, cond, initial = self._target_and_cond(padded, None)
        steps = self.num_steps if steps is None or steps >= self.num_steps else int(steps)
        timesteps = make_timesteps(self.num_steps, steps, spacing="trailing")
        if noise is None:
            noise = torch.randn((samples, *padded.shape), generator=generator, device="cpu").to(blur.device)
        else:
            noise = pad_to_multiple(noise.flatten(0, 1), self.size_multiple)[0].unflatten(0, noise.shape[:2])
        outs = []
        for k in range(samples):
            x0 = self.diffusion.sample(
                self.denoiser, noise[k], timesteps=timesteps, sampler=sampler, eta=eta, cond=cond
            )
            image = x0 * self.residual_scale + initial if self.refine else x0
            outs.append(((image + 1) / 2).clamp(0, 1)[..., :h, :w])
        fused, spread = aggregate(torch.stack(outs), "mean", dim=0)
        return Restoration(fused, spread.mean(dim=2), samples * len(timesteps) + (samples > 0) * self.refine)

    def validation_restore(self, blur: torch.Tensor) -> torch.Tensor:
        generator = torch.Generator().manual_seed(VAL_SEED)
        return self.restore(blur, generator=generator, **self.val_sampling).frames

    def tensor_output(self, blur: torch.Tensor) -> torch.Tensor:
        """The predictor's estimate g(y) in [0, 1] (predict-and-refine only)."""
        if not self.refine:
            raise ValueError("mode='tensor' is the predictor's estimate; this DIVD has no predictor")
        return ((self.predict_initial(blur) + 1) / 2).clamp(0, 1)


@MODELS.register_module()
class DeterministicDeblur(_VideoValidation, BaseModel):
    """The video U-Net as a plain regressor: sharp = blurry + net(blurry), trained with L1 (Charbonnier-free, as
    most deblurring regressors start). ``restore`` has `DIVD.restore`'s signature; sampling options are ignored."""

    def __init__(self, network: dict | None = None, data_preprocessor: dict | None = None, init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.network = VideoUNet(3, 3, cond_channels=0, timestep=False, **dict(network or {}))

    @property
    def size_multiple(self) -> int:
        return self.network.size_multiple

    @property
    def max_frames(self) -> int:
        return self.network.max_frames

    def _predict(self, blur: torch.Tensor) -> torch.Tensor:
        y = blur * 2 - 1
        return y + self.network(y)

    def loss(self, blur: torch.Tensor, sharp: torch.Tensor) -> dict[str, torch.Tensor]:
        _check_clip(blur, sharp)
        return {"loss_l1": F.l1_loss(self._predict(blur), sharp * 2 - 1)}

    @torch.no_grad()
    def restore(self, blur: torch.Tensor, steps=None, samples=1, sampler=None, eta=0.0, noise=None, generator=None):
        _check_clip(blur)
        padded, (h, w) = pad_to_multiple(blur, self.size_multiple)
        frames = ((self._predict(padded) + 1) / 2).clamp(0, 1)[..., :h, :w]
        return Restoration(frames, torch.zeros_like(frames[:, :, 0]), 1)

    def validation_restore(self, blur: torch.Tensor) -> torch.Tensor:
        return self.restore(blur).frames

    def tensor_output(self, blur: torch.Tensor) -> torch.Tensor:
        return self.restore(blur).frames


def count_parameters(module: torch.nn.Module, prefixes: Sequence[str] = ()) -> int:
    """Parameters of ``module``, optionally only those under the given name prefixes."""
    return sum(p.numel() for n, p in module.named_parameters() if not prefixes or n.startswith(tuple(prefixes)))
