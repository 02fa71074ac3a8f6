# The CPU-scale DIVD: predict-and-refine (DvSR, CVPR 2022): a small deterministic video U-Net predicts the sharp
# clip and the diffusion denoiser (same WTSA + MRPE design) refines its residual, so a few DDIM steps suffice.
# 3-frame clips, 64 x 64 crops, widths 16-32-64, windows of 8 x 8 across the 3 frames at the two lower levels.
# Trains in minutes on 2 CPU cores on `diffusekit video synth` data (our choices; not from the paper).
_base_ = ["./divd_gopro.py"]

num_frames = 3
crop = 64
max_iters = 1500
_net = dict(
    channels=(16, 32, 64),
    num_res_blocks=1,
    attention_levels=(1, 2),
    attention_heads=4,
    window=8,
    max_frames=num_frames,
    temporal=True,
    relative_position=True,
)
model = dict(
    denoiser=_net,
    predictor=dict(_delete_=True, **_net),
    residual_scale=0.1,
    val_sampling=dict(steps=5, samples=1, sampler="ddim"),
)
train_dataloader = dict(
    dataset=dict(num_frames=num_frames, crop=crop), batch_size=4, num_workers=0, persistent_workers=False
)
optim_wrapper = dict(optimizer=dict(lr=1e-3, weight_decay=0.0))
param_scheduler = [
    dict(type="LinearLR", start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type="CosineAnnealingLR", by_epoch=False, begin=50, end=max_iters, eta_min=1e-5),
]
val_dataloader = dict(
    dataset=dict(num_frames=num_frames, crop=crop), batch_size=2, num_workers=0, persistent_workers=False
)
train_cfg = dict(max_iters=max_iters, val_interval=500)
ema = dict(decay=0.995)
checkpoint_interval = 500
evaluate = dict(steps=5, samples=1, clip_overlap=1, tile=None, overlap=16)
