# ImDiffusion (Chen et al., VLDB 2024) on MSL at paper scale: imdiffusion_smd.py with one model for the concatenated
# channels (55 features); scores reduced over features with sum (released code for MSL); p0 = 0.02 as released.
_base_ = ["./imdiffusion_smd.py"]

model = dict(denoiser=dict(num_features=55))
train_dataloader = dict(dataset=dict(layout="msl"))
val_dataloader = dict(dataset=dict(layout="msl"))
detect = dict(reduce="sum", oracle_p0=[0.02])
