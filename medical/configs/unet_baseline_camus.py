# The MONAI U-Net + DiceCE baseline at the paper's input size (256 x 256).
_base_ = ["./echo_dnd_camus.py"]

model = dict(_delete_=True, type="UNetBaseline", image_channels=1, channels=(32, 64, 128, 256, 512), num_res_units=2)
custom_imports = dict(
    imports=["diffusekit.medical.baseline", "diffusekit.medical.datasets", "diffusekit.medical.metrics"]
)
optim_wrapper = dict(optimizer=dict(lr=1e-3))
