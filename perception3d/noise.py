"""Localisation error and communication delay as OpenCOOD and CoAlign simulate them, with an explicit Generator.

Pose noise follows CoAlign's ``opencood/utils/pose_utils.py`` (``generate_noise`` / ``generate_noise_laplace``):
x and y get ``pos`` noise in metres, yaw gets ``rot`` noise in degrees, z, roll and pitch stay clean; the
distribution is Gaussian ``N(mean, std)`` or Laplace with scale ``b = std`` (so a Laplace draw's standard deviation
is ``sqrt(2) * std``, as in CoAlign). CoAlign perturbs every agent (``ego=True``); OpenCOOD's
``basedataset.py`` perturbs the non-ego agents only (``ego=False``). Unlike both, nothing here re-seeds a global
generator: the caller passes a ``numpy.random.Generator`` (OpenCOOD's ``np.random.seed`` on every call made every
draw identical).

Delay follows OpenCOOD ``basedataset.time_delay_calculation``: the ego is never delayed; ``sim`` is a constant
``async_overhead`` ms; ``real`` is ``U(0, async_overhead) + data_size / transmission_speed * 1000 + backbone_delay``
ms (1.06 Mb at 27 Mbps: 39.3 ms of transmission); milliseconds become frames with ``// 100`` (10 Hz data). ``frames``
is a fixed number of frames, as in benchmarks that compare 0 and 2 frames of delay.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DELAY_MODES", "NOISE_SWEEP", "TRAIN_NOISE", "Delay", "PoseNoise", "sweep_presets"]

NOISE_SWEEP = (0.0, 0.2, 0.4, 0.6)  # CoAlign's test sweep: pos std (m) = rot std (degrees)
DELAY_MODES = ("none", "frames", "sim", "real")


def _check_generator(rng) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"pass a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    return rng


@dataclass(frozen=True)
class PoseNoise:
    """Noise on the x, y (metres) and yaw (degrees) of ``[x, y, z, roll, yaw, pitch]`` poses (CoAlign
    ``pose_utils.generate_noise``; ``laplace=True``: ``generate_noise_laplace`` with ``b = std``).

    ``ego=True`` perturbs every agent, agent 0 included (CoAlign); ``ego=False`` leaves agent 0 clean (OpenCOOD).
    """

    pos_std: float
    rot_std: float
    pos_mean: float = 0.0
    rot_mean: float = 0.0
    laplace: bool = False
    ego: bool = True

    def __post_init__(self):
        if not (self.pos_std >= 0 and self.rot_std >= 0):
            raise ValueError(f"noise std must be >= 0, got pos_std={self.pos_std}, rot_std={self.rot_std}")
        if not (np.isfinite(self.pos_mean) and np.isfinite(self.rot_mean)):
            raise ValueError("noise means must be finite")

    @property
    def enabled(self) -> bool:
        """Whether `apply` changes anything."""
        return bool(self.pos_std or self.rot_std or self.pos_mean or self.rot_mean)

    def sample(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """(count, 6) additive noise: columns x, y and yaw drawn, the others 0 (agent 0 zero when ``ego=False``)."""
        rng = _check_generator(rng)
        draw = rng.laplace if self.laplace else rng.normal
        noise = np.zeros((count, 6))
        noise[:, :2] = draw(self.pos_mean, self.pos_std, size=(count, 2))
        noise[:, 4] = draw(self.rot_mean, self.rot_std, size=count)
        if not self.ego and count:
            noise[0] = 0.0
        return noise

    def apply(self, poses, rng: np.random.Generator) -> np.ndarray:
        """Noisy copies of ``poses`` (A, 6) or (6,) ``[x, y, z, roll, yaw, pitch]`` (row 0 = the ego); ``rng`` is
        used, never re-seeded, so consecutive calls draw different noise."""
        clean = np.asarray(poses, dtype=np.float64)
        if clean.shape[-1:] != (6,) or clean.ndim > 2:
            raise ValueError(f"poses must be (A, 6) or (6,), got shape {clean.shape}")
        batch = np.atleast_2d(clean)
        noisy = batch + self.sample(len(batch), rng)
        return noisy.reshape(clean.shape)


TRAIN_NOISE = PoseNoise(0.2, 0.2)  # CoAlign's training setting: 0.2 m / 0.2 degrees


def sweep_presets(laplace: bool = False, ego: bool = True) -> tuple[PoseNoise, ...]:
    """The CoAlign test sweep as PoseNoise objects: std 0, 0.2, 0.4 and 0.6 (metres and degrees alike)."""
    return tuple(PoseNoise(std, std, laplace=laplace, ego=ego) for std in NOISE_SWEEP)


@dataclass(frozen=True)
class Delay:
    """Communication delay of the non-ego agents (OpenCOOD ``basedataset.time_delay_calculation``).

    ``mode``: ``"none"``; ``"frames"`` (``num_frames`` frames for every non-ego agent); ``"sim"`` (a constant
    ``async_overhead`` ms); ``"real"`` (``U(0, async_overhead) + data_size / transmission_speed * 1000 +
    backbone_delay`` ms, data size in Mb, speed in Mbps). `milliseconds` gives the delay, `frames` turns it into frames
    with ``// frame_ms`` (100 ms at OPV2V's 10 Hz).
    """

    mode: str = "none"
    num_frames: int = 0
    async_overhead: float = 100.0
    data_size: float = 1.06
    transmission_speed: float = 27.0
    backbone_delay: float = 10.0
    frame_ms: float = 100.0

    def __post_init__(self):
        if self.mode not in DELAY_MODES:
            raise ValueError(f"delay mode must be one of {', '.join(DELAY_MODES)}, got {self.mode!r}")
        if int(self.num_frames) != self.num_frames or self.num_frames < 0:
            raise ValueError(f"num_frames must be a non-negative integer, got {self.num_frames}")
        if self.transmission_speed <= 0 or self.frame_ms <= 0:
            raise ValueError("transmission_speed and frame_ms must be positive")
        if min(self.async_overhead, self.data_size, self.backbone_delay) < 0:
            raise ValueError("async_overhead, data_size and backbone_delay must be >= 0")

    def milliseconds(self, rng: np.random.Generator, ego: bool = False) -> float:
        """One agent's delay in ms (0 for the ego and for ``mode="none"``)."""
        if ego or self.mode == "none":
            return 0.0
        if self.mode == "frames":
            return float(self.num_frames * self.frame_ms)
        if self.mode == "sim":
            return float(abs(self.async_overhead))
        overhead = _check_generator(rng).uniform(0.0, self.async_overhead)
        return float(overhead + self.data_size / self.transmission_speed * 1000.0 + self.backbone_delay)

    def frames(self, rng: np.random.Generator, ego: bool = False) -> int:
        """One agent's delay in whole frames: ``milliseconds // frame_ms`` (the ego: always 0)."""
        if self.mode == "frames":
            return 0 if ego else int(self.num_frames)
        return int(self.milliseconds(rng, ego) // self.frame_ms)
