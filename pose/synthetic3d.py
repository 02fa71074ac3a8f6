"""Synthetic 3D pose datasets written exactly in the published layouts of Human3.6M (VideoPose3D) and MPI-INF-3DHP
(D3DP), from the kinematic motions of `diffusekit.pose.motion`.

Human3.6M (VideoPose3D ``DATASETS.md``, ``data/prepare_data_h36m.py``, ``prepare_data_2d_h36m_gt.py``):

- ``data_3d_h36m.npz``: ``positions_3d`` = {subject: {action: float32 (N, 32, 3)}}, world metres (z up), 50 fps.
  The 17 simulated joints sit at `H36M_KEEP`; the 15 joints VideoPose3D removes are filled as in the mocap files,
  mostly duplicates (the spine base of the pelvis, the shoulder anchors of the thorax, two of each wrist) plus toe
  bases, toe tips, thumbs and hand tips that move rigidly with the feet and hands. As the real file, S11 has no
  "Directions" (VideoPose3D discards it as corrupted).
- ``data_2d_h36m_<source>.npz``: ``positions_2d`` = {subject: {action: [4 x float32 (N', 17, 2)]}} in pixels, one
  array per camera in `CAMERA_IDS` order, and ``metadata`` = {"layout_name": "h36m", "num_joints": 17,
  "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]}. Source ``gt``: the distorted projection of
  the stored 17 joints through the subject's real calibration (`world_to_camera` then `project`), N' = N. Source
  ``det``: a 2D detector's output (CPN-like): per-joint Gaussian error of 2-6 px (largest at wrists and ankles),
  temporally correlated (AR(1)) plus a constant per-joint bias, occasional 15-50 px outliers lasting 1-6 frames and
  left/right confusions lasting 2-10 frames. In about half of the sequences each camera's 2D runs 1-5 frames past
  the mocap (the detector saw more video, as in the real CPN file; loaders truncate it).
- All four cameras of every subject see the subjects whole: they move around `H36M_ARENA`, the floor point the real
  calibrations centre on (the world origin is off-centre in camera 60457274, the nearest).

MPI-INF-3DHP, D3DP's ``*_ori`` files (read by D3DP / DDHPose ``main_3dhp.py``; the nesting is that of P-STMO's
preprocessing, ``data_to_npz_3dhp.py`` / ``data_to_npz_3dhp_test.py``, with ``annot3`` instead of ``univ_annot3``):

- ``data_train_3dhp_ori.npz``: ``data`` = {"S1 Seq1": [{camera: {"data_3d": (N, 17, 3), "data_2d": (N, 17, 2)}},
  fps]} for S1-S8 x Seq1/Seq2; camera keys are the strings "0", "1", "2", "4", "5", "6", "7", "8" and fps the
  sequence's frame rate (25 or 50, as the real sequences). 3D in millimetres in the camera's frame (x right, y down,
  z forward), 2D in pixels of the 2048 x 2048 images.
- ``data_test_3dhp_ori.npz``: ``data`` = {"TS1".."TS6": {"data_3d", "data_2d", "valid"}}; TS5 / TS6 are 1920 x 1080
  (outdoor), the others 2048 x 2048; ``valid`` (N,) is 1.0 / 0.0 per frame (float64).
- Joint order (`H36M_TO_3DHP`): head_top, neck, R shoulder/elbow/wrist, L shoulder/elbow/wrist, R hip/knee/ankle,
  L hip/knee/ankle, pelvis (the root, index 14), spine, head. The test cameras are D3DP's pinhole intrinsics
  (`mpi3dhp_test_camera`); the training rig is eight synthetic cameras 3.5-4.8 m from the subject with
  f ~1500 px (`mpi3dhp_train_cameras`). The 2D is the exact pinhole projection of the stored 3D.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.signal import lfilter
from scipy.spatial.transform import Rotation

from diffusekit.pose.camera import CAMERA_IDS, H36M_SUBJECTS, Camera, h36m_camera, project, world_to_camera
from diffusekit.pose.motion import EXTREMITIES, MOTIONS, Body, random_body, simulate_with_extremities
from diffusekit.pose.skeleton import H36M_FLIP_LEFT, H36M_FLIP_RIGHT, H36M_KEEP

__all__ = [
    "write_synthetic",
    "H36M_ACTIONS",
    "H36M_ARENA",
    "H36M_METADATA",
    "H36M_SIZES",
    "H36M_TO_3DHP",
    "MPI3DHP_TRAIN_CAMERAS",
    "MPI3DHP_TRAIN_FPS",
    "mpi3dhp_test_camera",
    "mpi3dhp_train_cameras",
    "write_3dhp",
    "write_h36m",
]

# Human3.6M action (without its take number) -> simulated motion
H36M_ACTIONS = {
    "Directions": "reaching", "Discussion": "reaching", "Photo": "reaching", "Purchases": "reaching",
    "Waiting": "reaching", "Eating": "sitting", "Phoning": "sitting", "Sitting": "sitting", "SittingDown": "sitting",
    "Smoking": "sitting", "Greeting": "waving", "Posing": "waving", "Walking": "walking", "WalkDog": "walking",
    "WalkTogether": "walking",
}  # fmt: skip
# size -> (actions, fewest frames, most frames) per sequence
H36M_SIZES = {
    "small": (("Directions", "Greeting", "Sitting 1", "Walking"), 100, 140),
    "medium": (("Directions", "Eating", "Greeting", "Sitting 1", "Walking", "WalkTogether"), 600, 1000),
}
H36M_METADATA = {
    "layout_name": "h36m",
    "num_joints": 17,
    "keypoints_symmetry": [list(H36M_FLIP_LEFT), list(H36M_FLIP_RIGHT)],
}
H36M_ARENA = np.array([0.25, 0.6])  # world xy (m) where every subject's four cameras see a 2 m tall person best
_FPS = 50
_MARGIN = 8.0  # px every 2D ground-truth keypoint keeps from the image border
# each of the 32 mocap joints <- one of the 17 simulated joints (0-16) or of the 8 extremities (17-24)
_X = {name: 17 + i for i, name in enumerate(EXTREMITIES)}
_MOCAP_SOURCE = (
    0, 1, 2, 3, _X["right_toe_base"], _X["right_toe_tip"], 4, 5, 6, _X["left_toe_base"], _X["left_toe_tip"],
    0, 7, 8, 9, 10, 8, 11, 12, 13, 13, _X["left_thumb"], 13, _X["left_hand_tip"],
    8, 14, 15, 16, 16, _X["right_thumb"], 16, _X["right_hand_tip"],
)  # fmt: skip
assert [_MOCAP_SOURCE[k] for k in H36M_KEEP] == list(range(17))
# detector error scale per joint (x the sequence's base, 1.8-3.0 px): the derived pelvis/spine and the wrists and
# ankles are the least precise; left/right pairs it confuses: wrists, ankles, forearms, shanks
_DETECTOR_SIGMA = np.array([1.3, 1.3, 1.3, 1.9, 1.3, 1.3, 1.9, 1.6, 1.2, 1.0, 1.2, 1.0, 1.4, 2.0, 1.0, 1.4, 2.0])
_SWAPS = (((13,), (16,)), ((3,), (6,)), ((12, 13), (15, 16)), ((2, 3), (5, 6)))

# MPI-INF-3DHP
H36M_TO_3DHP = (10, 8, 14, 15, 16, 11, 12, 13, 1, 2, 3, 4, 5, 6, 0, 7, 9)
MPI3DHP_TRAIN_CAMERAS = ("0", "1", "2", "4", "5", "6", "7", "8")
MPI3DHP_TRAIN_FPS = {
    "S1 Seq1": 25, "S1 Seq2": 50, "S2 Seq1": 25, "S2 Seq2": 25, "S3 Seq1": 50, "S3 Seq2": 50, "S4 Seq1": 25,
    "S4 Seq2": 25, "S5 Seq1": 50, "S5 Seq2": 50, "S6 Seq1": 25, "S6 Seq2": 25, "S7 Seq1": 25, "S7 Seq2": 25,
    "S8 Seq1": 25, "S8 Seq2": 25,
}  # fmt: skip
_TEST_SEQUENCES = ("TS1", "TS2", "TS3", "TS4", "TS5", "TS6")
# D3DP main_3dhp.py: focal length and principal-point offset (mm), sensor size (mm), image size (px)
_TEST_OPTICS = {
    "studio": ((7.32506, -0.0322884, 0.0929296), (10.0, 10.0), (2048, 2048)),
    "outdoor": ((8.770747185, -0.104908645, 0.104899704), (10.0, 5.625), (1920, 1080)),
}


def write_h36m(
    out: str | Path, size: str = "small", seed: int = 0, sources: tuple[str, ...] | list[str] = ("gt", "det")
) -> Path:
    """Write ``data_3d_h36m.npz`` and ``data_2d_h36m_<source>.npz`` (sources "gt", "det") into ``out``: the seven
    Human3.6M subjects (each its own random body) x the `H36M_SIZES` actions; deterministic given ``seed``."""
    if size not in H36M_SIZES:
        raise ValueError(f"unknown size {size!r}; expected one of {', '.join(H36M_SIZES)}")
    unknown = set(sources) - {"gt", "det"}
    if unknown:
        raise ValueError(f"unknown 2D sources {sorted(unknown)}; expected 'gt' and/or 'det'")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    actions, fewest, most = H36M_SIZES[size]
    positions_3d: dict = {}
    positions_2d: dict = {source: {} for source in sources}
    for s, subject in enumerate(H36M_SUBJECTS):
        body = random_body(np.random.default_rng([seed, s]))
        cameras = [h36m_camera(subject, c) for c in range(len(CAMERA_IDS))]
        positions_3d[subject] = {}
        for source in sources:
            positions_2d[source][subject] = {}
        for a, action in enumerate(actions):
            if subject == "S11" and action == "Directions":
                continue  # not in the real file (a corrupted video)
            rng = np.random.default_rng([seed, s, 1 + a])
            frames = int(rng.integers(fewest, most + 1))
            extra = rng.integers(1, 6, size=len(cameras)) if rng.random() < 0.5 else np.zeros(len(cameras), int)
            motion = H36M_ACTIONS[action.split(" ")[0]]
            mocap = _h36m_mocap(motion, frames + int(extra.max()), rng, body, cameras)
            positions_3d[subject][action] = mocap[:frames]
            joints = mocap[:, list(H36M_KEEP)].astype(np.float64)  # project what is stored
            if "gt" in sources:
                positions_2d["gt"][subject][action] = [
                    project(world_to_camera(joints[:frames], camera), camera).astype(np.float32) for camera in cameras
                ]
            if "det" in sources:
                noise = np.random.default_rng([seed, s, 1 + a, 2])
                positions_2d["det"][subject][action] = [
                    _detector(project(world_to_camera(joints[: frames + e], camera), camera), noise)
                    for camera, e in zip(cameras, extra)
                ]
    np.savez_compressed(out / "data_3d_h36m.npz", positions_3d=positions_3d)
    for source in sources:
        np.savez_compressed(
            out / f"data_2d_h36m_{source}.npz", positions_2d=positions_2d[source], metadata=dict(H36M_METADATA)
        )
    return out


def _inside(points: np.ndarray, width: int, height: int, margin: float) -> bool:
    return bool(np.all((points >= margin) & (points <= np.array([width, height]) - margin)))


def _h36m_mocap(motion: str, frames: int, rng: np.random.Generator, body: Body, cameras: list[Camera]) -> np.ndarray:
    """(frames, 32, 3) float32 world positions of one sequence that all ``cameras`` see whole (resampled with a
    smaller walking area until they do)."""
    extent = 1.3
    for _ in range(30):
        joints, extremities = simulate_with_extremities(motion, frames, rng, body, fps=_FPS, extent=extent)
        shift = np.array([*(H36M_ARENA + rng.uniform(-0.1, 0.1, size=2)), 0.0])
        mocap = (np.concatenate([joints, extremities], axis=1)[:, list(_MOCAP_SOURCE)] + shift).astype(np.float32)
        kept = mocap[:, list(H36M_KEEP)].astype(np.float64)
        if all(_inside(project(world_to_camera(kept, c), c), c.width, c.height, _MARGIN) for c in cameras):
            return mocap
        extent *= 0.85
    raise RuntimeError(f"could not keep a {motion} sequence inside the Human3.6M cameras")


def _detector(keypoints: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 2D detector's (N, 17, 2) float32 pixels for ground-truth ``keypoints``: correlated jitter, bias, outliers,
    left/right confusions."""
    n = len(keypoints)
    sigma = rng.uniform(1.8, 3.0) * _DETECTOR_SIGMA[:, None]
    rho, burn_in = rng.uniform(0.75, 0.9), 50
    correlated = lfilter([np.sqrt(1 - rho**2)], [1, -rho], rng.standard_normal((n + burn_in, 17, 2)), axis=0)
    error = sigma * (0.9 * correlated[burn_in:] + 0.4 * rng.standard_normal((n, 17, 2)))
    det = keypoints + error + rng.normal(0, 1.0, size=(17, 2))
    for frame, joint in np.argwhere(rng.random((n, 17)) < 0.002):
        angle, length = rng.uniform(0, 2 * np.pi), int(rng.integers(1, 7))
        det[frame : frame + length, joint] += rng.uniform(15, 50) * np.array([np.cos(angle), np.sin(angle)])
    for frame in np.flatnonzero(rng.random(n) < 0.004):
        left, right = _SWAPS[rng.integers(len(_SWAPS))]
        stop = frame + int(rng.integers(2, 11))
        det[frame:stop, [*left, *right]] = det[frame:stop, [*right, *left]]
    return det.astype(np.float32)


# --- MPI-INF-3DHP --------------------------------------------------------------------------------------------------


def mpi3dhp_test_camera(sequence: str) -> Camera:
    """The pinhole camera of test sequence TS1-TS6 in D3DP's intrinsics (``main_3dhp.py``, mm -> px): studio
    f = 1500.2 px on 2048 x 2048 (TS1-4), outdoor f = 1684.0 px on 1920 x 1080 (TS5-6); no distortion."""
    if sequence not in _TEST_SEQUENCES:
        raise KeyError(f"unknown MPI-INF-3DHP test sequence {sequence!r}; expected TS1-TS6")
    (focal, cx, cy), (sensor_w, sensor_h), (width, height) = _TEST_OPTICS[
        "outdoor" if sequence in ("TS5", "TS6") else "studio"
    ]
    mx, my = width / sensor_w, height / sensor_h
    intrinsics = np.array([focal * mx, focal * my, cx * mx + width / 2, cy * my + height / 2, 0, 0, 0, 0, 0])
    return Camera(sequence, width, height, intrinsics)


def _look_at(camera: Camera, position: np.ndarray, target: np.ndarray) -> Camera:
    """``camera`` placed at ``position`` (m) looking at ``target``: camera axes x right, y down, z forward."""
    forward = (target - position) / np.linalg.norm(target - position)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    x, y, z, w = Rotation.from_matrix(np.stack([right, down, forward], axis=1)).as_quat()  # camera -> world
    return Camera(camera.id, camera.width, camera.height, camera.intrinsics, np.array([w, x, y, z]), position)


def mpi3dhp_train_cameras(seed: int = 0) -> dict[str, Camera]:
    """The synthetic training rig of `write_3dhp` (``seed``): eight cameras around the subject, 3.5-4.8 m away at
    0.5-2.5 m height, f ~1500 px on 2048 x 2048, extrinsics world (z up) -> camera as in `diffusekit.pose.camera`."""
    rng = np.random.default_rng([seed, 1000])
    rig = {}
    for i, key in enumerate(MPI3DHP_TRAIN_CAMERAS):
        azimuth = 2 * np.pi * i / len(MPI3DHP_TRAIN_CAMERAS) + rng.uniform(-0.3, 0.3)
        distance, height = rng.uniform(3.5, 4.8), rng.uniform(0.5, 2.5)
        focal = rng.uniform(1490, 1510)
        intrinsics = np.array(
            [focal, focal + rng.uniform(-2, 2), 1024 + rng.uniform(-12, 12), 1040 + rng.uniform(-15, 15), 0, 0, 0, 0, 0]
        )
        position = np.array([distance * np.cos(azimuth), distance * np.sin(azimuth), height])
        rig[key] = _look_at(Camera(key, 2048, 2048, intrinsics), position, np.array([0.0, 0.0, rng.uniform(0.8, 1.0)]))
    return rig


def _camera_space(joints: np.ndarray, camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """H36M-order world joints (m) -> 3DHP-order float32 camera-space millimetres and their float32 pixels."""
    points = (world_to_camera(joints[:, list(H36M_TO_3DHP)], camera) * 1000).astype(np.float32)
    return points, project(points.astype(np.float64), camera).astype(np.float32)


def write_3dhp(out: str | Path, seed: int = 0, frames: int = 300) -> Path:
    """Write ``data_train_3dhp_ori.npz`` (S1-S8 x Seq1/Seq2 x 8 cameras, ``frames`` each) and
    ``data_test_3dhp_ori.npz`` (TS1-TS6; TS5 / TS6 shorter, as the real ones) into ``out``; deterministic given
    ``seed``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rig = mpi3dhp_train_cameras(seed)
    train = {}
    for s in range(8):
        body = random_body(np.random.default_rng([seed, 100 + s]))
        for q in (1, 2):
            name = f"S{s + 1} Seq{q}"
            rng = np.random.default_rng([seed, 100 + s, q])
            motion = MOTIONS[(2 * s + q - 1) % len(MOTIONS)]
            fps = MPI3DHP_TRAIN_FPS[name]
            extent = 0.5
            for _ in range(30):
                joints = simulate_with_extremities(motion, frames, rng, body, fps=fps, extent=extent)[0]
                views = {key: _camera_space(joints, camera) for key, camera in rig.items()}
                if all(_inside(uv, 2048, 2048, _MARGIN) for _, uv in views.values()):
                    break
                extent *= 0.8
            else:
                raise RuntimeError(f"could not keep {name} inside the training cameras")
            train[name] = [{key: {"data_3d": p3, "data_2d": p2} for key, (p3, p2) in views.items()}, fps]
    test = {}
    for i, name in enumerate(_TEST_SEQUENCES):
        rng = np.random.default_rng([seed, 200 + i])
        body = random_body(rng)
        n = {"TS5": int(0.6 * frames), "TS6": int(0.8 * frames)}.get(name, frames)
        joints = simulate_with_extremities(MOTIONS[i % len(MOTIONS)], n, rng, body, fps=_FPS, extent=0.5)[0]
        camera = mpi3dhp_test_camera(name)
        distance = rng.uniform(4.2, 5.0) if camera.height < camera.width else rng.uniform(3.5, 4.5)
        left = joints[0, 4, :2] - joints[0, 1, :2]  # the camera stands in front of the subject's first pose
        azimuth, height = np.arctan2(-left[0], left[1]) + rng.uniform(-0.8, 0.8), rng.uniform(0.9, 1.6)
        centre = joints[:, 0, :2].mean(0)
        for _ in range(30):
            position = np.array([*(centre + distance * np.array([np.cos(azimuth), np.sin(azimuth)])), height])
            placed = _look_at(camera, position, np.array([*centre, 0.9]))
            points, uv = _camera_space(joints, placed)
            if _inside(uv, camera.width, camera.height, _MARGIN):
                break
            distance += 0.5
        else:
            raise RuntimeError(f"could not keep {name} inside its camera")
        valid = np.ones(n)
        valid[: rng.integers(0, 6)] = 0  # unannotated frames, as the real test sets have
        for _ in range(int(rng.integers(1, 3))):
            start = int(rng.integers(0, n))
            valid[start : start + int(rng.integers(5, 16))] = 0
        test[name] = {"data_3d": points, "data_2d": uv, "valid": valid}
    np.savez_compressed(out / "data_train_3dhp_ori.npz", data=train)
    np.savez_compressed(out / "data_test_3dhp_ori.npz", data=test)
    return out


def write_synthetic(out: str | Path, dataset: str = "h36m", size: str = "small", seed: int = 0) -> Path:
    """Synthetic Human3.6M (``size``) or MPI-INF-3DHP data in the published (pickled) layout, plus the pickle-free
    ``*.flat.npz`` copies that the loaders read without ``allow_pickle``."""
    from diffusekit.pose.npz_tree import convert_npz

    root = write_3dhp(out, seed=seed) if dataset == "3dhp" else write_h36m(out, size, seed)
    for path in sorted(Path(root).glob("*.npz")):
        if not path.name.endswith(".flat.npz"):
            convert_npz(path)
    return Path(root)
