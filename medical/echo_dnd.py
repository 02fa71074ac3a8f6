"""Echo-DND (Rahman et al., Discover Applied Sciences 7:514, 2025; arXiv 2506.15166): dual-noise diffusion for LV
segmentation, as an mmengine model.

Two denoisers of the same U-Net architecture (separate weights, one shared timestep-embedding MLP) run two diffusion
processes on the mask, both fed ``concat(x_t, image)``:

- the Gaussian branch (GNEM): DDPM on the mask in {0, 1} (not rescaled, as released), epsilon prediction plus the
  learned-range variance (``GaussianDiffusion(learn_variance=True)``), x0 clipped to [-1, 1] while sampling;
- the Bernoulli branch (BNEM): BerDiff on the binary mask (``BernoulliDiffusion``, x0 logits through a sigmoid; the
  released code's missing (1 - alpha-bar)/2 term and its logits-as-probabilities are not repeated);
- the MFCM (`HRNetMFCM`) turns the image into full-resolution features, added (detached) after the first conv of both
  U-Nets, and the calibration map ``cal`` trained by the SCC loss, MSE(cal, mask).

Loss (released ``echo_dnd_diffusion.py`` + ``train_util.py``): ``MSE(eps) + BCE_bits + 0.01 VB_Gauss + 0.01 VB_Bern +
(0.1 + 10) L_SCC``; the SCC weight 10.1 is the sum of the 0.1 in the loss and the 10 added again by the training loop.
One timestep per sample serves both branches. Both noisy masks are drawn independently from the ground truth.

Inference (`EchoDND.segment`): the MFCM runs once per image; N samples of each branch are drawn in one batch with any
sampler and step count (ddpm / ddim / dpmpp_2m for the Gaussian branch, ancestral or the deterministic DDIM-like
BerDiff sampler for the Bernoulli one); each branch is fused over its samples (core ``aggregate``), the Gaussian,
Bernoulli and calibration maps are averaged, and the uncertainty is the per-pixel standard deviation of all 2N
sample maps. The released ensemble of Bernoulli samples is in fact a copy of the Gaussian one (its ``p_sample``
returns the Gaussian sample at t = 0); here each branch contributes its own samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.registry import MODELS

from diffusekit.core import BernoulliDiffusion, GaussianDiffusion, NoiseSchedule, UNet2D, aggregate, make_timesteps
from diffusekit.core.config_checks import check_kwargs
from diffusekit.medical.hrnet import HRNetMFCM
from diffusekit.medical.validation import SegmentationValidation

__all__ = ["EchoDND", "Segmentation", "sample_steps"]

DEFAULT_LOSS_WEIGHTS = {"mse": 1.0, "bce": 1.0, "vb_gauss": 0.01, "vb_bern": 0.01, "scc": 10.1}
# validation during training: a fast sampler, one sample per image, a fixed seed (comparable validations)
DEFAULT_VAL_SAMPLING = {"steps": 10, "samples": 1, "gaussian_sampler": "ddim", "bernoulli_sampler": "ddim"}
VAL_SEED = 10


@dataclass
class Segmentation:
    """What `EchoDND.segment` returns; maps are (B, 1, H, W) on the network grid, samples (N, B, 1, H, W)."""

    probability: torch.Tensor  # mean of the fused Gaussian, Bernoulli and calibration maps, in [0, 1]
    uncertainty: torch.Tensor  # per-pixel std over the 2N sample maps
    gaussian: torch.Tensor  # Gaussian samples, clipped to [0, 1]
    bernoulli: torch.Tensor  # Bernoulli y0 probability maps of the last step
    cal: torch.Tensor  # calibration map, clipped to [0, 1]
    steps: int
    evaluations: int  # U-Net evaluations per image: 2 branches x samples x steps (plus one MFCM pass)


def sample_steps(num_train_steps: int, steps: int | None) -> list[int]:
    """Descending timesteps: all T (``steps`` None or >= T) or ``steps`` trailing-spaced ones."""
    if steps is None or steps >= num_train_steps:
        return list(range(num_train_steps - 1, -1, -1))
    return make_timesteps(num_train_steps, steps, spacing="trailing")


@MODELS.register_module()
class EchoDND(SegmentationValidation, BaseModel):
    """Echo-DND (see the module docstring).

    Args:
        image_channels: channels of the input image (1).
        unet: keyword arguments of both `UNet2D` branches (``channels``, ``num_res_blocks``, ``attention_levels``,
            ``attention_heads``, ``dropout``, ``norm_groups``); ``channels[0]`` must equal the MFCM feature width.
        mfcm: keyword arguments of `HRNetMFCM` (``width``, ``blocks``, ``stem``, ``bottlenecks``).
        num_steps, schedule: the schedule shared by both processes (released: linear, 1000).
        loss_weights: weights of ``mse``, ``bce``, ``vb_gauss``, ``vb_bern``, ``scc`` (defaults: the released ones).
        val_sampling: keyword arguments of `segment` for validation during training (default: 10 DDIM steps,
            one sample); the validation mask is the fused probability thresholded at 0.5.
    """

    def __init__(
        self,
        image_channels: int = 1,
        unet: dict | None = None,
        mfcm: dict | None = None,
        num_steps: int = 1000,
        schedule: str = "linear",
        loss_weights: dict | None = None,
        val_sampling: dict | None = None,
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
    ):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        unet = dict(
            channels=(128, 128, 256, 256, 512, 512), num_res_blocks=2, attention_levels=(4, 5), attention_heads=4
        ) | dict(unet or {})
        self.mfcm = HRNetMFCM(image_channels, **(mfcm or {}))
        if unet["channels"][0] != self.mfcm.feature_channels:
            raise ValueError(
                f"the U-Nets' first width ({unet['channels'][0]}) must equal the MFCM features (4 x width = "
                f"{self.mfcm.feature_channels})"
            )
        self.gaussian_unet = UNet2D(1, out_channels=2, cond_channels=image_channels, **unet)
        self.bernoulli_unet = UNet2D(1, out_channels=1, cond_channels=image_channels, **unet)
        self.bernoulli_unet.time_embed = self.gaussian_unet.time_embed  # the one shared timestep embedding
        schedule_ = NoiseSchedule.named(schedule, num_steps)
        self.gaussian = GaussianDiffusion(schedule_, prediction="eps", clip_x0=(-1.0, 1.0), learn_variance=True)
        self.bernoulli = BernoulliDiffusion(schedule_, prediction="x0")
        self.loss_weights = DEFAULT_LOSS_WEIGHTS | dict(loss_weights or {})
        unknown = set(self.loss_weights) - set(DEFAULT_LOSS_WEIGHTS)
        if unknown:
            raise ValueError(f"unknown loss weights {sorted(unknown)}; expected {sorted(DEFAULT_LOSS_WEIGHTS)}")
        self.val_sampling = DEFAULT_VAL_SAMPLING | dict(val_sampling or {})
        check_kwargs(self.segment, self.val_sampling, "EchoDND(val_sampling=...)")

    @property
    def num_steps(self) -> int:
        return self.gaussian.num_steps

    # ------------------------------------------------------------------ branches
    def _gaussian_fn(self, image: torch.Tensor, features: torch.Tensor):
        return lambda x, t: self.gaussian_unet(x, t, cond=image, features=features)

    def _bernoulli_fn(self, image: torch.Tensor, features: torch.Tensor):
        return lambda y, t: self.bernoulli_unet(y, t, cond=image, features=features)

    def condition(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(MFCM features, detached: the MFCM learns from L_SCC only; the calibration map ``cal``)."""
        features, cal = self.mfcm(image)
        return features.detach(), cal

    # ------------------------------------------------------------------ training
    def loss(self, image: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """The weighted loss terms (their sum is the training loss; mmengine sums the ``loss_*`` keys)."""
        _check(image, mask)
        features, cal = self.condition(image)
        t = torch.randint(0, self.num_steps, (image.shape[0],), device=image.device)
        w = self.loss_weights
        gauss = self.gaussian.training_loss(
            self._gaussian_fn(image, features), mask, t=t, vb_weight=w["vb_gauss"], return_terms=True
        )
        bern = self.bernoulli.training_loss(
            self._bernoulli_fn(image, features), mask, t=t, kl_weight=w["vb_bern"], bce_weight=w["bce"],
            return_terms=True,
        )  # fmt: skip
        return {
            "loss_mse": w["mse"] * gauss["mse"],
            "loss_vb_gauss": w["vb_gauss"] * gauss["vb"],
            "loss_bce": w["bce"] * bern["bce"],
            "loss_vb_bern": w["vb_bern"] * bern["kl"],
            "loss_scc": w["scc"] * F.mse_loss(cal, mask),
        }

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def segment(
        self,
        image: torch.Tensor,
        steps: int | None = 20,
        samples: int = 5,
        gaussian_sampler: str = "ddim",
        bernoulli_sampler: str = "ddim",
        aggregation: str = "mean",
        generator: torch.Generator | None = None,
    ) -> Segmentation:
        """Segment a batch of images (B, C, H, W) in [0, 1] (see the module docstring for the fusion)."""
        b = image.shape[0]
        features, cal = self.condition(image)
        repeat = (samples,) + (1,) * (image.ndim - 1)
        images, feats = image.repeat(repeat), features.repeat(repeat)  # sample-major: (N * B, ...)
        ts = sample_steps(self.num_steps, steps)
        shape = (samples * b, 1, *image.shape[-2:])
        x_T = torch.randn(shape, generator=generator, device="cpu").to(image.device)
        gauss = self.gaussian.sample(
            self._gaussian_fn(images, feats), x_T, timesteps=ts, sampler=gaussian_sampler, generator=generator
        )
        y_T = (torch.rand(shape, generator=generator, device="cpu") < 0.5).float().to(image.device)
        bern, _ = self.bernoulli.sample(
            self._bernoulli_fn(images, feats), y_T, timesteps=ts, sampler=bernoulli_sampler, generator=generator
        )
        gauss = gauss.clamp(0.0, 1.0).reshape(samples, *image.shape[:1], *shape[1:])
        bern = bern.reshape(samples, *image.shape[:1], *shape[1:])
        fused_g, _ = aggregate(gauss, aggregation, dim=0, batch_ndim=1)  # STAPLE per image
        fused_b, _ = aggregate(bern, aggregation, dim=0, batch_ndim=1)
        cal = cal.clamp(0.0, 1.0)
        probability = (fused_g + fused_b + cal) / 3
        _, uncertainty = aggregate(torch.cat([gauss, bern]), "mean", dim=0)
        return Segmentation(probability, uncertainty, gauss, bern, cal, len(ts), 2 * samples * len(ts))

    def validation_probability(self, image: torch.Tensor) -> torch.Tensor:
        generator = torch.Generator().manual_seed(VAL_SEED)
        return self.segment(image, generator=generator, **self.val_sampling).probability

    def forward(
        self,
        image: torch.Tensor,
        mask: torch.Tensor | None = None,
        mode: str = "tensor",
        index: torch.Tensor | None = None,
        **sample_kwargs,
    ):
        """``loss`` -> the weighted loss terms; ``predict`` -> `Segmentation`; ``tensor`` -> the calibration map."""
        if mode == "loss":
            if mask is None:
                raise ValueError("mode='loss' needs the ground-truth mask")
            return self.loss(image, mask)
        if mode == "predict":
            return self.segment(image, **sample_kwargs)
        if mode == "tensor":
            return self.condition(image)[1]
        raise ValueError(f"unknown mode {mode!r}; expected 'loss', 'predict' or 'tensor'")


def _check(image: torch.Tensor, mask: torch.Tensor) -> None:
    if image.ndim != 4 or mask.ndim != 4 or mask.shape[1] != 1 or image.shape[-2:] != mask.shape[-2:]:
        raise ValueError(f"expected image (B, C, H, W) and mask (B, 1, H, W), got {image.shape} and {mask.shape}")


def count_parameters(module: torch.nn.Module, prefixes: Sequence[str] = ()) -> int:
    """Parameters of ``module`` (shared ones once), optionally only those under the given name prefixes."""
    seen, total = set(), 0
    for name, p in module.named_parameters():
        if id(p) in seen or (prefixes and not name.startswith(tuple(prefixes))):
            continue
        seen.add(id(p))
        total += p.numel()
    return total
