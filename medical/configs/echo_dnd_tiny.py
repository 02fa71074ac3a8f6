# A tiny Echo-DND for the demo, tests and CPU benchmarks: 64 x 64, U-Nets of widths 16-32-64-128 with one res block
# and attention at the lowest level (8 x 8), an HRNet-W4 MFCM with one block per branch (features 4 x 4 = 16, the
# U-Nets' first width); the released schedule (linear, T = 1000) and loss weights. ~0.5 s per iteration on one core.
_base_ = ["./echo_dnd_camus.py"]

size = 64
max_iters = 600
model = dict(
    unet=dict(channels=(16, 32, 64, 128), num_res_blocks=1, attention_levels=(3,), attention_heads=4, norm_groups=8),
    mfcm=dict(width=4, blocks=1, stem=8, bottlenecks=1),
    val_sampling=dict(steps=5),
)
train_dataloader = dict(dataset=dict(size=size), batch_size=8)
# a cheap validation: the first 8 frames of the validation split, 5 DDIM steps x 1 sample, every 200 iterations
val_dataloader = dict(dataset=dict(size=size, max_frames=8))
val_evaluator = dict(keys=("dice", "iou"))  # and pooled Dice: overlap only, so the curves share one scale
optim_wrapper = dict(optimizer=dict(lr=1e-3))
train_cfg = dict(max_iters=max_iters, val_interval=200)
ema = dict(decay=0.995)
checkpoint_interval = 200
