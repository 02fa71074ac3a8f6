"""ImDiffusion (Chen et al., VLDB 2024, arXiv 2307.00754; released code ``17000cyh/IMDiffusion``): anomaly detection
by unconditional diffusion imputation with grating masks, on the core's masked eps-prediction ``GaussianDiffusion``.

- :func:`grating_masks`: the two complementary time-block masks (all features per block).
- :class:`ImDiffusion`: the mmengine model. ``mode='loss'`` = the target-only eps loss with the whole window noised
  (unconditional imputation, released ``unconditional=True``); ``mode='predict'`` = DDPM imputation of every window with
  both grating masks (RePaint-style replacement of the conditioned entries), per-step outputs merged so each point is
  imputed once.
- :class:`ImDiffusionDetector`: a PyOD-style detector (fit / decision_function / predict / intervals).

Scoring, stitching and voting live in :mod:`diffusekit.timeseries.ensemble`.

Conventions: windows are (B, K, L) in [0, 1]-scaled units; the model multiplies them by ``value_scale`` (released:
20, "so that Gaussian noise does not dominate") and divides its imputations back, so everything outside the model is
in the scaled-series units. A "cond" mask is 1 where the chain is conditioned on the data; targets (imputed and in
the loss) are ``observed * (1 - cond)``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from mmengine.model import BaseModel
from mmengine.registry import MODELS
from torch import nn

from diffusekit.core.gaussian import GaussianDiffusion
from diffusekit.core.schedule import NoiseSchedule
from diffusekit.timeseries.data import VAL_FRACTION, MinMaxScaling, WindowDataset, validation_slice
from diffusekit.timeseries.ensemble import DEFAULT_STEPS, Reduce, SeriesScores, VoteCalibration
from diffusekit.timeseries.pipeline import Interval, Settings, calibrate_scores, detect, find_intervals, score_series

TrainStrategy = Literal["grating", "random"]


def grating_masks(
    length: int, blocks: int, device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two grating cond masks over time, float (L,) each, broadcasting over features.

    Time step t lies in block ``floor(t * blocks / length)``, so when ``blocks`` does not divide ``length`` the block
    sizes differ by at most one (the longer blocks spread evenly). Mask type 0 conditions on the even blocks and
    imputes the odd ones; type 1 is the complement (released ``dataset.py``; training split 10, inference split 4).
    """
    if not 2 <= blocks <= length:
        raise ValueError(f"blocks must be in [2, {length}] for a window of {length}, got {blocks}")
    block = torch.div(torch.arange(length, device=device) * blocks, length, rounding_mode="floor")
    mask0 = (block % 2 == 0).float()
    return mask0, 1.0 - mask0


def training_masks(
    shape: tuple[int, int, int],
    strategy: TrainStrategy = "grating",
    blocks: int | Sequence[int] = 10,
    ratio: float = 0.7,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cond masks (B, K, L) and mask-type ids (B,) long for one training batch (on the CPU).

    - ``"grating"`` (paper): a random type per window with its grating mask (block count drawn per batch from
      ``blocks``).
    - ``"random"`` (released code's ``forward``, item (a) of the spec): a random point mask with ``ratio`` targets. The
      released id is a random 0/1 unrelated to the mask; here the id is *derived from the mask*: the grating type whose
      imputed blocks hold the larger fraction of the targets (ties: 0), so the id still tells the net which half is
      mostly imputed.
    """
    b, k, length = shape
    choices = [int(blocks)] if isinstance(blocks, int) else [int(x) for x in blocks]
    n_blocks = choices[int(torch.randint(len(choices), (1,), generator=generator))]
    mask0, mask1 = grating_masks(length, n_blocks)
    if strategy == "grating":
        mask_type = torch.randint(0, 2, (b,), generator=generator)
        cond = torch.where(mask_type[:, None] == 0, mask0, mask1)[:, None, :].expand(b, k, length)
        return cond.contiguous(), mask_type
    if strategy == "random":
        if not 0.0 < ratio < 1.0:
            raise ValueError(f"ratio must be in (0, 1), got {ratio}")
        target = (torch.rand(shape, generator=generator) < ratio).float()
        frac0 = (target * mask1).sum(dim=(1, 2)) / (k * mask1.sum())  # type 0 imputes mask1's blocks
        frac1 = (target * mask0).sum(dim=(1, 2)) / (k * mask0.sum())
        return 1.0 - target, (frac1 > frac0).long()
    raise ValueError(f"unknown training strategy {strategy!r}; expected 'grating' or 'random'")


def _build_denoiser(denoiser: dict | nn.Module) -> nn.Module:
    """A module as is; a config dict ``{"type": name or class, **kwargs}`` (default type ``ImDiffusionNet``) via
    mmengine's MODELS, else from ``diffusekit.timeseries.models`` (imported lazily)."""
    if isinstance(denoiser, nn.Module):
        return denoiser
    cfg = dict(denoiser)
    kind = cfg.pop("type", "ImDiffusionNet")
    if callable(kind):
        return kind(**cfg)
    try:
        from diffusekit.timeseries import models
    except ImportError:  # pragma: no cover - the network module is written separately
        models = None
    if MODELS.get(kind) is not None:
        return MODELS.build(dict(type=kind, **cfg))
    if models is not None and hasattr(models, kind):
        return getattr(models, kind)(**cfg)
    raise KeyError(f"denoiser type {kind!r} is neither registered in MODELS nor in diffusekit.timeseries.models")


@dataclass
class WindowImputation:
    """``imputed`` (B, S, K, L): per-step imputations in sampler order (``[:, i]`` = after step i, ``[:, -1]`` = the
    final x̂₀), both masks merged, in input units; ``inputs`` (B, K, L); ``timesteps`` the chain's levels."""

    imputed: torch.Tensor
    inputs: torch.Tensor
    timesteps: list[int]


@MODELS.register_module()
class ImDiffusion(BaseModel):
    """ImDiffusion as an mmengine model.

    Args:
        denoiser: the network (module or config dict), ``forward(x_t (B,K,L), t (B,), mask_type (B,)) -> eps``.
        num_steps, schedule, beta_start, beta_end: the noise schedule (released: quad, 50, 1e-4..0.5).
        train_strategy: ``"grating"`` (default, paper) or ``"random"`` (released code), see :func:`training_masks`.
        train_blocks: grating block count(s) in training (released: 10); ``infer_blocks``: at inference (released: 4).
        random_ratio: target ratio of the ``"random"`` strategy (released ``--ratio 0.7``).
        value_scale: factor applied to the [0,1]-scaled inputs inside the model (released: 20).
        sample_steps: reverse timesteps for ``predict`` (None = all T, the released DDPM chain; an int n = n
            "trailing" steps, e.g. 10 -> t = 49, 44, ..., 4).
        sampler: ``"ddpm"`` (released; ancestral, respaced when ``sample_steps`` skips levels) or ``"ddim"``
            (deterministic, Song et al. 2021 eq. 12 with eta 0): the fast scoring of docs/timeseries.md.
    """

    def __init__(
        self,
        denoiser: dict | nn.Module,
        num_steps: int = 50,
        schedule: str = "quad",
        beta_start: float = 1e-4,
        beta_end: float = 0.5,
        train_strategy: TrainStrategy = "grating",
        train_blocks: int | Sequence[int] = 10,
        infer_blocks: int = 4,
        random_ratio: float = 0.7,
        value_scale: float = 20.0,
        sample_steps: int | Sequence[int] | None = None,
        sampler: Literal["ddpm", "ddim"] = "ddpm",
        data_preprocessor: dict | nn.Module | None = None,
        init_cfg: dict | None = None,
    ):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if train_strategy not in ("grating", "random"):
            raise ValueError(f"unknown training strategy {train_strategy!r}; expected 'grating' or 'random'")
        if sampler not in ("ddpm", "ddim"):
            raise ValueError(f"unknown sampler {sampler!r}; expected 'ddpm' or 'ddim'")
        self.denoiser = _build_denoiser(denoiser)
        sched = NoiseSchedule.named(schedule, num_steps, beta_start=beta_start, beta_end=beta_end)
        self.diffusion = GaussianDiffusion(sched, prediction="eps")
        self.train_strategy, self.train_blocks, self.infer_blocks = train_strategy, train_blocks, int(infer_blocks)
        self.random_ratio, self.value_scale, self.sample_steps = float(random_ratio), float(value_scale), sample_steps
        self.sampler = sampler

    def _unpack(self, inputs, data_samples, values, observed_mask) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows and observed masks from a tensor, a ``WindowDataset`` batch dict, or its keys as kwargs."""
        if isinstance(inputs, dict):
            observed_mask = inputs.get("observed_mask", observed_mask)
            inputs = inputs["values"]
        if inputs is None:
            inputs = values
        if inputs is None:
            raise ValueError("ImDiffusion.forward needs windows (B, K, L): inputs=... or values=...")
        if observed_mask is None and isinstance(data_samples, dict):
            observed_mask = data_samples.get("observed_mask")
        if inputs.ndim != 3:
            raise ValueError(f"windows must be (B, K, L), got shape {tuple(inputs.shape)}")
        observed = torch.ones_like(inputs) if observed_mask is None else observed_mask.to(inputs)
        return inputs, observed

    def forward(
        self,
        inputs: torch.Tensor | dict | None = None,
        data_samples=None,
        mode: str = "tensor",
        *,
        values: torch.Tensor | None = None,
        observed_mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        **kwargs,
    ):
        """``loss`` -> {"loss"}; ``predict`` -> :class:`WindowImputation`; ``tensor`` -> eps of the clean windows
        at t=0 with mask type 0 (a smoke path)."""
        x, observed = self._unpack(inputs, data_samples, values, observed_mask)
        if mode == "loss":
            return {"loss": self.loss(x, observed, generator=generator)}
        if mode == "predict":
            return self.impute(x, observed, generator=generator)
        if mode == "tensor":
            zeros = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
            return self.denoiser(x * self.value_scale, zeros, zeros)
        raise ValueError(f"unknown mode {mode!r}; expected 'loss', 'predict' or 'tensor'")

    def loss(
        self, x: torch.Tensor, observed: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Unconditional imputation loss: the whole window is noised; the eps MSE runs over the targets
        ``observed * (1 - cond)`` only (released ``calc_loss``, divided by the number of targets)."""
        observed = torch.ones_like(x) if observed is None else observed
        cond, mask_type = training_masks(
            tuple(x.shape), self.train_strategy, self.train_blocks, self.random_ratio, generator
        )
        target = observed * (1.0 - cond.to(x))
        return self.diffusion.training_loss(
            self.denoiser, x * self.value_scale, mask=target, generator=generator, mask_type=mask_type.to(x.device)
        )

    @torch.no_grad()
    def impute(
        self, x: torch.Tensor, observed: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> WindowImputation:
        """Impute each window with both grating masks (``infer_blocks`` blocks) in one chain of batch 2B,
        conditioning on the observed cond entries; each point is taken from the pass that imputed it."""
        observed = torch.ones_like(x) if observed is None else observed
        b, k, length = x.shape
        mask0, mask1 = grating_masks(length, self.infer_blocks, device=x.device)
        cond = torch.cat([mask0.expand(b, k, length), mask1.expand(b, k, length)])
        mask_type = torch.cat([torch.zeros(b), torch.ones(b)]).long().to(x.device)
        known = torch.cat([x, x]) * self.value_scale
        x_T = torch.randn(known.shape, generator=generator, device="cpu", dtype=x.dtype).to(x.device)
        traj = self.diffusion.sample(
            self.denoiser,
            x_T,
            timesteps=self.sample_steps,
            sampler=self.sampler,
            known=known,
            known_mask=cond * torch.cat([observed, observed]),
            return_trajectory=True,
            generator=generator,
            mask_type=mask_type,
        )
        states = traj.states / self.value_scale  # (2B, S, K, L)
        target0 = (1.0 - mask0).expand(b, k, length)[:, None]  # type 0 imputes mask1's blocks
        merged = states[:b] * target0 + states[b:] * (1.0 - target0)
        return WindowImputation(merged, x, list(traj.timesteps))

    def val_step(self, data: dict) -> list[dict[str, float]]:
        """Validation (mmengine ``ValLoop``): impute every window with both grating masks, from fixed noise (the
        training RNG is left alone), and return per window the summed squared and absolute error of the final
        imputation over the observed points, and their count (for :class:`~diffusekit.timeseries.metrics.
        ImputationMetric`)."""
        data = self.data_preprocessor(data, False)
        x, observed = self._unpack(data, None, None, None)
        out = self.impute(x, observed, generator=torch.Generator().manual_seed(0))
        error = (out.imputed[:, -1] - x) * observed
        sq, ab, count = (error**2).sum(dim=(1, 2)), error.abs().sum(dim=(1, 2)), observed.sum(dim=(1, 2))
        return [
            dict(sq_error=float(s), abs_error=float(a), count=float(c)) for s, a, c in zip(sq.cpu(), ab.cpu(), count)
        ]

    test_step = val_step


NetFactory = Callable[[int], nn.Module]


class ImDiffusionDetector:
    """PyOD-style ImDiffusion detector on (T, K) numpy series.

    ``fit`` fits min-max scaling on ``X_train``, holds out its tail (``val_fraction``, at least one window: the
    domain's one validation split, :func:`~diffusekit.timeseries.data.validation_slice`) for calibration, trains
    ``iterations`` Adam steps (released: lr 1e-3, wd 1e-6, x0.1 at 75%/90%) on stride-``train_stride`` windows of
    the rest, then scores all of ``X_train`` (``decision_scores_``, ``labels_``).

    Deployable threshold (default for ``predict``, no test labels): :func:`~diffusekit.timeseries.ensemble.
    calibrate_votes` on the held-out scores with ``p0`` (the per-step false-alarm rate on normal data) and ``xi``
    (default: majority of the voting steps). ``decision_function`` = votes + soft vote (see ``decision_scores``);
    ``threshold_ = xi + 1`` and ``predict = decision_function >= threshold_``, i.e. exactly V > ξ.

    ``net_factory(num_features) -> module`` builds the denoiser (default: ``ImDiffusionNet`` from
    ``diffusekit.timeseries.models``, imported lazily). Test windows use stride ``window // 2`` (released 50 of 100)
    plus a tail window, stitched so every timestamp is scored once. Scoring, calibration and intervals are those of
    :mod:`diffusekit.timeseries.pipeline`, as in ``diffusekit timeseries evaluate / predict``.
    """

    def __init__(
        self,
        window: int = 100,
        stride: int | None = None,
        train_stride: int = 1,
        iterations: int = 300,
        batch_size: int = 16,
        lr: float = 1e-3,
        weight_decay: float = 1e-6,
        net_factory: NetFactory | None = None,
        model_kwargs: dict | None = None,
        reduce: Reduce = "max",
        steps: Sequence[int] = DEFAULT_STEPS,
        p0: float = 0.02,
        xi: int | None = None,
        val_fraction: float = VAL_FRACTION,
        top_k: int = 3,
        device: str = "cpu",
        seed: int = 0,
    ):
        self.settings = Settings(window, stride, val_fraction, reduce, tuple(steps), p0, xi, (p0,))
        self.window, self.stride = self.settings.window, self.settings.test_stride
        self.train_stride, self.iterations, self.batch_size = int(train_stride), int(iterations), int(batch_size)
        self.lr, self.weight_decay = lr, weight_decay
        self.net_factory, self.model_kwargs = net_factory, dict(model_kwargs or {})
        self.top_k, self.device, self.seed = int(top_k), device, seed
        self._cache: tuple[str, SeriesScores] | None = None

    # ---------------------------------------------------------------------------------------------- fitting
    def _net(self, num_features: int) -> nn.Module:
        if self.net_factory is not None:
            return self.net_factory(num_features)
        from diffusekit.timeseries.models import ImDiffusionNet

        return ImDiffusionNet(num_features)

    def fit(self, X_train: np.ndarray, y=None) -> ImDiffusionDetector:
        X = self._check(X_train)
        self._cache = None  # scores of a previous model
        torch.manual_seed(self.seed)
        self.scaler_ = MinMaxScaling.fit(X)
        scaled = self.scaler_.transform(X)
        held_out = validation_slice(len(X), self.settings.val_fraction, self.window)
        self.model_ = ImDiffusion(self._net(X.shape[1]), **self.model_kwargs).to(self.device)
        self.losses_ = self._train(scaled[: held_out.start] if held_out.start else scaled)
        scores = self._scores_scaled(scaled)
        self.calibration_: VoteCalibration = calibrate_scores(scores.part(held_out), self.settings)
        self.threshold_ = float(self.calibration_.xi + 1)
        found = detect(scores, self.calibration_)
        self.decision_scores_, self.labels_ = found.decision, found.predicted
        return self

    def _train(self, scaled: np.ndarray) -> list[float]:
        model = self.model_
        data = WindowDataset(scaled, self.window, self.train_stride)
        windows = torch.stack([data[i]["values"] for i in range(len(data))]).to(self.device)
        opt = torch.optim.Adam(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        milestones = [int(0.75 * self.iterations), int(0.9 * self.iterations)]
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=0.1)
        gen = torch.Generator().manual_seed(self.seed)
        losses = []
        model.train()
        for _ in range(self.iterations):
            idx = torch.randint(len(windows), (min(self.batch_size, len(windows)),), generator=gen)
            loss = model(windows[idx.to(self.device)], mode="loss", generator=gen)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        model.eval()
        return losses

    # ---------------------------------------------------------------------------------------------- scoring
    def _check(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or not np.isfinite(X).all():
            raise ValueError(f"X must be a finite (T, K) array, got shape {X.shape}")
        return X

    def _scores_scaled(self, scaled: np.ndarray) -> SeriesScores:
        key = hashlib.sha1(np.ascontiguousarray(scaled, dtype=np.float32).tobytes()).hexdigest()
        if self._cache is None or self._cache[0] != key:
            scores = score_series(
                self.model_, scaled, self.settings, seed=self.seed + 1, all_steps=True, progress=False
            )
            self._cache = (key, scores)
        return self._cache[1]

    def score_samples(self, X: np.ndarray) -> SeriesScores:
        """Per-step scores (S, T), per-step errors (S,) and per-feature final-step errors (K, T) of a series."""
        return self._scores_scaled(self.scaler_.transform(self._check(X)))

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """d(t) = V(t) + soft vote in [0, 1) with the calibrated thresholds (T,); higher is more anomalous."""
        return detect(self.score_samples(X), self.calibration_).decision

    def predict(self, X: np.ndarray) -> np.ndarray:
        """0/1 labels with the deployable threshold: V > ξ (``decision_function >= threshold_``)."""
        return detect(self.score_samples(X), self.calibration_).predicted

    def intervals(self, X: np.ndarray) -> list[Interval]:
        """Predicted anomalous intervals ``(start, end exclusive, max decision score, top features)``: the
        pipeline's :func:`~diffusekit.timeseries.pipeline.find_intervals` (features ranked by their mean final-step
        imputation error |x̂₀ − x| inside the interval, ``top_k`` of them)."""
        scores = self.score_samples(X)
        found = detect(scores, self.calibration_)
        return find_intervals(found.predicted, found.decision, scores.feature_scores, self.top_k)
