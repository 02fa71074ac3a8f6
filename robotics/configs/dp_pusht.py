# Diffusion Policy (Chi et al., RSS 2023), state-based Push-T at paper scale (the official lowdim CNN config): the 1-D
# conditional U-Net with down_dims 256-512-1024, step embedding 256, kernel 5, GroupNorm 8, FiLM scale and bias; the
# observation history (n_obs = 2) as global conditioning; horizon 16, 8 actions executed per chunk; DDPM with 100
# steps on squaredcos_cap_v2 (the core's "cosine"), eps prediction, x0 clipped to [-1, 1]; AdamW 1e-4, betas
# (0.95, 0.999), weight decay 1e-6, 500 warm-up iterations then cosine; EMA; batch 256. DP trains 4500 epochs of
# ~25k windows (~100 iterations per epoch) = 450k iterations. Our observation is gym-pusht's (see docs/robotics.md).
custom_imports = dict(
    imports=["diffusekit.robotics.policy", "diffusekit.robotics.dataset", "diffusekit.robotics.metrics"],
    allow_failed_imports=False,
)

task = "pusht"
horizon, n_obs, n_action = 16, 2, 8
model = dict(
    type="DiffusionPolicy",
    obs_dim=None,  # filled from the replay buffer by `train`
    action_dim=None,
    horizon=horizon,
    n_obs=n_obs,
    n_action=n_action,
    unet=dict(down_dims=(256, 512, 1024), step_embed_dim=256, kernel=5, groups=8, film_scale=True),
    num_steps=100,
    schedule="cosine",
    normalizer=None,  # min-max statistics of the replay buffer, filled by `train`
    gripper_dims=(),
)
windows = dict(type="ActionWindows", data_root="", horizon=horizon, n_obs=n_obs, n_action=n_action, gripper_scale=1.0)
train_dataloader = dict(
    dataset=dict(windows, split="train", val_episodes=0.1),
    batch_size=256,
    num_workers=2,
    sampler=dict(type="InfiniteSampler", shuffle=True),
    collate_fn=dict(type="default_collate"),
)
optim_wrapper = dict(optimizer=dict(type="AdamW", lr=1e-4, betas=(0.95, 0.999), weight_decay=1e-6))
param_scheduler = [
    dict(type="LinearLR", start_factor=0.002, by_epoch=False, begin=0, end=500),
    dict(type="CosineAnnealingLR", by_epoch=False, begin=500, end=450_000, eta_min=0.0),
]
# validation: the last 10% of the demonstration episodes are held out (the normaliser is fitted on the others); every
# n_action-th window of them is sampled with DDIM-10 and scored by the MSE of its executed actions (lower is better);
# the best checkpoint by that error is kept (best_val_action_mse_iter_N.pth). See docs/robotics.md.
val_dataloader = dict(dataset=dict(windows, split="val", val_episodes=0.1, stride=n_action), batch_size=256,
                      num_workers=0, sampler=dict(type="DefaultSampler", shuffle=False),
                      collate_fn=dict(type="default_collate"))  # fmt: skip
val_evaluator, val_cfg = dict(type="ActionChunkMSE"), dict()
best_metric = dict(key="val/action_mse", rule="less")
train_cfg = dict(max_iters=450_000, val_interval=10_000)
ema = dict(decay=0.999)
checkpoint_interval = 10_000
# evaluation: 50 seeded episodes from 100000 (DP's protocol), the three inference modes with the same checkpoint
evaluate = dict(episodes=50, seed=100000, modes=("ddpm", "ddim", "rti"), ddim_steps=10, rti_steps=(2, 1, 0),
                rti_mode="consistent", gripper="clip")  # fmt: skip
