# ImDiffusion (Chen et al., VLDB 2024) on SMAP at paper scale: imdiffusion_smd.py with one model for the concatenated
# channels (25 features, P-2 dropped); scores reduced over features with sum (released code for SMAP); p0 = 0.02.
_base_ = ["./imdiffusion_smd.py"]

model = dict(denoiser=dict(num_features=25))
train_dataloader = dict(dataset=dict(layout="smap"))
val_dataloader = dict(dataset=dict(layout="smap"))
detect = dict(reduce="sum", oracle_p0=[0.02])
