"""``diffusekit pose diffpose synth|train|evaluate|predict``: DiffPose on PoseTrack18/21 (and 17) videos."""

from __future__ import annotations

import argparse

from diffusekit.core.commands import (
    add_output_args,
    add_sampling_args,
    finite_float,
    float_list,
    output_dir,
    report,
)
from diffusekit.pose import cli as shared

SAMPLING = dict(
    steps="DDIM steps (default: the config's, 5)",
    samples="noise samples whose heatmaps are averaged per person (default: the config's, 1)",
)


def person_box(text: str) -> tuple[float, ...]:
    """argparse type: ``x,y,w,h`` with a positive width and height."""
    box = float_list(4)(text)
    if box[2] <= 0 or box[3] <= 0:
        raise argparse.ArgumentTypeError(f"the box's width and height must be positive, got {text!r}")
    return box


def cmd_synth(args: argparse.Namespace) -> int:
    from diffusekit.pose.synthetic import write_posetrack

    out = shared.synth_target(args, ("annotations", "images"))
    print(f"PoseTrack18 layout (train + val): {write_posetrack(out, args.size, args.seed)}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from diffusekit.pose.inference import eval_crops, evaluate_diffpose, format_report, inference_settings

    cfg, settings, model = shared.prepare(
        args, lambda c: inference_settings(c, args.steps, args.samples, shared.flip_arg(args))
    )
    crops = eval_crops(cfg, args.data, args.split, args.boxes, args.det_score_thr)
    out = output_dir(args.out) if args.out else None
    name = shared.config_name(args)
    result = evaluate_diffpose(model, crops, settings, out, name, seed=args.seed)
    title = f"{name}: {settings.steps} steps x {settings.samples} sample(s), flip {settings.flip}"
    speed = f"{result['frames_per_second']:.2f} labelled frames/s, {result['people_per_second']:.2f} people/s"
    written = f"\npredictions (PoseTrack18 JSON), metrics.json and crops.png: {out}" if out else ""
    report(args, result, f"{format_report(result, title)}\n{speed}{written}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from diffusekit.pose.inference import diffpose_codec, inference_settings
    from diffusekit.pose.predict import predict_input, require_person_boxes

    require_person_boxes(args.input, args.detections, args.box, args.whole_frame)  # before loading the model
    cfg, settings, model = shared.prepare(
        args, lambda c: inference_settings(c, args.steps, args.samples, shared.flip_arg(args))
    )
    codec, offsets = diffpose_codec(cfg)
    out = output_dir(args.out)
    summary = predict_input(model, codec, offsets, settings, args.input, out, args.detections, args.box,
                            args.det_score_thr, args.seed, whole_frame=args.whole_frame)  # fmt: skip
    line = f"{summary['frames']} frames, {summary['people']} people: {summary['json']}, {summary['video']}"
    # --out is the prediction folder here: no metrics.json in it
    report(argparse.Namespace(json=args.json), summary, f"{line} and the overlay frames in {summary['overlays']}")
    return 0


def add_commands(parser: argparse.ArgumentParser) -> None:
    """The DiffPose commands."""
    sub = parser.add_subparsers(dest="diffpose_command", metavar="COMMAND")
    shared.add_synth_command(
        sub,
        cmd_synth,
        "write synthetic PoseTrack18-layout videos (train + val)",
        "Renders short videos of articulated figures (capsule limbs, occlusions, motion blur, an unannotated "
        "bystander under an ignore region) and writes images/<split>/<video>/*.jpg and "
        "annotations/<split>/<video>.json (train: every frame labelled; val: every 4th).",
    )

    shared.add_train_command(
        sub,
        "diffpose",
        "Trains into WORK_DIR (checkpoints, final_weights.pth with raw and EMA weights, curves.png; with the "
        "config's val_dataloader a best checkpoint by PoseTrack Total AP). --resume continues from the newest "
        "checkpoint; multi-GPU: torchrun ... --launcher pytorch. Backbone weights: --cfg-options "
        "model.backbone.weights=PATH (a timm, MAE, ViTPose/MMPose or torchvision checkpoint, or our own; "
        "docs/pose.md, 'Pretrained backbones').",
        "a PoseTrack18/21 folder (annotations/<split>/*.json, images/<split>/<video>/)",
    )

    evaluate = shared.add_run_command(
        sub,
        "evaluate",
        "diffpose",
        cmd_evaluate,
        "PoseTrack AP (poseval's rules) of a split",
        "Crops every person of every labelled frame (ground-truth boxes, or --boxes DETECTIONS.json), denoises the "
        "heatmaps (DDIM, --steps x --samples, flip averaging), decodes them (DARK) and scores "
        "Head/Shou/Elb/Wri/Hip/Knee/Ank/Total AP by poseval's rules. With detections, as MMPose before poseval: "
        "boxes scored below --det-score-thr are dropped, each pose is scored box score x mean joint score above "
        "0.2, and OKS NMS (0.9) removes duplicate poses in each frame.",
        "a PoseTrack18/21 folder",
    )
    evaluate.add_argument(
        "--boxes",
        help="'gt' or a person detections JSON (COCO-style: image_id = the frame's id in the PoseTrack files, "
        "bbox [x, y, w, h], score, category_id 1; e.g. MMPose's posetrack18_val_human_detections.json) "
        "(default: the config's evaluate.boxes, gt)",
    )
    evaluate.add_argument(
        "--det-score-thr",
        type=finite_float,
        metavar="SCORE",
        help="drop detections scored below SCORE before pose estimation (MMPose's bbox_score_thr; default: the "
        "config's evaluate.min_box_score, 0.4)",
    )
    add_sampling_args(evaluate, **SAMPLING)
    add_output_args(evaluate, "also write predictions/<video>.json, metrics.json and crops.png here")

    predict = shared.add_run_command(
        sub,
        "predict",
        "diffpose",
        cmd_predict,
        "2D poses in a video or a folder of frames: PoseTrack18 JSON and an overlay video",
        "Writes OUT/<name>.json (PoseTrack18, one person per box), OUT/<name>.mp4 (skeletons drawn on the frames; "
        ".avi with Motion JPEG where OpenCV has no mp4v) and OUT/overlays/<name>/*.jpg. DiffPose is top-down: it "
        "needs person boxes, from any person detector through --detections (a COCO-style JSON list of "
        '{"image_id": frame number from 0, "bbox": [x, y, w, h], "score": s, "category_id": 1}), or one fixed '
        "--box x,y,w,h, or --whole-frame; without one of them predict refuses to guess.",
        "a video file or a folder of frames",
    )
    boxes = predict.add_mutually_exclusive_group()
    boxes.add_argument(
        "--detections",
        help="person detections JSON from any detector: a list of {image_id (the frame number from 0; or "
        "file_name), bbox [x, y, w, h], score, category_id 1}",
    )
    boxes.add_argument("--box", type=person_box, metavar="X,Y,W,H", help="one person box used on every frame")
    boxes.add_argument(
        "--whole-frame", action="store_true", help="the whole frame as the one person box (explicit opt-in)"
    )
    predict.add_argument(
        "--det-score-thr",
        "--min-score",
        type=finite_float,
        default=0.3,
        metavar="SCORE",
        help="drop detections scored below SCORE (MMPose's bbox_thr; default: 0.3)",
    )
    add_sampling_args(predict, **SAMPLING)
    add_output_args(predict, None)
