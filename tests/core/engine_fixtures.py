"""A tiny diffusion-like model, data set and metric for the engine tests (also imported by ``ddp_train.py``)."""

from __future__ import annotations

from typing import Any

import torch
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.registry import DATASETS, METRICS, MODELS
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset


@DATASETS.register_module()
class EngineTestVectors(Dataset):
    """``size`` fixed random vectors (their own generator), items ``{"x": (dim,)}``."""

    def __init__(self, size: int = 40, dim: int = 4, seed: int = 123):
        self.data = torch.randn(size, dim, generator=torch.Generator().manual_seed(seed))

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"x": self.data[index]}


@MODELS.register_module()
class EngineTestDenoiser(BaseModel):
    """An MLP eps-predictor whose loss draws t and noise from the global RNG each step, like a diffusion loss."""

    def __init__(self, dim: int = 4, hidden: int = 16):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim + 1, hidden), nn.SiLU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, data_samples: Any = None, mode: str = "loss") -> Any:
        t = torch.rand(x.shape[0], 1, device=x.device)
        noise = torch.randn_like(x)
        prediction = self.net(torch.cat([(1 - t).sqrt() * x + t.sqrt() * noise, t], dim=1))
        if mode == "loss":
            return {"loss": F.mse_loss(prediction, noise)}
        return list(prediction)


@METRICS.register_module()
class EngineTestMeanPrediction(BaseMetric):
    """Mean of the predictions (validation consumes random draws, which must not disturb training)."""

    default_prefix = "test"

    def process(self, data_batch: Any, data_samples: Any) -> None:
        self.results.extend(float(sample.mean()) for sample in data_samples)

    def compute_metrics(self, results: list) -> dict[str, float]:
        return {"mean_prediction": sum(results) / len(results)}


def tiny_config(
    max_iters: int = 12, sampler: str = "DefaultSampler", validate: bool = False, num_workers: int = 0, **extra
) -> dict:
    """A config dict that trains :class:`EngineTestDenoiser` for ``max_iters`` iterations (5 batches/epoch)."""
    cfg = dict(
        model=dict(type="EngineTestDenoiser"),
        train_dataloader=dict(
            dataset=dict(type="EngineTestVectors", size=40),
            batch_size=8,
            num_workers=num_workers,
            sampler=dict(type=sampler, shuffle=True),
            collate_fn=dict(type="default_collate"),
        ),
        train_cfg=dict(by_epoch=False, max_iters=max_iters, val_interval=4),
        optim_wrapper=dict(optimizer=dict(type="AdamW", lr=1e-2)),
        param_scheduler=[dict(type="LinearLR", start_factor=0.5, by_epoch=False, begin=0, end=max_iters)],
        ema=dict(momentum=0.1),
        checkpoint_interval=4,
    )
    if validate:
        cfg.update(
            val_dataloader=dict(
                dataset=dict(type="EngineTestVectors", size=8, seed=7),
                batch_size=4,
                sampler=dict(type="DefaultSampler", shuffle=False),
                collate_fn=dict(type="default_collate"),
            ),
            val_cfg=dict(),
            val_evaluator=dict(type="EngineTestMeanPrediction"),
        )
    cfg.update(extra)
    return cfg
