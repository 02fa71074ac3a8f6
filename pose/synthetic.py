"""A synthetic PoseTrack18-layout dataset: short videos of articulated figures, written as the real files are.

Each video shows one to three walking figures (limbs drawn as capsules, a torso polygon, an elliptic head) on a
textured background. Their joints swing with the gait; they drift, change depth order (so they occlude each other)
and fast frames get motion blur. A small unannotated bystander gets an ignore region, as PoseTrack marks people
it does not label. Written like PoseTrack18: ``images/<split>/<video>/000000.jpg`` and one
``annotations/<split>/<video>.json`` per video (17 keypoints with the ears unannotated, ``bbox``, ``bbox_head``,
track ids, ``ignore_regions_x/_y``, frame ids TSSSSSSFFFF); train videos are labelled on every frame, val videos
on every 4th frame as in the real val set.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from diffusekit.core.errors import DataError
from diffusekit.pose.posetrack import KEYPOINTS, PoseFrame, PosePerson, PoseVideo, write_video

__all__ = ["SIZES", "figure_keypoints", "write_posetrack"]

# (train videos, val videos, frames per video, image width, image height)
SIZES = {"small": (8, 3, 16, 256, 192), "medium": (40, 8, 24, 256, 192)}
SKIN_LOW, SKIN_HIGH = (90, 110, 150), (150, 170, 230)  # BGR; shirt and trousers are random colours
_K = {name: i for i, name in enumerate(KEYPOINTS)}
_LIMBS = (
    ("left_shoulder", "left_elbow", 0), ("left_elbow", "left_wrist", 2), ("right_shoulder", "right_elbow", 0),
    ("right_elbow", "right_wrist", 2), ("left_hip", "left_knee", 1), ("left_knee", "left_ankle", 1),
    ("right_hip", "right_knee", 1), ("right_knee", "right_ankle", 1),
)  # fmt: skip


def _rotate(angle: float, length: float) -> np.ndarray:
    """A segment of ``length`` hanging ``angle`` radians from straight down (image y grows downwards)."""
    return length * np.array([np.sin(angle), np.cos(angle)])


def figure_keypoints(pelvis: np.ndarray, height: float, phase: float, facing: int, lean: float) -> np.ndarray:
    """(17, 2) joint positions of a walking figure: ``facing`` +1 towards the camera (its left on the image's
    right), -1 away; ``phase`` the gait phase; segment lengths as fractions of the body ``height``."""
    k = np.zeros((len(KEYPOINTS), 2))
    up = np.array([np.sin(lean), -np.cos(lean)])
    side = np.array([np.cos(lean), np.sin(lean)]) * facing
    neck = pelvis + 0.30 * height * up
    k[_K["head_bottom"]] = neck
    k[_K["head_top"]] = neck + 0.16 * height * up
    k[_K["nose"]] = neck + 0.08 * height * up + 0.01 * height * side
    for sign, name in ((1, "left"), (-1, "right")):  # drawn as part of the head; PoseTrack never labels them
        k[_K[f"{name}_ear"]] = neck + 0.09 * height * up + sign * 0.05 * height * side
    swing = 0.45 * np.sin(phase)
    for sign, name in ((1, "left"), (-1, "right")):
        shoulder = neck + sign * 0.11 * height * side + 0.01 * height * up
        hip = pelvis + sign * 0.07 * height * side
        arm = sign * swing * facing + lean
        elbow = shoulder + _rotate(arm, 0.17 * height)
        wrist = elbow + _rotate(arm + 0.4 * (1 + np.sin(phase + sign)) * facing * 0.5, 0.15 * height)
        leg = -sign * swing * facing + lean
        knee = hip + _rotate(leg, 0.24 * height)
        ankle = knee + _rotate(leg - 0.3 * max(0.0, np.sin(phase * sign)), 0.24 * height)
        for joint, value in (("shoulder", shoulder), ("elbow", elbow), ("wrist", wrist)):
            k[_K[f"{name}_{joint}"]] = value
        for joint, value in (("hip", hip), ("knee", knee), ("ankle", ankle)):
            k[_K[f"{name}_{joint}"]] = value
    return k


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    coarse = rng.uniform(40, 200, size=(4, 5, 3)).astype(np.float32)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(rng.integers(4, 9)):  # furniture: rectangles and poles
        x0, y0 = rng.integers(0, width), rng.integers(0, height)
        x1, y1 = x0 + rng.integers(8, width // 3), y0 + rng.integers(8, height // 2)
        cv2.rectangle(image, (int(x0), int(y0)), (int(x1), int(y1)), rng.uniform(30, 220, 3).tolist(), -1)
    image += rng.normal(0, 6, size=image.shape).astype(np.float32)  # texture
    return cv2.GaussianBlur(image, (3, 3), 0)


def _draw_figure(image: np.ndarray, k: np.ndarray, height: float, colors: np.ndarray, facing: int = 1) -> None:
    """Torso, capsule limbs and a head whose face (eyes, nose) shows when ``facing`` the camera, hair when not:
    the cue that tells the figure's left from its right, as a real face does."""
    width = max(2, int(round(0.065 * height)))
    torso = k[[_K["left_shoulder"], _K["right_shoulder"], _K["right_hip"], _K["left_hip"]]]
    cv2.fillConvexPoly(image, np.round(torso).astype(np.int32), colors[0].tolist(), cv2.LINE_AA)
    for a, b, part in _LIMBS:
        pa, pb = tuple(np.round(k[_K[a]]).astype(int)), tuple(np.round(k[_K[b]]).astype(int))
        cv2.line(image, pa, pb, colors[part].tolist(), width, cv2.LINE_AA)  # a capsule: round caps below
        cv2.circle(image, pb, width // 2, colors[part].tolist(), -1, cv2.LINE_AA)
    neck, top = k[_K["head_bottom"]], k[_K["head_top"]]
    centre = tuple(np.round((neck + top) / 2).astype(int))
    axes = (max(2, int(0.055 * height)), max(2, int(0.08 * height)))
    angle = float(np.degrees(np.arctan2(top[0] - neck[0], neck[1] - top[1])))
    cv2.ellipse(image, centre, axes, angle, 0, 360, colors[2].tolist(), -1, cv2.LINE_AA)
    if facing > 0:
        side = np.array([np.cos(np.radians(angle)), np.sin(np.radians(angle))]) * 0.025 * height
        for eye in (-side, side):
            cv2.circle(image, tuple(np.round(centre + eye).astype(int)), max(1, int(0.012 * height)), (20, 20, 20), -1)
        cv2.circle(image, tuple(np.round(k[_K["nose"]]).astype(int)), max(1, int(0.012 * height)), (40, 40, 160), -1)
    else:
        cv2.ellipse(image, centre, (axes[0], axes[1] - 1), angle, 0, 360, (25, 30, 45), -1, cv2.LINE_AA)


def _motion_blur(image: np.ndarray, velocity: np.ndarray) -> np.ndarray:
    length = int(np.linalg.norm(velocity))
    if length < 3:
        return image
    kernel = np.zeros((length, length), np.float32)
    direction = velocity / np.linalg.norm(velocity) * (length - 1) / 2
    c = (length - 1) / 2
    cv2.line(kernel, (int(c - direction[0]), int(c - direction[1])), (int(c + direction[0]), int(c + direction[1])), 1)
    return cv2.filter2D(image, -1, kernel / max(kernel.sum(), 1))


def _video(rng: np.random.Generator, name: str, split: str, nframes: int, width: int, height: int, root: Path):
    people = []
    for track in range(int(rng.integers(1, 4))):
        body = rng.uniform(0.5, 0.8) * height
        people.append(
            dict(
                track=track,
                height=body,
                start=np.array([rng.uniform(0.2, 0.8) * width, rng.uniform(0.55, 0.75) * height]),
                velocity=np.array([rng.uniform(-4, 4), rng.uniform(-0.5, 0.5)]),
                phase=rng.uniform(0, 2 * np.pi),
                speed=rng.uniform(0.3, 0.6),
                facing=int(rng.choice([-1, 1])),
                lean=rng.uniform(-0.12, 0.12),
                colors=np.stack([rng.uniform(20, 235, 3), rng.uniform(20, 235, 3), rng.uniform(SKIN_LOW, SKIN_HIGH)]),
                depth=rng.uniform(0, 1),
                depth_speed=rng.uniform(-0.05, 0.05),
            )
        )  # fmt: skip
    background = _background(rng, width, height)
    bystander = np.array([rng.uniform(0.1, 0.9) * width, rng.uniform(0.25, 0.4) * height])
    code = int(name.split("_")[0])
    frames, folder = [], root / "images" / split / name
    folder.mkdir(parents=True, exist_ok=True)
    for f in range(nframes):
        image = background.copy()
        small = figure_keypoints(bystander, 0.18 * height, 0.4 * f, 1, 0.0)
        _draw_figure(image, small, 0.18 * height, np.full((3, 3), 60.0))
        low, high = small.min(0) - 4, small.max(0) + 4
        region = np.array([[low[0], low[1]], [high[0], low[1]], [high[0], high[1]], [low[0], high[1]]])
        annotated, fastest = [], np.zeros(2)
        order = sorted(people, key=lambda p: (p["depth"] + p["depth_speed"] * f) % 1.0)  # far to near
        for p in order:
            pelvis = p["start"] + f * p["velocity"]
            pelvis[0] = (pelvis[0] - 0.1 * width) % (0.8 * width) + 0.1 * width  # walk across, wrap around
            k = figure_keypoints(pelvis, p["height"], p["phase"] + p["speed"] * f, p["facing"], p["lean"])
            _draw_figure(image, k, p["height"], p["colors"], p["facing"])
            inside = (k[:, 0] >= 0) & (k[:, 0] < width) & (k[:, 1] >= 0) & (k[:, 1] < height)
            keypoints = np.concatenate([k, np.ones((len(k), 1))], axis=1)
            keypoints[~inside] = 0
            keypoints[[_K["left_ear"], _K["right_ear"]]] = 0  # never annotated in PoseTrack
            neck, top = k[_K["head_bottom"]], k[_K["head_top"]]
            head_h = np.linalg.norm(top - neck)
            # PoseTrack's head boxes are generous: 0.6 x their diagonal is ~0.15-0.25 of the head-to-ankle
            # height on the real val samples; this box gives ~0.15
            head = np.array([(neck[0] + top[0]) / 2 - 0.5 * head_h, top[1] - 0.1 * head_h, head_h, 1.15 * head_h])
            lo, hi = k.min(0), k.max(0)
            box = np.concatenate([lo - 0.1 * (hi - lo), 1.2 * (hi - lo)])
            annotated.append(PosePerson(keypoints, p["track"], box, head))
            fastest = max(fastest, p["velocity"] * 1.5, key=lambda v: np.linalg.norm(v))
        if f % 5 == 2:  # camera or subject jerk: motion blur on some frames
            image = _motion_blur(image, fastest * 2)
        image = np.clip(image + rng.normal(0, 3, image.shape), 0, 255).astype(np.uint8)
        file_name = f"images/{split}/{name}/{f:06d}.jpg"
        if not cv2.imwrite(str(root / file_name), image, [cv2.IMWRITE_JPEG_QUALITY, 90]):
            raise DataError("could not write the frame", root / file_name)
        labeled = split == "train" or f % 4 == 0
        frame_id = int(f"1{code:06d}{f:04d}")
        frames.append(PoseFrame(frame_id, file_name, labeled, [region], annotated if labeled else []))
    return PoseVideo(name, None, nframes, frames, f"{code:06d}")


def write_posetrack(out: str | Path, size: str = "small", seed: int = 0) -> Path:
    """Write a synthetic PoseTrack18 dataset (train and val splits) under ``out``; returns ``out``."""
    if size not in SIZES:
        raise DataError(f"unknown size {size!r}; expected one of {sorted(SIZES)}")
    root = Path(out)
    n_train, n_val, nframes, width, height = SIZES[size]
    rng = np.random.default_rng(seed)
    for split, count, offset in (("train", n_train, 1), ("val", n_val, 5001)):
        for i in range(count):
            name = f"{offset + i:06d}_mpii_{'train' if split == 'train' else 'test'}"
            video = _video(rng, name, split, nframes, width, height, root)
            write_video(root / "annotations" / split / f"{name}.json", video)
    return root
