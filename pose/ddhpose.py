"""DDHPose (Cai et al., AAAI'24, arXiv 2403.04444): 3D pose lifting by disentangled bone diffusion.

- The 3D pose is disentangled into bone directions d and bone lengths l (`skeleton.bones_from_pose`); both
  are diffused with the same t on the core's cosine schedule (T = 1000) and clamped to +-1.1 (the official code's
  clamp, also applied to the sampler's states before every network call).
- The HSTDenoiser (MixSTE-style, §3.3) maps the 2D keypoints and the noisy (d, l) of every joint and frame to the
  clean 3D pose (x0 prediction); d and l of the prediction are the x0 of the bone state. Tokens: Linear(2 + 3 + 1)
  + spatial and temporal position embeddings + the timestep embedding + the hierarchical depth embedding. Blocks:
  one plain spatial/temporal pair, then (depth - 1) pairs of HRST (hierarchy-aware spatial attention: the logits
  parent->child and child->parent averaged with the grandparent->parent logit) and HRTT (hierarchy-aware temporal
  attention: q k_h^T added to q k^T, k_h projected from the hierarchical feature = mean of a joint and its
  children, computed once after the first pair).
- Loss (the paper's disentanglement loss): MPJPE + lambda_l mean((l_bar - l_bar_hat)^2) over clip-averaged bone
  lengths + lambda_d mean(||d - d_hat||^2).
- Sampling: DDIM with eta = 1 over K trailing steps, H hypotheses in one batch, flip averaging at every step (the
  flipped 2D and state, un-flipped output); the x0 pose of every step is returned.
- Differences from the official code, on purpose: the root slot (no bone) is denoised like the others instead of
  keeping its initial noise; the root joint of the output is set to 0 (poses are root-relative).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from mmengine.model import BaseModel
from mmengine.registry import MODELS
from torch import nn

from diffusekit.core import GaussianDiffusion, NoiseSchedule, make_timesteps, timestep_embedding
from diffusekit.pose.skeleton import H36M_FLIP_LEFT, H36M_FLIP_RIGHT, H36M_PARENTS, bones_from_pose

__all__ = ["DDHPose", "HSTDenoiser", "SkeletonTree", "SKELETONS"]


class SkeletonTree:
    """A kinematic tree: ``parents``, L/R pairs, and what DDHPose derives from it (depth levels, root-to-leaf
    chains, children)."""

    def __init__(self, parents: Sequence[int], left: Sequence[int], right: Sequence[int]):
        self.parents = tuple(int(p) for p in parents)
        self.left, self.right = tuple(left), tuple(right)
        self.root = self.parents.index(-1)
        self.children = [[c for c, p in enumerate(self.parents) if p == j] for j in range(len(self.parents))]
        self.depth = [self._depth(j) for j in range(len(self.parents))]
        leaves = [j for j in range(len(self.parents)) if not self.children[j]]
        self.chains = [self._path(leaf) for leaf in leaves]

    def __len__(self) -> int:
        return len(self.parents)

    def _depth(self, j: int) -> int:
        return 0 if self.parents[j] < 0 else 1 + self._depth(self.parents[j])

    def _path(self, j: int) -> list[int]:
        return [j] if self.parents[j] < 0 else [*self._path(self.parents[j]), j]

    def flip_index(self) -> list[int]:
        """The joint permutation that swaps left and right."""
        index = list(range(len(self)))
        for a, b in zip(self.left, self.right):
            index[a], index[b] = b, a
        return index


def _mpi3dhp_tree() -> SkeletonTree:
    from diffusekit.pose import skeleton

    return SkeletonTree(skeleton.MPI3DHP_PARENTS, skeleton.MPI3DHP_FLIP_LEFT, skeleton.MPI3DHP_FLIP_RIGHT)


SKELETONS = {"h36m": lambda: SkeletonTree(H36M_PARENTS, H36M_FLIP_LEFT, H36M_FLIP_RIGHT), "3dhp": _mpi3dhp_tree}


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016): drop a residual branch per sample while training."""

    def __init__(self, p: float):
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.rand((x.shape[0],) + (1,) * (x.ndim - 1), device=x.device) >= self.p
        return x * keep / (1 - self.p)


class SpatialAttention(nn.Module):
    """Attention over the joints of a frame; with ``tree`` it is HRST: for every bone p -> c whose parent p has a
    parent g, the logits (p, c) and (c, p) become their average with the logit (g, p)."""

    def __init__(self, dim: int, heads: int, tree: SkeletonTree | None = None):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.hierarchical = tree is not None
        if tree is not None:
            bones = [(tree.parents[c], c) for c in range(len(tree)) if tree.parents[c] >= 0]
            triples = [(tree.parents[p], p, c) for p, c in bones if tree.parents[p] >= 0]
            self.register_buffer("hierarchy", torch.tensor(triples, dtype=torch.long).T, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.heads)
        if not self.hierarchical:
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            logits = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
            g, p, c = self.hierarchy  # each bone once, from the unmodified logits (the official code updates the
            # logits in place chain by chain, so bones shared by several chains are averaged repeatedly)
            parent = logits[..., g, p]
            mixed = logits.clone()
            mixed[..., p, c] = (logits[..., p, c] + parent) / 2
            mixed[..., c, p] = (logits[..., c, p] + parent) / 2
            out = mixed.softmax(-1) @ v
        return self.out(rearrange(out, "b h n d -> b n (h d)"))


class TemporalAttention(nn.Module):
    """Attention over the frames of a joint; with ``hierarchical`` it is HRTT: logits q k^T + q k_h^T, k_h a key
    projection of the hierarchical feature (computed as one fused attention with [q, q] . [k, k_h])."""

    def __init__(self, dim: int, heads: int, hierarchical: bool = False):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.key_h = nn.Linear(dim, dim) if hierarchical else None
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, feature_h: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.heads)
        scale = q.shape[-1] ** -0.5
        if self.key_h is not None:
            if feature_h is None:
                raise ValueError("an HRTT block needs the hierarchical feature")
            k_h = rearrange(self.key_h(feature_h), "b n (h d) -> b h n d", h=self.heads)
            q, k = torch.cat([q, q], dim=-1), torch.cat([k, k_h], dim=-1)
        out = F.scaled_dot_product_attention(q, k, v, scale=scale)
        return self.out(rearrange(out, "b h n d -> b n (h d)"))


class Block(nn.Module):
    """Pre-LN transformer block around a spatial or temporal attention (MLP ratio 2, drop path); extra inputs
    (HRTT's hierarchical feature) go through the same first LayerNorm."""

    def __init__(self, dim: int, attention: nn.Module, mlp_ratio: float, drop_path: float):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attention = attention
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.drop = DropPath(drop_path)

    def forward(self, x: torch.Tensor, *extra: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attention(self.norm1(x), *(self.norm1(e) for e in extra)))
        return x + self.drop(self.mlp(self.norm2(x)))


class HSTDenoiser(nn.Module):
    """(2D (B, F, J, 2), noisy directions (B, F, J, 3), noisy lengths (B, F, J, 1), t (B,)) -> 3D pose (B, F, J, 3).

    Layout of the official ``MixSTE2``: joint tokens get the depth, spatial-position and timestep embeddings; the
    temporal position embedding is added before the first temporal block; every spatial (temporal) block is
    followed by one shared LayerNorm. ``hrst`` / ``hrtt`` / ``depth_embedding`` switch DDHPose's hierarchy-aware
    parts off for ablations (all off = MixSTE with a timestep embedding). The official HRST blocks also carry an
    unused key projection (0.26 M parameters each at width 512): the paper config has 36.7 M parameters here,
    38.5 M there.
    """

    def __init__(
        self,
        tree: SkeletonTree,
        frames: int,
        dim: int = 512,
        depth: int = 8,
        heads: int = 8,
        mlp_ratio: float = 2.0,
        drop_path: float = 0.1,
        hrst: bool = True,
        hrtt: bool = True,
        depth_embedding: bool = True,
    ):
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        joints = len(tree)
        self.frames, self.dim = frames, dim
        self.embed = nn.Linear(2 + 3 + 1, dim)
        self.spatial_pos = nn.Parameter(torch.zeros(1, joints, dim))
        self.temporal_pos = nn.Parameter(torch.zeros(1, frames, dim))
        nn.init.trunc_normal_(self.spatial_pos, std=0.02)
        nn.init.trunc_normal_(self.temporal_pos, std=0.02)
        self.time = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))  # on sinusoids
        self.depth_table = nn.Embedding(max(tree.depth) + 1, dim) if depth_embedding else None
        self.register_buffer("joint_depth", torch.tensor(tree.depth), persistent=False)
        # the hierarchical feature: mean of a joint and its children (a leaf keeps its own)
        groups = torch.zeros(joints, joints)
        for j in range(joints):
            members = [j, *tree.children[j]]
            groups[j, members] = 1.0 / len(members)
        self.register_buffer("child_mean", groups, persistent=False)
        rates = torch.linspace(0, drop_path, depth).tolist()
        self.spatial = nn.ModuleList(
            Block(dim, SpatialAttention(dim, heads, tree if hrst and i > 0 else None), mlp_ratio, rates[i])
            for i in range(depth)
        )
        self.temporal = nn.ModuleList(
            Block(dim, TemporalAttention(dim, heads, hrtt and i > 0), mlp_ratio, rates[i]) for i in range(depth)
        )
        self.spatial_norm, self.temporal_norm = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.hrtt = hrtt
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 3))

    def forward(self, keypoints_2d, directions, lengths, t) -> torch.Tensor:
        b, f, j, _ = keypoints_2d.shape
        if f != self.frames:
            raise ValueError(f"clip of {f} frames for a denoiser built for {self.frames}")
        x = self.embed(torch.cat([keypoints_2d, directions, lengths], dim=-1))
        x = x + self.spatial_pos + self.time(timestep_embedding(t, self.dim))[:, None, None]
        if self.depth_table is not None:
            x = x + self.depth_table(self.joint_depth)
        feature_h = None
        for i, (spatial, temporal) in enumerate(zip(self.spatial, self.temporal)):
            x = self.spatial_norm(spatial(rearrange(x, "b f j d -> (b f) j d")))
            x = rearrange(x, "(b f) j d -> (b j) f d", b=b)
            if i == 0:
                x = self.temporal_norm(temporal(x + self.temporal_pos))
            else:
                x = self.temporal_norm(temporal(x, *([feature_h] if self.hrtt else [])))
            x = rearrange(x, "(b j) f d -> b f j d", b=b)
            if i == 0 and self.hrtt:
                feature_h = rearrange(torch.einsum("jk,bfkd->bfjd", self.child_mean, x), "b f j d -> (b j) f d")
        return self.head(x)


def disentanglement_loss(
    pred: torch.Tensor, target: torch.Tensor, parents, length_weight: float, direction_weight: float
):
    """DDHPose's disentanglement loss, MPJPE + lambda_l mean((l_bar - l_bar_hat)^2) + lambda_d mean(||d - d_hat||^2);
    poses (B, F, J, 3), l_bar the bone lengths averaged over the clip's frames."""
    mpjpe = (pred - target).norm(dim=-1).mean()
    d_pred, l_pred = bones_from_pose(pred, parents)
    d_true, l_true = bones_from_pose(target, parents)
    bones = [j for j, p in enumerate(parents) if p >= 0]  # every slot but the root's
    length = ((l_pred.mean(1) - l_true.mean(1)) ** 2)[:, bones].mean()
    direction = ((d_pred - d_true) ** 2).sum(-1)[:, :, bones].mean()
    total = mpjpe + length_weight * length + direction_weight * direction
    return {"loss": total, "mpjpe": mpjpe.detach(), "length": length.detach(), "direction": direction.detach()}


@MODELS.register_module()
class DDHPose(BaseModel):
    """DDHPose as an mmengine model (see the module docstring).

    Args:
        skeleton: ``h36m`` or ``3dhp`` (the kinematic tree of the joints).
        frames: clip length F (243 in the paper).
        denoiser: `HSTDenoiser` arguments (dim, depth, heads, mlp_ratio, drop_path, hrst, hrtt, depth_embedding).
        num_steps, schedule: the diffusion process (T = 1000, cosine).
        length_weight, direction_weight: lambda_l, lambda_d of the loss.
        deterministic: train the same transformer as a plain regressor (no noisy bones, t = 0): the baseline.
        timestep_power: training timesteps t = floor(T u^(1/p)), u ~ U(0, 1): 1 is the paper's uniform t; p > 1
            puts more training on high noise (density proportional to t^(p-1)). An ablation, not in the paper.
        val_sampling: keyword arguments of `sample` for ``mode="predict"`` without them (validation during
            training), e.g. ``dict(hypotheses=1, steps=1)``.
    """

    def __init__(
        self,
        skeleton: str = "h36m",
        frames: int = 243,
        denoiser: dict | None = None,
        num_steps: int = 1000,
        schedule: str = "cosine",
        length_weight: float = 1.0,
        direction_weight: float = 1.0,
        deterministic: bool = False,
        timestep_power: float = 1.0,
        val_sampling: dict | None = None,
        init_cfg: dict | None = None,
    ):
        super().__init__(init_cfg=init_cfg)
        self.val_sampling = dict(val_sampling or {})
        if skeleton not in SKELETONS:
            raise ValueError(f"unknown skeleton {skeleton!r}; expected one of {sorted(SKELETONS)}")
        self.tree = SKELETONS[skeleton]()
        self.frames = int(frames)
        self.denoiser = HSTDenoiser(self.tree, self.frames, **(denoiser or {}))
        self.length_weight, self.direction_weight = float(length_weight), float(direction_weight)
        self.deterministic = bool(deterministic)
        if timestep_power <= 0:
            raise ValueError(f"timestep_power must be > 0, got {timestep_power}")
        self.timestep_power = float(timestep_power)
        self.num_steps = int(num_steps)
        self.diffusion = GaussianDiffusion(NoiseSchedule.named(schedule, num_steps=num_steps), prediction="x0")

    # ------------------------------------------------------------------ bone state <-> pose
    def to_state(self, pose: torch.Tensor) -> torch.Tensor:
        """(..., J, 3) pose -> (..., J, 4) [direction, length]."""
        directions, lengths = bones_from_pose(pose, self.tree.parents)
        return torch.cat([directions, lengths], dim=-1)

    def mirror(self, x: torch.Tensor) -> torch.Tensor:
        """Mirror per-joint values (..., J, C) whose first channel is an x coordinate (2D, 3D poses, bone states):
        swap the left and right joints and negate x (a bone's slot is its child joint, so states mirror alike)."""
        out = x[..., self.tree.flip_index(), :].clone()
        out[..., 0] = -out[..., 0]
        return out

    def _root_relative(self, pose: torch.Tensor) -> torch.Tensor:
        pose = pose.clone()
        pose[..., self.tree.root, :] = 0
        return pose

    def network(self, keypoints_2d: torch.Tensor, state: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The denoiser on a (clamped) bone state; the deterministic baseline sees zeros and t = 0."""
        if self.deterministic:
            state, t = torch.zeros_like(state), torch.zeros_like(t)
        state = state.clamp(-1.1, 1.1)
        return self.denoiser(keypoints_2d, state[..., :3], state[..., 3:], t)

    # ------------------------------------------------------------------ training
    def training_timesteps(self, batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """t per training clip: uniform on {0, ..., T-1} (the paper), or floor(T u^(1/p)) with ``timestep_power``."""
        if self.timestep_power == 1.0:
            return torch.randint(0, self.num_steps, (batch,), device=device)
        u = torch.rand(batch, device=device) ** (1.0 / self.timestep_power)
        return (u * self.num_steps).long().clamp(max=self.num_steps - 1)

    def loss(self, keypoints_2d: torch.Tensor, pose_3d: torch.Tensor) -> dict[str, torch.Tensor]:
        target = self._root_relative(pose_3d)
        b = target.shape[0]
        t = self.training_timesteps(b, target.device)
        x_t = self.diffusion.q_sample(self.to_state(target), t)
        pred = self.network(keypoints_2d, x_t, t)
        terms = disentanglement_loss(pred, target, self.tree.parents, self.length_weight, self.direction_weight)
        return {"loss": terms["loss"], "mpjpe": terms["mpjpe"]}

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(
        self,
        keypoints_2d: torch.Tensor,
        hypotheses: int = 1,
        steps: int = 1,
        flip: bool = True,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """(K, H, B, F, J, 3) root-relative poses: the x0 prediction of each of the K DDIM steps (eta = 1) for H
        hypotheses (the last step's is the final output); flip averaging at every step."""
        b, f, j, _ = keypoints_2d.shape
        if self.deterministic:
            hypotheses, steps = 1, 1
        cond = keypoints_2d.repeat(hypotheses, 1, 1, 1)  # hypothesis-major: (H B, F, J, 2)
        poses: list[torch.Tensor] = []

        def denoise(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            pose = self.network(cond, x_t, t)
            if flip:
                pose = (pose + self.mirror(self.network(self.mirror(cond), self.mirror(x_t), t))) / 2
            pose = self._root_relative(pose)
            poses.append(pose)
            return self.to_state(pose)

        x_T = torch.randn((cond.shape[0], f, j, 4), generator=generator, device="cpu").to(keypoints_2d.device)
        ts = make_timesteps(self.num_steps, steps, spacing="trailing")
        self.diffusion.sample(denoise, x_T, timesteps=ts, sampler="ddim", eta=1.0, generator=generator)
        return torch.stack(poses).reshape(len(poses), hypotheses, b, f, j, 3)

    def forward(self, keypoints_2d: torch.Tensor, pose_3d: torch.Tensor | None = None, mode: str = "tensor", **kwargs):
        """``loss`` -> {"loss", "mpjpe"}; ``predict`` -> `sample` (kwargs hypotheses, steps, flip, generator; else
        ``val_sampling``); ``tensor`` -> the one-step, one-hypothesis pose (B, F, J, 3). Other keywords (a batch's
        ``valid`` mask) are ignored."""
        if mode == "loss":
            if pose_3d is None:
                raise ValueError("mode='loss' needs the 3D poses")
            return self.loss(keypoints_2d, pose_3d)
        if mode == "predict":
            allowed = ("hypotheses", "steps", "flip", "generator")
            return self.sample(
                keypoints_2d, **{**self.val_sampling, **{k: v for k, v in kwargs.items() if k in allowed}}
            )
        if mode == "tensor":
            return self.sample(keypoints_2d, 1, 1, flip=False)[-1, 0]
        raise ValueError(f"unknown mode {mode!r}; expected 'loss', 'predict' or 'tensor'")
