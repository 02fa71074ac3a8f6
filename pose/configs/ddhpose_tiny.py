# A tiny DDHPose for the demo, tests and CPU benchmarks: 27-frame clips, the HSTDenoiser of width 64 and depth 4
# (4 heads; 0.3 M parameters) on the synthetic Human3.6M layout's noisy "det" 2D. Batches of 4 clips, as the paper
# trains (there of 243 frames): about 0.07 s per iteration on one CPU core, 6,000 iterations in ~7 minutes. Larger
# batches are much worse per CPU minute: after 20 minutes, batch 32 (2k iterations) ends at 76 mm P-Agg MPJPE,
# batch 8 (7.4k) at 44 mm, batch 4 (15k) at 35 mm (docs/pose3d.md, section 8).
_base_ = ["./ddhpose_h36m.py"]

frames = 27
iters = 6000
model = dict(frames=frames, denoiser=dict(dim=64, depth=4, heads=4, drop_path=0.0))
train_dataloader = dict(dataset=dict(frames=frames, stride=9, source="det"), batch_size=4, num_workers=0)
optim_wrapper = dict(optimizer=dict(lr=1e-3, weight_decay=0.01), clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type="LinearLR", start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type="CosineAnnealingLR", by_epoch=False, begin=50, end=iters, eta_min=1e-5),
]
train_cfg = dict(max_iters=iters, val_interval=2000)
# a cheap validation: S9 only (all cameras), one hypothesis, one step
val_dataloader = dict(dataset=dict(frames=frames, source="det", subjects=("S9",)), batch_size=64, num_workers=0)
ema = dict(decay=0.995)
checkpoint_interval = 2000
evaluate = dict(hypotheses=(1, 5), steps=(1, 5), batch_size=32)
