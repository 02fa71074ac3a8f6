# Echo-DND (Rahman et al. 2025) on CAMUS at paper scale: 256 x 256, two guided-diffusion U-Nets of widths
# 128-128-256-256-512-512 (2 res blocks, attention at 16 x 16 and 8 x 8, 4 heads), HRNet-W32 MFCM, linear schedule
# with T = 1000, AdamW 1e-4 without weight decay, EMA 0.9999, released loss weights. Released training uses batch 1
# (README example 4) and saves every 10k steps; MedSegDiff reports ~100k steps to converge.
custom_imports = dict(
    imports=["diffusekit.medical.echo_dnd", "diffusekit.medical.datasets", "diffusekit.medical.metrics"],
    allow_failed_imports=False,
)

size = 256
max_iters = 100_000
model = dict(
    type="EchoDND",
    image_channels=1,
    unet=dict(
        channels=(128, 128, 256, 256, 512, 512),
        num_res_blocks=2,
        attention_levels=(4, 5),
        attention_heads=4,
        dropout=0.0,
    ),
    mfcm=dict(width=32, blocks=4, stem=64, bottlenecks=4),
    num_steps=1000,
    schedule="linear",
    # validation during training: 10 DDIM steps, one sample per image (evaluate uses the `evaluate` block)
    val_sampling=dict(steps=10, samples=1, gaussian_sampler="ddim", bernoulli_sampler="ddim"),
)
train_dataloader = dict(
    dataset=dict(type="EchoSegmentation", data_root="", layout="camus", split="training", size=size),
    batch_size=4,
    num_workers=0,
    sampler=dict(type="InfiniteSampler", shuffle=True),
    collate_fn=dict(type="default_collate"),
)
optim_wrapper = dict(optimizer=dict(type="AdamW", lr=1e-4, weight_decay=0.0))
# validation on the official validation split (50 patients, ED/ES of 2CH and 4CH) every 5k iterations; the best
# checkpoint by validation Dice is kept beside the regular ones (best_seg_dice_iter_N.pth)
val_dataloader = dict(
    dataset=dict(train_dataloader["dataset"], split="validation"),
    batch_size=8,
    sampler=dict(type="DefaultSampler", shuffle=False),
    **{key: train_dataloader[key] for key in ("num_workers", "collate_fn")},
)
val_evaluator = dict(type="SegmentationMetric")
val_cfg = dict()
best_metric = dict(key="seg/dice", rule="greater")
train_cfg = dict(max_iters=max_iters, val_interval=5000)
ema = dict(decay=0.9999)
checkpoint_interval = 10_000
# inference: fast samplers by default (the released code only has the 1000-step ancestral loop, steps=None here)
evaluate = dict(
    split="testing",
    steps=20,
    samples=5,
    gaussian_sampler="ddim",
    bernoulli_sampler="ddim",
    aggregation="mean",
    threshold=0.5,
    opening_radius=3,
)
