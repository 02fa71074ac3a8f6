"""diffusekit.core: the shared diffusion core (schedules, Gaussian and Bernoulli processes, samplers, building
blocks). It knows no domain; mmengine is imported only by ``diffusekit.core.engine`` and ``diffusekit.core.toy``.

Importing it sets a passive OpenMP wait policy before torch loads (see :mod:`diffusekit.core.threads`)."""

from .threads import set_wait_policy

set_wait_policy()  # before the first import of torch

from .aggregate import aggregate, binary_entropy, staple
from .bernoulli import BernoulliDiffusion, BernoulliTrajectory
from .ema import copy_ema_to, make_ema
from .errors import DataError
from .gaussian import GaussianDiffusion, Trajectory
from .layers import FiLM, TimestepEmbedder, TransformerBlock, timestep_embedding
from .noise_assignment import assign_noise
from .schedule import NoiseSchedule, make_timesteps
from .unet import UNet1D, UNet2D

__all__ = [
    "BernoulliDiffusion",
    "BernoulliTrajectory",
    "DataError",
    "FiLM",
    "GaussianDiffusion",
    "NoiseSchedule",
    "TimestepEmbedder",
    "Trajectory",
    "TransformerBlock",
    "UNet1D",
    "UNet2D",
    "aggregate",
    "assign_noise",
    "binary_entropy",
    "copy_ema_to",
    "make_ema",
    "make_timesteps",
    "staple",
    "timestep_embedding",
]
