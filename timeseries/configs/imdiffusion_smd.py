# ImDiffusion (Chen et al., VLDB 2024) on SMD at paper scale: one model per machine, 50-step quad schedule
# (1e-4..0.5), window 100, 4 residual layers of 64 channels with 8 heads, Adam 1e-3 (wd 1e-6), batch 12,
# x0.1 at 75% and 90% of training; scores reduced over features with max (released code for SMD).
custom_imports = dict(
    imports=[
        "diffusekit.timeseries.imdiffusion",
        "diffusekit.timeseries.models",
        "diffusekit.timeseries.datasets",
        "diffusekit.timeseries.metrics",
    ],
    allow_failed_imports=False,
)

window = 100
max_iters = 20_000
model = dict(
    type="ImDiffusion",
    denoiser=dict(type="ImDiffusionNet", num_features=38, channels=64, layers=4, heads=8),
    num_steps=50,
    schedule="quad",
    beta_start=1e-4,
    beta_end=0.5,
    train_blocks=10,
    infer_blocks=4,
    value_scale=20.0,
)
train_dataloader = dict(
    dataset=dict(type="SeriesWindows", data_root="", layout="smd", window=window, stride=1, val_fraction=0.1),
    batch_size=12,
    num_workers=0,
    sampler=dict(type="InfiniteSampler", shuffle=True),
    collate_fn=dict(type="default_collate"),
)
# validation during training: the imputation error (mse, mae) of the final sample on the held-out train tail (the
# part calibration uses; never trained on), in non-overlapping windows; the best checkpoint keeps the lowest mse.
# `diffusekit timeseries train` gives it the training dataset's data, layout, machine, window and val_fraction.
val_dataloader = dict(
    train_dataloader,
    dataset=dict(train_dataloader["dataset"], stride=window, split="val"),
    batch_size=32,
    sampler=dict(type="DefaultSampler", shuffle=False),
)
val_evaluator = dict(type="ImputationMetric")
val_cfg = dict()
best_metric = dict(key="imputation/mse", rule="less")
optim_wrapper = dict(optimizer=dict(type="Adam", lr=1e-3, weight_decay=1e-6))
param_scheduler = dict(
    type="MultiStepLR", by_epoch=False, milestones=[int(0.75 * max_iters), int(0.9 * max_iters)], gamma=0.1
)
train_cfg = dict(max_iters=max_iters, val_interval=2000)
checkpoint_interval = 2000
# detection: score reduction over features, voting steps (step-from-the-end rows), deployable p0 and xi (None =
# majority), the oracle's p0 grid, the test stride (window // 2) and the R-AUC/VUS window
detect = dict(
    reduce="max",
    steps=[0, 3, 6, 9, 12, 15, 18, 21, 24, 27],
    p0=0.02,
    xi=None,
    oracle_p0=[0.0005 * i for i in range(1, 80)],
    test_stride=50,
    metric_window=100,
)
