"""Bad input to every ``diffusekit pose`` command (DiffPose and DDHPose): each case is one line on stderr naming the
file or option, exit code 2, no traceback and nothing written (tests/bad_input.py).

The cases corrupt copies of the synthetic datasets (PoseTrack18, Human3.6M and MPI-INF-3DHP layouts), written once
per module; the networks are freshly built ``diffpose_tiny`` / ``ddhpose_tiny`` whose weights are saved once
(nothing is trained). Configs, checkpoints and work dirs shared by every domain are covered by
tests/test_bad_input.py.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

from diffusekit.core import cli
from diffusekit.core.checkpoint import save_weights
from diffusekit.pose.cli import DOMAIN
from diffusekit.pose.npz_tree import convert_npz, read_npz
from diffusekit.pose.synthetic import write_posetrack
from diffusekit.pose.synthetic3d import write_3dhp, write_h36m
from diffusekit.pose.workflow import build_pose_model, load_pose_config
from tests.bad_input import check_case

VIDEO = "005001_mpii_test"  # the first synthetic val video
FLAT_3D, FLAT_2D = "data_3d_h36m.flat.npz", "data_2d_h36m_det.flat.npz"  # what ddhpose_tiny reads
THREEDHP = ["--cfg-options", "train_dataloader.dataset.dataset=3dhp"]


@dataclass
class Base:
    """The pristine inputs every case copies."""

    root: Path
    posetrack: Path  # annotations/val and images/val of one video
    h36m: Path  # the two flat files ddhpose_tiny reads
    mpi3dhp: Path  # the flat test file
    diffpose: Path  # weights of a freshly built diffpose_tiny
    ddhpose: Path


class Payload:
    """Unpickling this runs ``touch <marker>``: what a hostile npz would do."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(autouse=True)
def _domain(monkeypatch):
    monkeypatch.setattr(cli, "installed_domains", lambda: [DOMAIN])


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Base:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("pose_bad_input")
    full = write_posetrack(root / "posetrack_full", "small", seed=3)
    posetrack = root / "posetrack"
    for kind, name in (("annotations", f"{VIDEO}.json"), ("images", VIDEO)):
        copy = shutil.copytree if kind == "images" else shutil.copy
        (posetrack / kind / "val").mkdir(parents=True)
        copy(full / kind / "val" / name, posetrack / kind / "val" / name)
    published = write_h36m(root / "h36m_published", "small", seed=3)
    h36m = root / "h36m"
    h36m.mkdir()
    for name in (FLAT_3D, FLAT_2D):
        convert_npz(published / name.replace(".flat", ""), h36m / name)
    mpi = write_3dhp(root / "3dhp_published", seed=3, frames=40)
    (root / "3dhp").mkdir()
    convert_npz(mpi / "data_test_3dhp_ori.npz", root / "3dhp" / "data_test_3dhp_ori.flat.npz")
    weights = {}
    for name in ("diffpose_tiny", "ddhpose_tiny"):
        weights[name] = root / f"{name}.pth"
        save_weights(weights[name], build_pose_model(load_pose_config(name)).state_dict())
    torch.set_num_threads(threads)
    return Base(root, posetrack, h36m, root / "3dhp", weights["diffpose_tiny"], weights["ddhpose_tiny"])


# ------------------------------------------------------------------------------------------ corruptions
def truncate(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def edit_json(path: Path, change: Callable[[Any], Any]) -> Path:
    """Rewrite a JSON file with ``change(data)`` (which may edit ``data`` in place and return None)."""
    data = json.loads(path.read_text())
    changed = change(data)
    path.write_text(json.dumps(data if changed is None else changed))
    return path


def edit_npz(path: Path, change: Callable[[dict[str, np.ndarray]], None]) -> Path:
    """Rewrite a flat npz with ``change(arrays)`` applied to its dict of arrays."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    change(arrays)
    np.savez(path.with_suffix(""), **arrays)  # np.savez appends .npz
    return path


def first_key(arrays: dict[str, np.ndarray], prefix: str) -> str:
    return next(name for name in sorted(arrays) if name.startswith(prefix))


def set_first(prefix: str, make: Callable[[np.ndarray], np.ndarray]) -> Callable[[dict], None]:
    """A change for `edit_npz`: the first array under ``prefix`` replaced by ``make(array)``."""

    def change(arrays: dict[str, np.ndarray]) -> None:
        key = first_key(arrays, prefix)
        arrays[key] = make(arrays[key])

    return change


# ----------------------------------------------------------------------------------------------- cases
@dataclass
class Case:
    make: Callable[[Base, Path], tuple[list[str], tuple[str, ...], tuple[Path, ...]]]
    needs_user: bool = False  # chmod 000 means nothing to root


CASES: dict[str, Case] = {}


def case(name: str, needs_user: bool = False):
    def register(make):
        CASES[name] = Case(make, needs_user)
        return make

    return register


def diffpose(command: str, *args: str) -> list[str]:
    return ["pose", "diffpose", command, "--config", "diffpose_tiny", *map(str, args)]


def ddhpose(command: str, *args: str) -> list[str]:
    return ["pose", "ddhpose", command, "--config", "ddhpose_tiny", *map(str, args)]


def diffpose_evaluate(base: Base, data: Path, *extra: str) -> list[str]:
    args = ["--data", data, "--checkpoint", base.diffpose, "--steps", "1", "--samples", "1", "--no-flip"]
    return diffpose("evaluate", *args, "--device", "cpu", *extra)


def ddhpose_evaluate(base: Base, data: Path, *extra: str) -> list[str]:
    args = ["--data", data, "--checkpoint", base.ddhpose, "--steps", "1", "--samples", "1", "--no-flip"]
    return ddhpose("evaluate", *args, "--device", "cpu", *extra)


def posetrack_copy(base: Base, tmp: Path) -> Path:
    return Path(shutil.copytree(base.posetrack, tmp / "posetrack"))


def annotation(data: Path) -> Path:
    return data / "annotations" / "val" / f"{VIDEO}.json"


def frame(data: Path, index: int = 0) -> Path:
    return data / "images" / "val" / VIDEO / f"{index:06d}.jpg"


def posetrack_case(change: Callable[[Any], Any], *named: str):
    """A DiffPose evaluate case on a PoseTrack copy whose annotation file went through ``change``."""

    def make(base: Base, tmp: Path):
        data = posetrack_copy(base, tmp)
        path = edit_json(annotation(data), change)
        return diffpose_evaluate(base, data), (str(path), *named), (data,)

    return make


def first_annotation(key: str, value: Any) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        data["annotations"][0][key] = value

    return change


def first_image(key: str, value: Any) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        data["images"][0][key] = value

    return change


def keypoint_value(value: Any) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        data["annotations"][0]["keypoints"][3] = value

    return change


case("posetrack_annotations_a_number")(posetrack_case(lambda d: {**d, "annotations": 5}, "annotations"))
case("posetrack_images_an_object")(posetrack_case(lambda d: {**d, "images": {"file_name": "x.jpg"}}, "images"))
case("posetrack_image_a_string")(posetrack_case(lambda d: {**d, "images": ["000000.jpg"]}))
case("posetrack_annotation_a_list")(posetrack_case(lambda d: {**d, "annotations": [[1, 2, 3]]}))
case("posetrack_categories_a_number")(posetrack_case(lambda d: {**d, "categories": 7}, "categories"))
case("posetrack_keypoint_text")(posetrack_case(keypoint_value("left"), "keypoints"))
case("posetrack_keypoint_1e39")(posetrack_case(keypoint_value(1e39), "keypoints"))
case("posetrack_keypoints_short")(posetrack_case(first_annotation("keypoints", [1.0, 2.0, 1.0]), "keypoint"))
case("posetrack_bbox_text")(posetrack_case(first_annotation("bbox", ["a", "b", "c", "d"]), "bbox"))
case("posetrack_bbox_negative_size")(posetrack_case(first_annotation("bbox", [10.0, 10.0, -40.0, 80.0]), "bbox"))
case("posetrack_track_id_text")(posetrack_case(first_annotation("track_id", "first"), "track_id"))
case("posetrack_score_text")(posetrack_case(first_annotation("score", "high"), "score"))
case("posetrack_image_id_text")(posetrack_case(first_image("id", "first"), "id"))
case("posetrack_nframes_negative")(posetrack_case(first_image("nframes", -16), "nframes"))
case("posetrack_nframes_text")(posetrack_case(first_image("nframes", "sixteen"), "nframes"))
case("posetrack_ignore_region_text")(posetrack_case(first_image("ignore_regions_x", [["a", "b", "c", "d"]])))


@case("posetrack_json_truncated")
def _(base, tmp):
    data = posetrack_copy(base, tmp)
    path = truncate(annotation(data))
    return diffpose_evaluate(base, data), (str(path),), (data,)


@case("posetrack_json_not_utf8")
def _(base, tmp):
    data = posetrack_copy(base, tmp)
    path = annotation(data)
    path.write_bytes(path.read_bytes().replace(b'"file_name"', b'"file_\xe9name"', 1))
    return diffpose_evaluate(base, data), (str(path),), (data,)


@case("posetrack_json_unreadable", needs_user=True)
def _(base, tmp):
    data = posetrack_copy(base, tmp)
    annotation(data).chmod(0)
    return diffpose_evaluate(base, data), (str(annotation(data)),), (data,)


@case("posetrack_frame_unreadable", needs_user=True)
def _(base, tmp):
    data = posetrack_copy(base, tmp)
    frame(data, 4).chmod(0)
    return diffpose_evaluate(base, data), (str(frame(data, 4)),), (data,)


@case("posetrack_frame_truncated")
def _(base, tmp):
    data = posetrack_copy(base, tmp)
    path = truncate(frame(data, 4), 0.6)
    return diffpose_evaluate(base, data), (str(path),), (data,)


@case("posetrack_frame_is_text")
def _(base, tmp):
    data = posetrack_copy(base, tmp)
    path = frame(data, 0)
    path.write_text("not a picture\n")
    return diffpose_evaluate(base, data), (str(path),), (data,)


@case("posetrack_frame_missing")
def _(base, tmp):
    data = posetrack_copy(base, tmp)
    frame(data, 8).unlink()
    return diffpose_evaluate(base, data), (str(frame(data, 8)),), (data,)


@case("posetrack_unknown_split")
def _(base, tmp):
    return diffpose_evaluate(base, base.posetrack, "--split", "holdout"), ("holdout",), (base.posetrack,)


def detections_case(content: Any, *named: str):
    """A DiffPose evaluate case with ``--boxes`` naming a detections file of ``content`` (JSON, or raw bytes)."""

    def make(base: Base, tmp: Path):
        path = tmp / "detections.json"
        path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
        return diffpose_evaluate(base, base.posetrack, "--boxes", str(path)), (str(path), *named), (path,)

    return make


DETECTION = {"image_id": 10050010000, "category_id": 1, "bbox": [100.0, 40.0, 60.0, 120.0], "score": 0.9}
case("detections_an_object")(detections_case({"detections": [DETECTION]}))
case("detections_bbox_text")(detections_case([{**DETECTION, "bbox": "100,40,60,120"}], "bbox"))
case("detections_bbox_three_numbers")(detections_case([{**DETECTION, "bbox": [1.0, 2.0, 3.0]}], "bbox"))
case("detections_score_text")(detections_case([{**DETECTION, "score": "sure"}], "score"))
case("detections_score_nan")(detections_case(b'[{"image_id": 10050010000, "bbox": [1, 2, 30, 40], "score": NaN}]'))
case("detections_image_id_text")(detections_case([{**DETECTION, "image_id": "first"}], "image_id"))
case("detections_truncated")(detections_case(json.dumps([DETECTION] * 3).encode()[:100]))
case("detections_not_utf8")(detections_case(b'[{"image_id": 1, "bbox": [1, 2, 3, 4], "note": "\xff"}]'))
# what a detector's file gets wrong: frames the split does not have, empty or inverted boxes, NaN coordinates
ABSENT = {**DETECTION, "image_id": 10059990000}  # video 005999: not in the split
case("detections_frame_not_in_split")(detections_case([DETECTION, ABSENT], "detection 1", "10059990000", "not a frame"))
case("detections_file_name_not_in_split")(
    detections_case([{**DETECTION, "image_id": "images/val/005999_mpii_test/000000.jpg"}], "detection 0", "not a frame")
)
case("detections_bbox_zero_area")(
    detections_case([DETECTION, {**DETECTION, "bbox": [100.0, 40.0, 0.0, 120.0]}], "detection 1", "zero area")
)
case("detections_bbox_negative_area")(
    detections_case([{**DETECTION, "bbox": [100.0, 40.0, 60.0, -12.0]}], "detection 0", "negative area")
)
case("detections_bbox_nan")(
    detections_case(b'[{"image_id": 10050010000, "bbox": [100, NaN, 60, 120], "score": 0.9}]', "detection 0", "NaN")
)
case("detections_no_frame")(detections_case([{"bbox": [1.0, 2.0, 30.0, 40.0], "score": 0.9}], "detection 0"))


@case("diffpose_evaluate_steps_zero")
def _(base, tmp):
    return diffpose_evaluate(base, base.posetrack, "--steps", "0"), ("--steps",), (base.posetrack,)


@case("diffpose_evaluate_seed_negative")
def _(base, tmp):
    return diffpose_evaluate(base, base.posetrack, "--seed=-3"), ("--seed",), (base.posetrack,)


@case("diffpose_evaluate_out_is_file")
def _(base, tmp):
    out = tmp / "results"
    out.write_text("mine\n")
    return diffpose_evaluate(base, base.posetrack, "--out", str(out)), (str(out),), (out, base.posetrack)


@case("diffpose_train_annotations_a_number")
def _(base, tmp):
    data = Path(shutil.copytree(base.posetrack, tmp / "posetrack"))
    (data / "annotations" / "train").mkdir()
    path = shutil.copy(annotation(data), data / "annotations" / "train" / f"{VIDEO}.json")
    edit_json(Path(path), lambda d: {**d, "annotations": 5})
    argv = diffpose("train", "--data", data, "--work-dir", tmp / "work", "--cfg-options", "train_cfg.max_iters=1")
    return argv, (str(path),), (data, tmp / "work")


def backbone_case(content: bytes | None):
    """DiffPose train with ``model.backbone.weights`` naming a bad file (``content``; None: another model's)."""

    def make(base: Base, tmp: Path):
        path = tmp / "backbone.pth"
        if content is None:
            torch.save({"state_dict": {"body.0.weight": torch.zeros(8, 3, 3, 3)}}, path)
        else:
            path.write_bytes(content)
        options = ["train_cfg.max_iters=1", f"model.backbone.weights={path}"]
        argv = diffpose("train", "--data", base.root / "posetrack_full", "--work-dir", tmp / "work")
        return [*argv, "--cfg-options", *options], (str(path),), (base.root / "posetrack_full", tmp)

    return make


case("backbone_weights_text")(backbone_case(b"these are not weights\n"))
case("backbone_weights_truncated")(backbone_case(b"PK\x03\x04" + b"\x00" * 40))
case("backbone_weights_of_another_shape")(backbone_case(None))


def other_config_case(command: str):
    """DiffPose evaluate / predict with a checkpoint of another config (diffpose_tiny's weights, a decoder of width
    32 in the config): the line names the checkpoint, the first tensor whose shape differs and both shapes."""

    def make(base: Base, tmp: Path):
        from diffusekit.core.checkpoint import load_checkpoint_file, select_state_dict

        options = ["model.decoder.dim=32"]
        saved = select_state_dict(load_checkpoint_file(base.diffpose, map_location="cpu"))
        model = build_pose_model(load_pose_config("diffpose_tiny", options)).state_dict()
        key = next(k for k in saved if k in model and saved[k].shape != model[k].shape)
        named = (str(base.diffpose), repr(key), f"{tuple(saved[key].shape)} in the file",
                 f"{tuple(model[key].shape)} in the model")  # fmt: skip
        if command == "evaluate":
            argv = diffpose_evaluate(base, base.posetrack, "--cfg-options", *options)
            return argv, named, (base.posetrack,)
        folder = frames_input(base, tmp)
        return diffpose_predict(base, folder, tmp / "out", "--cfg-options", *options), named, (folder, tmp)

    return make


case("diffpose_evaluate_checkpoint_of_another_config")(other_config_case("evaluate"))
case("diffpose_predict_checkpoint_of_another_config")(other_config_case("predict"))


# ---- DiffPose predict
def frames_input(base: Base, tmp: Path) -> Path:
    folder = tmp / "frames"
    folder.mkdir()
    for index in range(3):
        shutil.copy(frame(base.posetrack, index), folder)
    return folder


def diffpose_predict(base: Base, source: Path, out: Path, *extra: str, boxes: bool = True) -> list[str]:
    """A predict command line; without --detections or --box in ``extra`` it opts into --whole-frame (unless
    ``boxes`` is False)."""
    args = ["--input", source, "--out", out, "--checkpoint", base.diffpose, "--steps", "1", "--samples", "1"]
    chosen = any(str(flag).split("=")[0] in ("--detections", "--box") for flag in extra)
    whole = ["--whole-frame"] if boxes and not chosen else []
    return diffpose("predict", *args, "--no-flip", "--device", "cpu", *whole, *extra)


@case("predict_frame_truncated")
def _(base, tmp):
    folder = frames_input(base, tmp)
    path = truncate(folder / "000001.jpg", 0.5)
    return diffpose_predict(base, folder, tmp / "out"), (str(path),), (folder, tmp / "out")


@case("predict_first_frame_is_text")
def _(base, tmp):
    folder = frames_input(base, tmp)
    (folder / "000000.jpg").write_text("hello\n")
    return diffpose_predict(base, folder, tmp / "out"), (str(folder / "000000.jpg"),), (folder, tmp / "out")


@case("predict_video_is_text")
def _(base, tmp):
    path = tmp / "clip.mp4"
    path.write_text("not a video\n" * 40)
    return diffpose_predict(base, path, tmp / "out"), (str(path),), (path, tmp / "out")


def write_clip(base: Base, path: Path, frames: int = 8) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (256, 192))
    for index in range(frames):
        writer.write(cv2.imread(str(frame(base.posetrack, index))))
    writer.release()
    return path


@case("predict_video_truncated")
def _(base, tmp):
    path = truncate(write_clip(base, tmp / "clip.avi"), 0.5)
    return diffpose_predict(base, path, tmp / "out"), (str(path),), (path, tmp / "out")


@case("predict_out_would_overwrite_the_video")
def _(base, tmp):
    path = write_clip(base, tmp / "clip.avi", frames=3)
    return diffpose_predict(base, path, tmp), (str(tmp), "clip.avi", "--out"), (tmp,)


@case("predict_detections_bbox_text")
def _(base, tmp):
    folder = frames_input(base, tmp)
    path = tmp / "detections.json"
    path.write_text(json.dumps([{"image_id": 0, "bbox": ["x", 1, 2, 3], "score": 1.0}]))
    return diffpose_predict(base, folder, tmp / "out", "--detections", str(path)), (str(path),), (folder, tmp)


@case("predict_box_nan")
def _(base, tmp):
    folder = frames_input(base, tmp)
    return diffpose_predict(base, folder, tmp / "out", "--box", "nan,0,10,10"), ("--box",), (folder, tmp)


@case("predict_box_zero_width")
def _(base, tmp):
    folder = frames_input(base, tmp)
    return diffpose_predict(base, folder, tmp / "out", "--box", "0,0,0,10"), ("--box",), (folder, tmp)


@case("predict_box_outside")
def _(base, tmp):
    folder = frames_input(base, tmp)
    return diffpose_predict(base, folder, tmp / "out", "--box=-500,-500,50,50"), ("box",), (folder, tmp)


@case("predict_det_score_thr_inf")
def _(base, tmp):
    folder = frames_input(base, tmp)
    return diffpose_predict(base, folder, tmp / "out", "--det-score-thr", "inf"), ("--det-score-thr",), (folder, tmp)


@case("predict_without_person_boxes")
def _(base, tmp):
    """No detections, no box: predict says that a person detector is needed instead of using the whole frame."""
    folder = frames_input(base, tmp)
    named = (str(folder), "person detector", "--detections", '"bbox": [x, y, w, h]', "--whole-frame")
    return diffpose_predict(base, folder, tmp / "out", boxes=False), named, (folder, tmp)


def predict_detections_case(entries: Any, *named: str):
    """DiffPose predict on three frames with --detections naming a file of ``entries`` (JSON, or raw bytes)."""

    def make(base: Base, tmp: Path):
        folder = frames_input(base, tmp)
        path = tmp / "people.json"
        path.write_bytes(entries if isinstance(entries, bytes) else json.dumps(entries).encode())
        argv = diffpose_predict(base, folder, tmp / "out", "--detections", str(path))
        return argv, (str(path), *named), (folder, tmp)

    return make


PERSON = {"image_id": 0, "category_id": 1, "bbox": [100.0, 40.0, 60.0, 120.0], "score": 0.9}
case("predict_detections_frame_out_of_range")(
    predict_detections_case([PERSON, {**PERSON, "image_id": 3}], "detection 1", "image_id 3", "3 frames")
)
case("predict_detections_file_name_unknown")(
    predict_detections_case([{**PERSON, "image_id": "000042.jpg"}], "detection 0", "000042.jpg")
)
case("predict_detections_bbox_zero_area")(
    predict_detections_case([{**PERSON, "bbox": [100.0, 40.0, 60.0, 0.0]}], "detection 0", "zero area")
)
case("predict_detections_bbox_nan")(
    predict_detections_case(b'[{"image_id": 2, "bbox": [NaN, 40, 60, 120], "score": 0.9}]', "detection 0", "NaN")
)
case("predict_detections_box_outside")(
    predict_detections_case([{**PERSON, "bbox": [900.0, 40.0, 60.0, 120.0]}], "detection 0", "lies outside")
)


@case("predict_out_is_file")
def _(base, tmp):
    folder = frames_input(base, tmp)
    out = tmp / "out"
    out.write_text("mine\n")
    return diffpose_predict(base, folder, out), (str(out),), (folder, out)


@case("predict_input_missing")
def _(base, tmp):
    return diffpose_predict(base, tmp / "nothing.mp4", tmp / "out"), (str(tmp / "nothing.mp4"),), (tmp,)


# ---- synth
@case("diffpose_synth_out_is_file")
def _(base, tmp):
    out = tmp / "data"
    out.write_text("mine\n")
    return ["pose", "diffpose", "synth", "--out", str(out)], (str(out),), (out,)


@case("diffpose_synth_over_existing_dataset")
def _(base, tmp):
    data = posetrack_copy(base, tmp)
    return ["pose", "diffpose", "synth", "--out", str(data)], (str(data), "--overwrite"), (data,)


@case("ddhpose_synth_over_existing_dataset")
def _(base, tmp):
    data = Path(shutil.copytree(base.h36m, tmp / "h36m"))
    return ["pose", "ddhpose", "synth", "--out", str(data)], (str(data), "--overwrite"), (data,)


@case("ddhpose_synth_3dhp_over_existing")
def _(base, tmp):
    data = Path(shutil.copytree(base.mpi3dhp, tmp / "3dhp"))
    argv = ["pose", "ddhpose", "synth", "--out", str(data), "--dataset", "3dhp"]
    return argv, (str(data), "--overwrite"), (data,)


@case("ddhpose_synth_seed_negative")
def _(base, tmp):
    return ["pose", "ddhpose", "synth", "--out", str(tmp / "d"), "--seed=-1"], ("--seed",), (tmp,)


# ---- DDHPose data
def h36m_copy(base: Base, tmp: Path) -> Path:
    return Path(shutil.copytree(base.h36m, tmp / "h36m"))


def h36m_case(name: str, change: Callable[[dict], None], *named: str, options: tuple[str, ...] = ()):
    """A DDHPose evaluate case on an H36M copy whose flat file ``name`` went through ``change``."""

    def make(base: Base, tmp: Path):
        data = h36m_copy(base, tmp)
        path = edit_npz(data / name, change)
        return ddhpose_evaluate(base, data, *options), (str(path), *named), (data,)

    return make


def as_float64(value: float, prefix: str = "positions_3d/S9/") -> Callable[[dict], None]:
    def make(array: np.ndarray) -> np.ndarray:
        out = array.astype(np.float64)
        out[3, 2, 1] = value
        return out

    return set_first(prefix, make)


def drop_json_keys(arrays: dict) -> None:
    arrays["metadata"] = np.array(json.dumps(["h36m", 17]))


case("h36m_positions_nan")(h36m_case(FLAT_3D, as_float64(np.nan), "NaN"))
case("h36m_positions_1e39_float64")(h36m_case(FLAT_3D, as_float64(1e39), "positions_3d/S9"))
case("h36m_positions_1e30")(h36m_case(FLAT_3D, as_float64(1e30), "positions_3d/S9"))
case("h36m_positions_text")(h36m_case(FLAT_3D, set_first("positions_3d/S9/", lambda a: a.astype(str)), "positions_3d"))
case("h36m_positions_16_joints")(h36m_case(FLAT_3D, set_first("positions_3d/S9/", lambda a: a[:, :16]), "(N, 32, 3)"))
case("h36m_2d_1e39_float64")(h36m_case(FLAT_2D, as_float64(1e39, "positions_2d/S9/"), "positions_2d/S9"))
case("h36m_2d_fewer_frames")(h36m_case(FLAT_2D, set_first("positions_2d/S9/", lambda a: a[:10]), "positions_2d/S9"))
case("h36m_metadata_a_list")(h36m_case(FLAT_2D, drop_json_keys, "metadata"))


@case("h36m_npz_truncated")
def _(base, tmp):
    data = h36m_copy(base, tmp)
    path = truncate(data / FLAT_3D, 0.7)
    return ddhpose_evaluate(base, data), (str(path),), (data,)


@case("h36m_npz_unreadable", needs_user=True)
def _(base, tmp):
    data = h36m_copy(base, tmp)
    (data / FLAT_2D).chmod(0)
    return ddhpose_evaluate(base, data), (str(data / FLAT_2D),), (data,)


@case("h36m_npz_is_text")
def _(base, tmp):
    data = h36m_copy(base, tmp)
    path = data / FLAT_2D
    path.write_text("positions_2d = {}\n")
    return ddhpose_evaluate(base, data), (str(path),), (data,)


@case("h36m_npz_member_is_text")
def _(base, tmp):
    """A member that is not an .npy array (a text file zipped in): the reason must not claim pickled data."""
    import zipfile

    data = h36m_copy(base, tmp)
    path = data / FLAT_3D
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("positions_3d/S9/Extra.npy", "just some text\n")
    return ddhpose_evaluate(base, data), (str(path), "positions_3d/S9/Extra"), (data,)


@case("h36m_pickled_npz_runs_nothing")
def _(base, tmp):
    """Only the published (pickled) layout, with a payload: refused without --allow-pickle, and nothing ran."""
    data = tmp / "h36m"
    data.mkdir()
    marker = tmp / "ran"
    for name in (FLAT_3D, FLAT_2D):
        payload = np.empty((), dtype=object)
        payload[()] = {"S9": Payload(marker)}
        np.savez(data / name.replace(".flat.npz", ""), positions_3d=payload, positions_2d=payload)
    check = (data / FLAT_3D.replace(".flat", ""), "--allow-pickle")
    return ddhpose_evaluate(base, data), tuple(map(str, check)), (data, marker)


@case("h36m_unknown_split")
def _(base, tmp):
    return ddhpose_evaluate(base, base.h36m, "--split", "holdout"), ("holdout",), (base.h36m,)


@case("h36m_missing_folder")
def _(base, tmp):
    return ddhpose_evaluate(base, tmp / "nowhere"), (str(tmp / "nowhere"),), (tmp,)


def mpi_case(change: Callable[[dict], None], *named: str):
    def make(base: Base, tmp: Path):
        data = Path(shutil.copytree(base.mpi3dhp, tmp / "3dhp"))
        path = edit_npz(data / "data_test_3dhp_ori.flat.npz", change)
        return ddhpose_evaluate(base, data, *THREEDHP), (str(path), *named), (data,)

    return make


case("3dhp_valid_wrong_length")(mpi_case(set_first("data/TS1/valid", lambda a: a[:5]), "valid"))
case("3dhp_positions_1e39_float64")(mpi_case(as_float64(1e39, "data/TS2/data_3d"), "data/TS2/data_3d"))
case("3dhp_2d_text")(mpi_case(set_first("data/TS3/data_2d", lambda a: a.astype(str)), "data/TS3/data_2d"))


@case("ddhpose_evaluate_steps_zero")
def _(base, tmp):
    return ddhpose_evaluate(base, base.h36m, "--steps", "1", "0"), ("--steps",), (base.h36m,)


@case("ddhpose_evaluate_samples_negative")
def _(base, tmp):
    return ddhpose_evaluate(base, base.h36m, "--samples=-4"), ("--samples",), (base.h36m,)


@case("ddhpose_evaluate_out_is_file")
def _(base, tmp):
    out = tmp / "results"
    out.write_text("mine\n")
    return ddhpose_evaluate(base, base.h36m, "--out", str(out)), (str(out),), (out, base.h36m)


@case("ddhpose_train_positions_1e30")
def _(base, tmp):
    data = h36m_copy(base, tmp)
    path = edit_npz(data / FLAT_3D, as_float64(1e30, "positions_3d/S1/"))
    argv = ddhpose("train", "--data", data, "--work-dir", tmp / "work", "--cfg-options", "train_cfg.max_iters=1")
    return argv, (str(path),), (data, tmp / "work")


# ---- DDHPose convert
@case("convert_text_file")
def _(base, tmp):
    path = tmp / "data_3d_h36m.npz"
    path.write_text("hello\n")
    return ["pose", "ddhpose", "convert", str(path)], (str(path),), (tmp,)


@case("convert_truncated")
def _(base, tmp):
    path = tmp / "data_3d_h36m.npz"
    shutil.copy(base.root / "h36m_published" / "data_3d_h36m.npz", path)
    truncate(path, 0.6)
    return ["pose", "ddhpose", "convert", str(path)], (str(path),), (tmp,)


@case("convert_out_is_file")
def _(base, tmp):
    out = tmp / "converted"
    out.write_text("mine\n")
    source = base.root / "h36m_published" / "data_3d_h36m.npz"
    return ["pose", "ddhpose", "convert", str(source), "--out", str(out)], (str(out),), (out, source)


# ---- DDHPose predict
def ddhpose_predict(base: Base, source: Path, out: Path, *extra: str) -> list[str]:
    args = ["--input", source, "--out", out, "--checkpoint", base.ddhpose, "--steps", "1", "--samples", "1"]
    return ddhpose("predict", *args, "--no-flip", "--device", "cpu", *extra)


def keypoints_npz(tmp: Path, keypoints: np.ndarray, **extra: Any) -> Path:
    path = tmp / "keypoints.npz"
    np.savez(path, keypoints=keypoints, **extra)
    return path


def walking_2d(base: Base) -> np.ndarray:
    tree = read_npz(base.h36m / FLAT_2D)
    return np.asarray(next(iter(next(iter(tree["positions_2d"].values())).values()))["0"])


def npz_predict_case(make_arrays: Callable[[np.ndarray], dict[str, Any]], *named: str):
    def make(base: Base, tmp: Path):
        path = keypoints_npz(tmp, **make_arrays(walking_2d(base)))
        return ddhpose_predict(base, path, tmp / "out"), (str(path), *named), (path, tmp / "out")

    return make


def huge(points: np.ndarray, value: float) -> np.ndarray:
    out = points.astype(np.float64)
    out[2, 5, 0] = value
    return out


case("predict_npz_1e39_float64")(npz_predict_case(lambda k: dict(keypoints=huge(k, 1e39), width=1000, height=1000)))
case("predict_npz_1e30")(npz_predict_case(lambda k: dict(keypoints=huge(k, 1e30), width=1000, height=1000)))
case("predict_npz_negative_width")(npz_predict_case(lambda k: dict(keypoints=k, width=-1000, height=1000), "width"))
case("predict_npz_width_text")(npz_predict_case(lambda k: dict(keypoints=k, width="wide", height=1000), "width"))
case("predict_npz_wrong_shape")(npz_predict_case(lambda k: dict(keypoints=k[:, :15], width=10, height=10), "keypoints"))
case("predict_npz_no_size")(npz_predict_case(lambda k: dict(keypoints=k), "width"))


def coco(base: Base) -> dict:
    points = walking_2d(base)[:12]
    images = [{"id": i, "file_name": f"{i:06d}.jpg", "width": 1000, "height": 1000} for i in range(len(points))]
    keypoints = np.concatenate([points, np.ones((*points.shape[:2], 1))], -1)  # H36M order is fine for a case
    annotations = [
        {"id": i, "image_id": i, "category_id": 1, "keypoints": k.reshape(-1).tolist()} for i, k in enumerate(keypoints)
    ]
    return {"images": images, "annotations": annotations}


def coco_case(change: Callable[[dict], Any], *named: str):
    def make(base: Base, tmp: Path):
        data = coco(base)
        changed = change(data)
        path = tmp / "people.json"
        path.write_text(json.dumps(data if changed is None else changed))
        return ddhpose_predict(base, path, tmp / "out"), (str(path), *named), (path, tmp / "out")

    return make


def in_first(kind: str, key: str, value: Any) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        data[kind][0][key] = value

    return change


case("predict_coco_negative_width")(coco_case(in_first("images", "width", -640), "width"))
case("predict_coco_width_text")(coco_case(in_first("images", "width", "wide"), "width"))
case("predict_coco_image_id_text")(coco_case(in_first("images", "id", "first"), "id"))
case("predict_coco_keypoints_text")(coco_case(in_first("annotations", "keypoints", ["x"] * 51), "keypoints"))
case("predict_coco_track_id_text")(coco_case(in_first("annotations", "track_id", "a"), "track_id"))
case("predict_coco_annotations_a_number")(coco_case(lambda d: {**d, "annotations": 5}, "annotations"))
case("predict_coco_images_strings")(coco_case(lambda d: {**d, "images": ["a.jpg"]}, "images"))
case("predict_categories_a_number")(coco_case(lambda d: {**d, "categories": 7}, "categories"))
case("predict_posetrack17_broken")(coco_case(lambda d: {"annolist": [{"image": [{"name": 5}]}]}))


@case("predict_posetrack_json_truncated")
def _(base, tmp):
    path = truncate(shutil.copy(annotation(base.posetrack), tmp / "video.json"))
    return ddhpose_predict(base, Path(path), tmp / "out"), (str(path),), (tmp,)


@case("predict_json_not_utf8")
def _(base, tmp):
    path = tmp / "people.json"
    path.write_bytes(b'{"images": [], "annotations": [], "note": "caf\xe9"}')
    return ddhpose_predict(base, path, tmp / "out"), (str(path),), (tmp,)


@case("predict_width_zero")
def _(base, tmp):
    path = keypoints_npz(tmp, walking_2d(base))
    return ddhpose_predict(base, path, tmp / "out", "--width", "0", "--height", "10"), ("--width",), (tmp,)


@case("predict_keypoints_out_is_file")
def _(base, tmp):
    path = keypoints_npz(tmp, walking_2d(base), width=1000, height=1000)
    out = tmp / "poses"
    out.write_text("mine\n")
    return ddhpose_predict(base, path, out), (str(out),), (tmp,)


@case("predict_out_would_overwrite_the_keypoints")
def _(base, tmp):
    path = keypoints_npz(tmp, walking_2d(base), width=1000, height=1000)
    return ddhpose_predict(base, path, tmp), (str(tmp), "keypoints.npz", "--out"), (tmp,)


@case("predict_keypoints_txt")
def _(base, tmp):
    path = tmp / "keypoints.txt"
    path.write_text("1 2 3\n")
    return ddhpose_predict(base, path, tmp / "out"), (str(path),), (tmp,)


@case("demo_out_is_file")
def _(base, tmp):
    out = tmp / "report"
    out.write_text("mine\n")
    return ["pose", "demo", "--out", str(out), "--quick"], (str(out),), (out,)


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, base, tmp_path, capfd):
    entry = CASES[name]
    if entry.needs_user and os.geteuid() == 0:
        pytest.skip("root reads any file")
    argv, names, untouched = entry.make(base, tmp_path)
    check_case(argv, capfd, names=names, untouched=untouched)
    assert not (tmp_path / "ran").exists(), "a payload ran"
