"""A 2-D toy task that shows the core end to end in seconds: a Gaussian-mixture data set, a small MLP denoiser,
its mmengine model, and the sliced Wasserstein distance used to score samples.

Used by ``diffusekit demo``, the engine tests and ``benchmarks/``; it holds no domain knowledge.
"""

from __future__ import annotations

import math

import torch
from mmengine.model import BaseModel
from mmengine.registry import DATASETS, MODELS
from torch import nn
from torch.utils.data import Dataset

from .gaussian import GaussianDiffusion
from .layers import TimestepEmbedder
from .schedule import NoiseSchedule, make_timesteps


def sample_mixture(
    n: int, generator: torch.Generator | None = None, modes: int = 8, radius: float = 2.0, std: float = 0.15
) -> torch.Tensor:
    """``n`` points of an equal-weight mixture of ``modes`` isotropic Gaussians on a circle."""
    k = torch.randint(0, modes, (n,), generator=generator)
    angle = 2 * math.pi * k.float() / modes
    centres = radius * torch.stack([angle.cos(), angle.sin()], dim=1)
    return centres + std * torch.randn(n, 2, generator=generator)


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, projections: int = 512, seed: int = 0) -> float:
    """Sliced 2-Wasserstein distance between two equal-size point clouds (Rabin et al. 2011): the root mean of
    the squared 1-D W2 distances (sorted projections) over random unit directions."""
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"point clouds must have equal shapes (N, D), got {tuple(a.shape)} and {tuple(b.shape)}")
    g = torch.Generator().manual_seed(seed)
    dirs = torch.randn(a.shape[1], projections, generator=g, dtype=torch.float64)
    dirs /= dirs.norm(dim=0, keepdim=True)
    pa = (a.double() @ dirs).sort(dim=0).values
    pb = (b.double() @ dirs).sort(dim=0).values
    return float(((pa - pb) ** 2).mean().sqrt())


class MLPDenoiser(nn.Module):
    """x_t (B, 2) and t (B,) -> a prediction (B, 2): an MLP on [x_t, time embedding]."""

    def __init__(self, dim: int = 2, hidden: int = 256, depth: int = 4, time_dim: int = 64):
        super().__init__()
        self.time = TimestepEmbedder(time_dim)
        layers: list[nn.Module] = [nn.Linear(dim + time_dim, hidden), nn.SiLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(hidden, hidden), nn.SiLU()]
        layers.append(nn.Linear(hidden, dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, self.time(t)], dim=1))


@DATASETS.register_module()
class MixtureDataset(Dataset):
    """A fixed draw of ``size`` mixture points; items are ``{"inputs": (2,) tensor}`` for mmengine's collate."""

    def __init__(self, size: int = 20_000, seed: int = 0):
        self.points = sample_mixture(size, torch.Generator().manual_seed(seed))

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"inputs": self.points[index]}


@MODELS.register_module()
class ToyDiffusion(BaseModel):
    """The 2-D denoiser as an mmengine model: ``mode='loss'`` is the diffusion training loss, ``mode='predict'``
    draws samples (one per input row) with ``sampler`` over ``steps`` steps."""

    def __init__(
        self,
        schedule: str = "linear",
        num_train_steps: int = 1000,
        prediction: str = "eps",
        hidden: int = 256,
        depth: int = 4,
        noise_assignment: str | None = None,
        sampler: str = "dpmpp_2m",
        steps: int = 20,
    ):
        super().__init__()
        self.denoiser = MLPDenoiser(hidden=hidden, depth=depth)
        self.diffusion = GaussianDiffusion(NoiseSchedule.named(schedule, num_train_steps), prediction=prediction)
        self.noise_assignment = noise_assignment
        self.sampler, self.steps = sampler, steps

    def forward(self, inputs: torch.Tensor, data_samples=None, mode: str = "tensor"):
        if mode == "loss":
            loss = self.diffusion.training_loss(self.denoiser, inputs, noise_assignment=self.noise_assignment)
            return {"loss": loss}
        if mode == "predict":
            return self.generate(inputs.shape[0])
        return self.denoiser(inputs, torch.zeros(inputs.shape[0], dtype=torch.long, device=inputs.device))

    @torch.no_grad()
    def generate(
        self,
        n: int,
        sampler: str | None = None,
        steps: int | None = None,
        spacing: str = "logsnr",
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Draw ``n`` samples from pure noise over ``steps`` timesteps of the given spacing (logSNR-uniform by
        default, the accurate choice for dpmpp_2m at few steps; T steps of any spacing is the full chain)."""
        device = next(self.parameters()).device
        x_T = torch.randn(n, 2, generator=generator).to(device)
        ts = make_timesteps(self.diffusion.num_steps, steps or self.steps, spacing, self.diffusion.schedule)
        return self.diffusion.sample(
            self.denoiser, x_T, timesteps=ts, sampler=sampler or self.sampler, generator=generator
        )
