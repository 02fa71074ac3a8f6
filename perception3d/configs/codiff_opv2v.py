# CoDiff on OPV2V: the attention-fusion detector of attfuse_opv2v.py plus the latent diffusion refinement. From the
# released code: the fused 256-channel map compressed to 8 latent channels (OpenCOOD NaiveCompressor), each agent's
# 64-channel pillar map to 8 channels at half resolution, the condition concatenated on the channel axis, min-SNR
# (gamma 5) eps-prediction, 8 sampling steps started from the fused latent, output 0.5 fused + 0.5 refined. The
# released denoiser is a 2-D U-Net of width 104 with multipliers 1, 2, 4, 8 (linear attention per level, full attention
# in the middle); here the core UNet2D with the same widths and full attention at the lowest level. Discrete cosine
# schedule with T = 1000 instead of the continuous log-SNR one (docs/perception3d.md). Train in stages:
#   1. attfuse_opv2v.py (or this file with model.stage=detector)
#   2. this file (stage "diffusion", detector frozen) with load_from=<stage-1 work dir>/final_weights.pth
#   3. optionally model.stage=finetune with load_from=<stage-2 weights>
_base_ = ["./attfuse_opv2v.py"]

model = dict(  # merged into the base detector's model dict
    type="CoDiff",
    stage="diffusion",
    latent_channels=8,
    agent_latent_channels=8,
    max_cav=5,
    denoiser=dict(channels=(104, 208, 416, 832), num_res_blocks=2, attention_levels=(3,), attention_heads=4),
    num_steps=1000,
    schedule="cosine",
    min_snr_gamma=5.0,
    steps=8,
    start=0.3,
    blend=0.5,
    recon_weight=1.0,
)
max_iters = 17_000  # stage 2: about 10 epochs (ours)
optim_wrapper = dict(optimizer=dict(type="Adam", lr=2e-4, weight_decay=0.0))
param_scheduler = [dict(type="CosineAnnealingLR", by_epoch=False, T_max=max_iters, eta_min=1e-6)]
train_cfg = dict(max_iters=max_iters)
