# CoDiff at CPU scale on attfuse_tiny.py's detector (our choices): 4 latent channels per map, a two-level UNet2D
# (16/32 channels, one block per level, no attention: 6 ms per evaluation on 2 CPU cores instead of 20 ms with
# 32/64 channels and attention), 8 warm-started DDIM steps from 30% of the schedule.
# Stage 2: train with load_from=<attfuse_tiny work dir>/final_weights.pth (the detector stays frozen);
# stage 3: model.stage=finetune with load_from=<stage-2 weights> (everything trains; lr 5e-4 in the benchmark).
_base_ = ["./attfuse_tiny.py"]

model = dict(
    type="CoDiff",
    stage="diffusion",
    latent_channels=4,
    agent_latent_channels=4,
    max_cav=3,
    denoiser=dict(channels=(16, 32), num_res_blocks=1, attention_levels=(), norm_groups=8),
    num_steps=1000,
    schedule="cosine",
    min_snr_gamma=5.0,
    steps=8,
    start=0.3,
    blend=0.5,
    recon_weight=1.0,
)
max_iters = 800
optim_wrapper = dict(optimizer=dict(type="Adam", lr=1e-3, weight_decay=0.0))
param_scheduler = [
    dict(type="LinearLR", start_factor=0.05, by_epoch=False, begin=0, end=50),
    dict(type="CosineAnnealingLR", by_epoch=False, begin=50, end=max_iters, eta_min=1e-5),
]
train_cfg = dict(max_iters=max_iters, val_interval=400)
