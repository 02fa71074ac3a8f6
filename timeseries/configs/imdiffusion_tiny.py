# A tiny ImDiffusion for the demo and tests: trains in about a minute on 2 CPU cores on synthetic SMD-layout data.
# Same method as imdiffusion_smd.py (50-step quad schedule, grating masks), a small network and short windows.
custom_imports = dict(
    imports=["diffusekit.timeseries.imdiffusion", "diffusekit.timeseries.models", "diffusekit.timeseries.datasets"],
    allow_failed_imports=False,
)

window = 32
max_iters = 300
model = dict(
    type="ImDiffusion",
    denoiser=dict(
        type="ImDiffusionNet",
        num_features=38,
        channels=16,
        layers=2,
        heads=2,
        ffn_dim=32,
        step_embed_dim=32,
        time_embed_dim=32,
        feature_embed_dim=8,
    ),
    num_steps=50,
    schedule="quad",
    beta_start=1e-4,
    beta_end=0.5,
    train_blocks=4,
    infer_blocks=4,
    value_scale=20.0,
)
train_dataloader = dict(
    dataset=dict(type="SeriesWindows", data_root="", layout="smd", window=window, stride=1, val_fraction=0.1),
    batch_size=16,
    num_workers=0,
    sampler=dict(type="InfiniteSampler", shuffle=True),
    collate_fn=dict(type="default_collate"),
)
optim_wrapper = dict(optimizer=dict(type="Adam", lr=1e-3, weight_decay=1e-6))
param_scheduler = dict(
    type="MultiStepLR", by_epoch=False, milestones=[int(0.75 * max_iters), int(0.9 * max_iters)], gamma=0.1
)
train_cfg = dict(max_iters=max_iters)
checkpoint_interval = 1000
detect = dict(
    reduce="max",
    steps=[0, 3, 6, 9, 12, 15, 18, 21, 24, 27],
    p0=0.02,
    xi=None,
    oracle_p0=[0.005, 0.01, 0.02, 0.05],
    test_stride=16,
    metric_window=32,
)
