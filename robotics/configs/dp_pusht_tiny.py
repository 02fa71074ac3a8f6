# A small Diffusion Policy for Push-T on a CPU: the same U-Net with down_dims 64-128-256 and step embedding 64,
# batch 64, 4000 iterations with a short warm-up.
_base_ = ["./dp_pusht.py"]

model = dict(unet=dict(down_dims=(64, 128, 256), step_embed_dim=64))
train_dataloader = dict(batch_size=64, num_workers=0)
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type="LinearLR", start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type="CosineAnnealingLR", by_epoch=False, begin=100, end=4000, eta_min=1e-5),
]
train_cfg = dict(max_iters=4000, val_interval=1000)
ema = dict(decay=0.995)
checkpoint_interval = 1000
evaluate = dict(episodes=20)
