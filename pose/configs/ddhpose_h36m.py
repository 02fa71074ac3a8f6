# DDHPose (Cai et al., AAAI'24) on Human3.6M at paper scale, as the official code trains it: CPN 2D detections
# (data_2d_h36m_cpn_ft_h36m_dbb), 243-frame clips, the HSTDenoiser of width 512 and depth 8 (8 heads, MLP ratio 2,
# drop path 0.1; 36.7 M parameters), cosine schedule over T = 1000, loss weights lambda_l = lambda_d = 1, AdamW
# lr 1e-4 and weight decay 0.1, lr x 0.993 per epoch, 400 epochs of batch 4 clips with flip augmentation.
# Non-overlapping 243-frame chunks of S1/S5/S6/S7/S8 x 4 cameras (~1.56 M frames) ~ 6,400 clips ~ 1,600
# iterations per epoch -> 640k iterations. Evaluation: H = 20 hypotheses, K = 10 DDIM steps, flip averaging.
custom_imports = dict(
    imports=["diffusekit.pose.ddhpose", "diffusekit.pose.lifting", "diffusekit.pose.metrics3d"],
    allow_failed_imports=False,
)

frames = 243
iters_per_epoch = 1600
model = dict(
    type="DDHPose",
    skeleton="h36m",
    frames=frames,
    denoiser=dict(dim=512, depth=8, heads=8, mlp_ratio=2.0, drop_path=0.1, hrst=True, hrtt=True, depth_embedding=True),
    num_steps=1000,
    schedule="cosine",
    length_weight=1.0,
    direction_weight=1.0,
    val_sampling=dict(hypotheses=1, steps=1, flip=True),  # validation during training
)
train_dataloader = dict(
    dataset=dict(
        type="LiftingClips",
        data_root="",
        split="train",
        frames=frames,
        stride=frames,
        dataset="h36m",
        source="cpn_ft_h36m_dbb",
        flip=0.5,
    ),
    batch_size=4,
    num_workers=2,
    sampler=dict(type="InfiniteSampler", shuffle=True),
    collate_fn=dict(type="default_collate"),
)
optim_wrapper = dict(optimizer=dict(type="AdamW", lr=1e-4, weight_decay=0.1))
param_scheduler = [dict(type="ExponentialLR", gamma=0.993 ** (1 / iters_per_epoch), by_epoch=False)]
train_cfg = dict(max_iters=400 * iters_per_epoch, val_interval=10 * iters_per_epoch)
# validation during training: P-Agg MPJPE of S9 / S11 tiled by clips as the evaluation does, a best checkpoint by it
val_dataloader = dict(
    dataset=dict(train_dataloader["dataset"], split="test", stride=None, flip=0.0, tiling=True),
    batch_size=4,
    num_workers=2,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="default_collate"),
)
val_evaluator = dict(type="LiftingMPJPEMetric")
val_cfg = dict()
best_metric = dict(key="lifting/MPJPE", rule="less")
checkpoint_interval = 10 * iters_per_epoch
# evaluation: the test subjects S9 and S11, every frame, H hypotheses x K DDIM steps (the paper's headline setting)
evaluate = dict(split="test", hypotheses=(1, 20), steps=(1, 10), flip=True, batch_size=4)
