# ImDiffusion (Chen et al., VLDB 2024) on PSM at paper scale: imdiffusion_smd.py with PSM's 25 features and one
# model; scores reduced over features with max (released code for PSM); p0 = 0.02 as released.
_base_ = ["./imdiffusion_smd.py"]

model = dict(denoiser=dict(num_features=25))
train_dataloader = dict(dataset=dict(layout="psm"))
val_dataloader = dict(dataset=dict(layout="psm"))
detect = dict(oracle_p0=[0.02])
