# DiffPose (Feng et al., ICCV'23) on PoseTrack18 at paper scale. The paper gives: top-down crops of the person box
# enlarged by 25%, a clip <I_{t-d} .. I_{t+d}>, a ViT backbone (ImageNet-pretrained), x0 heatmap diffusion with an
# L2 loss, 60 training epochs. What it does not give is our choice (docs/pose.md): 256 x 192 crops (ViT patch 16 ->
# a 16 x 12 feature grid, 64 x 48 heatmaps), d = 1 (3 frames, as DCPose and DiffusionPose), a ViT-B backbone whose
# weights you pass with --cfg-options model.backbone.weights=PATH (timm/MAE files: add model.backbone.cls_token=True;
# ViTPose files: model.backbone.patch_padding=2; docs/pose.md "Pretrained backbones"), a 4-layer STRL of width 256,
# a decoder of width 256 with one transformer block per LMSFI stage, a cosine schedule of T = 1000, and 5 DDIM
# steps x 1 sample + flip at inference. 60 epochs of PoseTrack18 train (~ 100k person crops) at batch 32 ~ 190k
# iterations.
custom_imports = dict(
    imports=["diffusekit.pose.diffpose", "diffusekit.pose.datasets", "diffusekit.pose.metrics"],
    allow_failed_imports=False,
)

input_size = (192, 256)  # (W, H)
heatmap_size = (48, 64)
frame_offsets = (-1, 0, 1)
model = dict(
    type="DiffPose",
    backbone=dict(type="vit", dim=768, depth=12, heads=12, weights=None),
    input_size=input_size,
    heatmap_size=heatmap_size,
    frames=len(frame_offsets),
    strl=dict(dim=256, depth=4, heads=8),
    decoder=dict(dim=256, heads=8, depth=1),
    num_steps=1000,
    schedule="cosine",
    signal_scale=1.0,
    val_sampling=dict(steps=5, samples=1, flip=True),  # validation during training
)
train_dataloader = dict(
    dataset=dict(
        type="PoseTrackClips",
        data_root="",
        split="train",
        input_size=input_size,
        heatmap_size=heatmap_size,
        sigma=2.0,
        frame_offsets=frame_offsets,
        augment=dict(flip=0.5, scale=0.35, rotation=45),
    ),
    batch_size=32,
    num_workers=4,
    sampler=dict(type="InfiniteSampler", shuffle=True),
    collate_fn=dict(type="default_collate"),
)
optim_wrapper = dict(optimizer=dict(type="AdamW", lr=5e-4, weight_decay=0.1), clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type="LinearLR", start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type="CosineAnnealingLR", by_epoch=False, begin=500, end=190_000, eta_min=1e-6),
]
train_cfg = dict(max_iters=190_000, val_interval=10_000)
# validation during training: PoseTrack AP of the val split (ground-truth boxes), a best checkpoint by Total AP
val_dataloader = dict(
    dataset=dict(train_dataloader["dataset"], split="val", boxes="gt", augment=None),
    batch_size=32,
    num_workers=4,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="default_collate"),
)
val_evaluator = dict(type="PoseTrackAPMetric")
val_cfg = dict()
best_metric = dict(key="posetrack/Total AP", rule="greater")
ema = dict(decay=0.9999)
checkpoint_interval = 5000
# evaluation: the val split with ground-truth boxes (oracle boxes; pass boxes=<detections.json> for the published
# protocol), 5 DDIM steps, 1 sample, flip averaging
evaluate = dict(split="val", boxes="gt", steps=5, samples=1, flip=True, sampler="ddim", batch_size=32)
