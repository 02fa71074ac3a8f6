# A tiny DiffPose for the demo, tests and CPU benchmarks: 128 x 96 crops (feature grid 8 x 6, heatmaps 32 x 24), a
# stride-16 conv backbone of widths 16-32-48-64 trained from scratch, STRL width 64 with one transformer layer, a
# decoder of width 48. About 0.15 s per iteration of batch 16 on one CPU core.
_base_ = ["./diffpose_posetrack18.py"]

input_size = (96, 128)
heatmap_size = (24, 32)
model = dict(
    backbone=dict(_delete_=True, type="conv", channels=(16, 32, 48, 64)),
    input_size=input_size,
    heatmap_size=heatmap_size,
    strl=dict(dim=64, depth=1, heads=4),
    decoder=dict(dim=48, heads=4, depth=1),
    val_sampling=dict(steps=1, samples=1, flip=False),
)
train_dataloader = dict(
    dataset=dict(input_size=input_size, heatmap_size=heatmap_size, augment=dict(flip=0.5, scale=0.25, rotation=20)),
    batch_size=16,
    num_workers=0,
)
optim_wrapper = dict(optimizer=dict(lr=1e-3, weight_decay=1e-4))
param_scheduler = [
    dict(type="LinearLR", start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type="CosineAnnealingLR", by_epoch=False, begin=50, end=600, eta_min=1e-5),
]
train_cfg = dict(max_iters=600, val_interval=200)
# a cheap validation: the first 3 val videos, one DDIM step, no flip
val_dataloader = dict(
    dataset=dict(input_size=input_size, heatmap_size=heatmap_size, max_videos=3), batch_size=64, num_workers=0
)
ema = dict(decay=0.995)
checkpoint_interval = 200
evaluate = dict(batch_size=64)
