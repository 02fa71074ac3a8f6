# A tiny DDHPose for the demo, tests and CPU benchmarks: 27-frame clips, the HSTDenoiser of width 64 and depth 4
# (4 heads; 0.3 M parameters) on the synthetic Human3.6M layout's noisy "det" 2D. About 0.05 s per iteration of
# batch 32 clips on one CPU core.
_base_ = ["./ddhpose_h36m.py"]

frames = 27
model = dict(frames=frames, denoiser=dict(dim=64, depth=4, heads=4, drop_path=0.0))
train_dataloader = dict(dataset=dict(frames=frames, stride=9, source="det"), batch_size=32, num_workers=0)
optim_wrapper = dict(optimizer=dict(lr=1e-3, weight_decay=0.01), clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type="LinearLR", start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type="CosineAnnealingLR", by_epoch=False, begin=50, end=1500, eta_min=1e-5),
]
train_cfg = dict(max_iters=1500)
ema = dict(decay=0.995)
checkpoint_interval = 500
evaluate = dict(hypotheses=(1, 5), steps=(1, 5), batch_size=32)
