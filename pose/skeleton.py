"""The 17-joint Human3.6M skeleton (VideoPose3D order) and DDHPose's bone disentanglement.

Order: 0 pelvis, 1 RHip, 2 RKnee, 3 RAnkle, 4 LHip, 5 LKnee, 6 LAnkle, 7 spine, 8 thorax, 9 neck/nose, 10 head,
11 LShoulder, 12 LElbow, 13 LWrist, 14 RShoulder, 15 RElbow, 16 RWrist (the 32 mocap joints minus
[4, 5, 9, 10, 11, 16, 20, 21, 22, 23, 24, 28, 29, 30, 31], shoulders re-parented to the thorax).

Bones (DDHPose, Cai et al. AAAI'24 eq. 1-2): bone i joins ``PARENTS[i] -> i`` for i = 1..16; its length
l_i = ||J_i - J_parent|| and direction d_i = (J_i - J_parent) / l_i. Slot 0 (the root) has no bone and holds 0.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "DEPTH_LEVELS",
    "H36M_FLIP_LEFT",
    "H36M_FLIP_RIGHT",
    "H36M_JOINTS",
    "H36M_KEEP",
    "H36M_PARENTS",
    "MPI3DHP_FLIP_LEFT",
    "MPI3DHP_FLIP_RIGHT",
    "MPI3DHP_JOINTS",
    "MPI3DHP_PARENTS",
    "bones_from_pose",
    "flip_pose",
    "pose_from_bones",
]

H36M_JOINTS = (
    "pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "spine", "thorax",
    "neck", "head", "left_shoulder", "left_elbow", "left_wrist", "right_shoulder", "right_elbow", "right_wrist",
)  # fmt: skip
H36M_PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
H36M_FLIP_LEFT = (4, 5, 6, 11, 12, 13)
H36M_FLIP_RIGHT = (1, 2, 3, 14, 15, 16)
# the 17 kept joints among the 32 of the mocap files (VideoPose3D's removal list, complemented)
_REMOVED = (4, 5, 9, 10, 11, 16, 20, 21, 22, 23, 24, 28, 29, 30, 31)
H36M_KEEP = tuple(i for i in range(32) if i not in _REMOVED)
# the kinematic depth of each joint (DDHPose's hierarchical embedding levels)
DEPTH_LEVELS = ((0,), (1, 4, 7), (2, 5, 8), (3, 6, 9, 11, 14), (10, 12, 15), (13, 16))

# MPI-INF-3DHP's 17-joint test order (root = 14, pelvis). Parents follow DDHPose's ``-bi_3dhp`` bone list
# (``common/arguments.py``, pairs parent -> child): the head top hangs from the neck, the head and both shoulders
# from the neck, the neck from the spine, the spine and both hips from the pelvis. Flip pairs as in ``main_3dhp.py``.
MPI3DHP_JOINTS = (
    "head_top", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "pelvis", "spine", "head",
)  # fmt: skip
MPI3DHP_PARENTS = (1, 15, 1, 2, 3, 1, 5, 6, 14, 8, 9, 14, 11, 12, -1, 14, 1)
MPI3DHP_FLIP_LEFT = (5, 6, 7, 11, 12, 13)
MPI3DHP_FLIP_RIGHT = (2, 3, 4, 8, 9, 10)


def _order(parents) -> list[int]:
    """Joints in an order where every parent comes before its children."""
    order, placed = [], set()
    while len(order) < len(parents):
        for j, p in enumerate(parents):
            if j not in placed and (p < 0 or p in placed):
                order.append(j)
                placed.add(j)
    return order


def bones_from_pose(pose: torch.Tensor, parents=H36M_PARENTS, eps: float = 1e-8) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., J, 3) joints -> directions (..., J, 3) (unit vectors) and lengths (..., J, 1), bone p -> j in slot j;
    the root's slot (no bone) is zero."""
    child = [j for j, p in enumerate(parents) if p >= 0]
    parent = [parents[j] for j in child]
    vectors = pose[..., child, :] - pose[..., parent, :]
    lengths = vectors.norm(dim=-1, keepdim=True)
    directions = torch.zeros_like(pose)
    directions[..., child, :] = vectors / lengths.clamp(min=eps)
    out_lengths = torch.zeros_like(pose[..., :1])
    out_lengths[..., child, :] = lengths
    return directions, out_lengths


def pose_from_bones(
    directions: torch.Tensor, lengths: torch.Tensor, root: torch.Tensor | None = None, parents=H36M_PARENTS
) -> torch.Tensor:
    """Forward kinematics: accumulate ``lengths * directions`` along the tree from ``root`` (default 0)."""
    joints: list[torch.Tensor | None] = [None] * len(parents)
    offsets = directions * lengths
    for j in _order(parents):
        if parents[j] < 0:
            joints[j] = torch.zeros_like(offsets[..., 0, :]) if root is None else root
        else:
            joints[j] = joints[parents[j]] + offsets[..., j, :]
    return torch.stack(joints, dim=-2)


def flip_pose(pose: torch.Tensor | np.ndarray, left=H36M_FLIP_LEFT, right=H36M_FLIP_RIGHT):
    """Mirror x (negate it) and swap left / right joints, for 2D or 3D poses (..., J, D)."""
    out = pose.clone() if isinstance(pose, torch.Tensor) else pose.copy()
    lr, rl = [*left, *right], [*right, *left]
    out[..., lr, :] = pose[..., rl, :]
    out[..., 0] = -out[..., 0]
    return out
