"""diffusekit.core: the shared diffusion core (schedules, Gaussian and Bernoulli processes, samplers, building
blocks). It knows no domain; mmengine is imported only by ``diffusekit.core.engine``."""

from .errors import DataError
from .gaussian import GaussianDiffusion, Trajectory
from .noise_assignment import assign_noise
from .schedule import NoiseSchedule, make_timesteps

__all__ = [
    "DataError",
    "GaussianDiffusion",
    "NoiseSchedule",
    "Trajectory",
    "assign_noise",
    "make_timesteps",
]
