# The 2-D toy task of `diffusekit demo` and benchmarks/core_samplers.py: an MLP denoiser on an 8-mode Gaussian
# mixture, trained in seconds on a laptop CPU through the engine.
custom_imports = dict(imports=["diffusekit.core.toy"], allow_failed_imports=False)

max_iters = 3000
model = dict(type="ToyDiffusion", schedule="linear", num_train_steps=1000, prediction="v", hidden=256, depth=4)
train_dataloader = dict(
    dataset=dict(type="MixtureDataset", size=20_000, seed=0),
    batch_size=512,
    num_workers=0,
    sampler=dict(type="InfiniteSampler", shuffle=True),
    collate_fn=dict(type="default_collate"),
)
optim_wrapper = dict(optimizer=dict(type="AdamW", lr=2e-3, weight_decay=0.0))
param_scheduler = dict(type="CosineAnnealingLR", by_epoch=False, T_max=max_iters, eta_min=1e-5)
train_cfg = dict(max_iters=max_iters)
checkpoint_interval = 1000
ema = dict(momentum=0.005)
