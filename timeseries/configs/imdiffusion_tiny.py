# A tiny ImDiffusion for the demo and tests: trains in seconds on 2 CPU cores on synthetic SMD-layout data.
# imdiffusion_smd.py (50-step quad schedule, grating masks, the same voting) with a small network and short windows.
_base_ = ["./imdiffusion_smd.py"]

window = 32
max_iters = 300
model = dict(
    denoiser=dict(
        channels=16, layers=2, heads=2, ffn_dim=32, step_embed_dim=32, time_embed_dim=32, feature_embed_dim=8
    ),
    train_blocks=4,
)
train_dataloader = dict(dataset=dict(window=window), batch_size=16)
val_dataloader = dict(dataset=dict(window=window, stride=window))
param_scheduler = dict(milestones=[int(0.75 * max_iters), int(0.9 * max_iters)])
train_cfg = dict(max_iters=max_iters, val_interval=100)  # validation: a few windows of the train tail
checkpoint_interval = 1000
detect = dict(oracle_p0=[0.005, 0.01, 0.02, 0.05], test_stride=16, metric_window=32)
