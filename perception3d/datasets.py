"""Model inputs from cooperative samples: every agent's points levelled to the ego sensor height and voxelised into
pillars, the agent-to-ego transforms from the shared (noisy) and the true poses, the ground truth; and the collate
function that concatenates the pillars of a batch.

The readers (`opv2v.CooperativeScenes`, `dairv2x.DAIRV2XScenes`) return samples in the agents' own frames; pose
noise and delay are simulated there.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from mmengine.registry import DATASETS, FUNCTIONS
from torch.utils.data import Dataset

from .geometry import relative_transform
from .pillars import PillarGrid, voxelize

__all__ = ["CooperativeDetectionDataset", "cooperative_collate", "model_inputs"]

LAYOUTS = ("opv2v", "dairv2x")


def _reader(layout: str, root, split: str, **options):
    if layout == "opv2v":
        from .opv2v import CooperativeScenes

        return CooperativeScenes(root, split, **options)
    if layout == "dairv2x":
        from .dairv2x import DAIRV2XScenes

        # DAIR-V2X-C pairs one vehicle with one infrastructure unit and carries its own asynchrony: no max_cav or
        # simulated delay; no scenario folders.
        options.pop("max_cav", None)
        for key in ("delay", "scenario"):
            if options.pop(key, None) is not None:
                raise ValueError(f"{key} does not apply to DAIR-V2X-C")
        max_frames = options.pop("max_frames", None)
        scenes = DAIRV2XScenes(root, split, **options)
        if max_frames is not None:
            scenes.frames = scenes.frames[:max_frames]
        return scenes
    raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")


def noise_settings(noise: dict | None, delay: dict | None):
    """PoseNoise / Delay objects from config dicts (None: none)."""
    from .noise import Delay, PoseNoise

    pose = PoseNoise(**noise) if noise else None
    lag = Delay(**delay) if delay else None
    return pose, lag


def model_inputs(sample: dict[str, Any], grid: PillarGrid, max_points: int = 32, max_voxels: int | None = None):
    """One cooperative sample -> the detector's per-sample inputs (numpy)."""
    poses, clean = np.asarray(sample["poses"], np.float64), np.asarray(sample["poses_clean"], np.float64)
    pillars = []
    for index, points in enumerate(sample["points"]):
        points = np.array(points, dtype=np.float32, copy=True)
        # Level every cloud to the ego's sensor height: BEV warping moves x, y and yaw only.
        points[:, 2] += np.float32(poses[index, 2] - poses[0, 2])
        pillars.append(voxelize(points, grid, max_points, max_voxels))
    return {
        "pillars": pillars,
        "to_ego": np.stack([relative_transform(p, poses[0]) for p in poses]).astype(np.float32),
        "to_ego_clean": np.stack([relative_transform(p, clean[0]) for p in clean]).astype(np.float32),
        "gt_boxes": np.asarray(sample["gt_boxes"], np.float32).reshape(-1, 7),
    }


@DATASETS.register_module()
class CooperativeDetectionDataset(Dataset):
    """Voxelised cooperative frames of an OPV2V/V2XSet or DAIR-V2X folder.

    Args:
        data_root, layout ("opv2v" | "dairv2x"), split: the data. point_cloud_range, voxel_size, max_points,
        max_voxels: the pillar grid. comm_range, max_cav: agents taking part (max_cav=1: the ego alone).
        noise: PoseNoise kwargs (pos_std, rot_std, laplace, ...) or None. delay: Delay kwargs or None.
        seed: seed of the noise (each item reproducible). max_frames: first N frames per scenario. scenario: read
        only this scenario of the split (OPV2V layout).
    """

    def __init__(
        self,
        data_root: str,
        layout: str = "opv2v",
        split: str = "train",
        point_cloud_range=(-140.8, -40.0, -3.0, 140.8, 40.0, 1.0),
        voxel_size=(0.4, 0.4, 4.0),
        max_points: int = 32,
        max_voxels: int | None = None,
        comm_range: float = 70.0,
        max_cav: int = 5,
        noise: dict | None = None,
        delay: dict | None = None,
        seed: int = 0,
        max_frames: int | None = None,
        scenario: str | None = None,
    ):
        pose_noise, lag = noise_settings(noise, delay)
        self.grid = PillarGrid(tuple(point_cloud_range), tuple(voxel_size))
        self.max_points, self.max_voxels = max_points, max_voxels
        self.scenes = _reader(
            layout,
            data_root,
            split,
            comm_range=comm_range,
            max_cav=max_cav,
            point_cloud_range=tuple(point_cloud_range),
            noise=pose_noise,
            delay=lag,
            seed=seed,
            max_frames=max_frames,
            **({"scenario": scenario} if scenario else {}),
        )

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.scenes[index]
        item = model_inputs(sample, self.grid, self.max_points, self.max_voxels)
        item["meta"] = {
            "index": index,
            "scenario": sample["scenario"],
            "frame": sample["frame"],
            "agent_ids": list(sample["agent_ids"]),
            "poses": np.asarray(sample["poses"]),
            "poses_clean": np.asarray(sample["poses_clean"]),
        }
        return item


@FUNCTIONS.register_module()
def cooperative_collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Concatenate the pillars of every agent of every sample (map index = running agent number)."""
    voxels, coords, counts, agents, to_ego, to_ego_clean, gt = [], [], [], [], [], [], []
    maps = 0
    for item in batch:
        for pillars in item["pillars"]:
            voxels.append(pillars.voxels)
            coords.append(np.concatenate([np.full((len(pillars.coords), 1), maps), pillars.coords], axis=1))
            counts.append(pillars.counts)
            maps += 1
        agents.append(len(item["pillars"]))
        to_ego.append(item["to_ego"])
        to_ego_clean.append(item["to_ego_clean"])
        gt.append(torch.from_numpy(item["gt_boxes"]))
    inputs = {
        "voxels": torch.from_numpy(np.concatenate(voxels)),
        "coords": torch.from_numpy(np.concatenate(coords).astype(np.int64)),
        "counts": torch.from_numpy(np.concatenate(counts)),
        "agents": agents,
        "to_ego": torch.from_numpy(np.concatenate(to_ego)),
        "to_ego_clean": torch.from_numpy(np.concatenate(to_ego_clean)),
        "gt_boxes": gt,
    }
    return {"inputs": inputs, "data_samples": [item["meta"] for item in batch]}
