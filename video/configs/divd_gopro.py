# DIVD at paper scale on GoPro (blur folder), for GPUs. The paper (arXiv 2412.00773) fixes neither the clip length,
# the window, the schedule nor the training length: every number below is ours (docs/video.md, "Our choices"). The
# denoiser is a pixel-space video U-Net of widths 64-128-256-256 with 2 res blocks per level and WTSA + MRPE (8 x 8
# windows across 5 frames) at the three lower levels; linear schedule, T = 1000, v-prediction; 256 x 256 crops of
# 5-frame clips (DSTNet trains on 256 crops, AdamW 2e-4 with cosine decay over 300k iterations).
custom_imports = dict(
    imports=["diffusekit.video.divd", "diffusekit.video.datasets", "diffusekit.video.metrics"],
    allow_failed_imports=False,
)

num_frames = 5
crop = 256
max_iters = 300_000
model = dict(
    type="DIVD",
    denoiser=dict(
        channels=(64, 128, 256, 256),
        num_res_blocks=2,
        attention_levels=(1, 2, 3),
        attention_heads=8,
        window=8,
        max_frames=num_frames,
        temporal=True,  # WTSA: attention across the frames of a window
        relative_position=True,  # MRPE: relative (dt, dy, dx) bias
    ),
    predictor=None,  # pure DIVD: diffusion on the sharp frames themselves
    num_steps=1000,
    schedule="linear",
    prediction="v",  # eps-prediction amplifies its error by sigma / alpha at high noise: few-step sampling fails
    val_sampling=dict(steps=20, samples=1, sampler="ddim"),
)
train_dataloader = dict(
    dataset=dict(
        type="VideoDeblurClips", data_root="", layout="gopro", split="train", num_frames=num_frames, crop=crop
    ),
    batch_size=2,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type="InfiniteSampler", shuffle=True),
    collate_fn=dict(type="default_collate"),
)
optim_wrapper = dict(optimizer=dict(type="AdamW", lr=2e-4, weight_decay=1e-4), clip_grad=dict(max_norm=1.0))
param_scheduler = [dict(type="CosineAnnealingLR", by_epoch=False, T_max=max_iters, eta_min=1e-7)]
# validation: the centre 256 x 256 crop of the middle clip of every test sequence, 20 DDIM steps, every 10k iterations
val_dataloader = dict(
    dataset=dict(train_dataloader["dataset"], split="test", augment=False),
    batch_size=2,
    num_workers=2,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="default_collate"),
)
val_evaluator = dict(type="VideoRestorationMetric", keys=("psnr", "ssim"))
val_cfg = dict()
best_metric = dict(key="video/psnr", rule="greater")
train_cfg = dict(max_iters=max_iters, val_interval=10_000)
ema = dict(decay=0.9999)
checkpoint_interval = 10_000
# evaluation of whole sequences: 20 DDIM steps, 1 sample, 5-frame windows overlapping by 2, 256-pixel tiles
evaluate = dict(
    layout="gopro",
    split="test",
    steps=20,
    samples=1,
    sampler="ddim",
    eta=0.0,
    clip_overlap=2,
    tile=256,
    overlap=32,
)
