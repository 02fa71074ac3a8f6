# The CPU-scale attention-fusion detector for `diffusekit perception3d synth` data (our choices): range
# [-48, 48] x [-32, 32] x [-3, 1] m, 0.8 m pillars (120 x 80 grid, 60 x 40 anchors cells), 16 pillar channels,
# one basic block per stage with 16/32/64 filters, 32 channels per up-sampled scale, 64 fused channels, 3 agents.
_base_ = ["./attfuse_opv2v.py"]

point_cloud_range = (-48.0, -32.0, -3.0, 48.0, 32.0, 1.0)
voxel_size = (0.8, 0.8, 4.0)
max_iters = 1500
model = dict(
    point_cloud_range=point_cloud_range,
    voxel_size=voxel_size,
    max_points=16,
    pillar_channels=16,
    backbone=dict(layers=(1, 1, 1), filters=(16, 32, 64), upsample_filters=32, out_channels=64),
)
_geometry = dict(point_cloud_range=point_cloud_range, voxel_size=voxel_size, max_points=16, max_voxels=None, max_cav=3)
train_dataloader = dict(dataset=dict(**_geometry), batch_size=2, num_workers=0, persistent_workers=False)
optim_wrapper = dict(optimizer=dict(type="Adam", lr=2e-3, weight_decay=1e-4))
param_scheduler = [
    dict(type="LinearLR", start_factor=0.05, by_epoch=False, begin=0, end=50),
    dict(type="CosineAnnealingLR", by_epoch=False, begin=50, end=max_iters, eta_min=1e-5),
]
val_dataloader = dict(dataset=dict(**_geometry), num_workers=0, persistent_workers=False)
train_cfg = dict(max_iters=max_iters, val_interval=500)
checkpoint_interval = 500
evaluate = dict(max_voxels=None)
