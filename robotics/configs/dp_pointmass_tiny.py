# The built-in point-mass task (pass an obstacle on either side, close a binary gripper at the goal): a small
# Diffusion Policy that trains in about a minute on one CPU core. The gripper (action dim 2) is executed as sign(.);
# RTI resets it to +-1 in the kept chunk (RTI-DP-clip).
_base_ = ["./dp_pusht.py"]

task = "pointmass"
model = dict(unet=dict(down_dims=(32, 64, 128), step_embed_dim=32), gripper_dims=(2,))
train_dataloader = dict(batch_size=64, num_workers=0)
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type="LinearLR", start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type="CosineAnnealingLR", by_epoch=False, begin=50, end=1500, eta_min=1e-5),
]
train_cfg = dict(max_iters=1500, val_interval=500)
ema = dict(decay=0.99)
checkpoint_interval = 500
evaluate = dict(episodes=20, seed=0)
