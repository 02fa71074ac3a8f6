# The MONAI U-Net + DiceCE baseline at the tiny Echo-DND's input size and budget.
_base_ = ["./echo_dnd_tiny.py"]

model = dict(_delete_=True, type="UNetBaseline", image_channels=1, channels=(16, 32, 64, 128), num_res_units=2)
custom_imports = dict(
    imports=["diffusekit.medical.baseline", "diffusekit.medical.datasets", "diffusekit.medical.metrics"]
)
