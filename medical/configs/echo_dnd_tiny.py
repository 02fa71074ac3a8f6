# A tiny Echo-DND for the demo, tests and CPU benchmarks: 64 x 64, U-Nets of widths 16-32-64-128 with one res block
# and attention at the lowest level (8 x 8), an HRNet-W4 MFCM with one block per branch (features 4 x 4 = 16, the
# U-Nets' first width); the released schedule (linear, T = 1000) and loss weights. ~0.5 s per iteration on one core.
_base_ = ["./echo_dnd_camus.py"]

size = 64
max_iters = 600
model = dict(
    unet=dict(channels=(16, 32, 64, 128), num_res_blocks=1, attention_levels=(3,), attention_heads=4, norm_groups=8),
    mfcm=dict(width=4, blocks=1, stem=8, bottlenecks=1),
)
train_dataloader = dict(dataset=dict(size=size), batch_size=8)
optim_wrapper = dict(optimizer=dict(lr=1e-3))
train_cfg = dict(max_iters=max_iters)
ema = dict(decay=0.995)
checkpoint_interval = 200
