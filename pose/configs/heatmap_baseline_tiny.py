# The plain heatmap-regression baseline at the size of diffpose_tiny: the same conv backbone and STRL on the same
# 3-frame clips, a SimpleBaseline head (two deconvolutions) and weighted MSE; the same optimiser and schedule.
_base_ = ["./diffpose_tiny.py"]

custom_imports = dict(
    imports=["diffusekit.pose.baseline", "diffusekit.pose.datasets", "diffusekit.pose.metrics"],
    allow_failed_imports=False,
)
model = dict(
    _delete_=True,
    type="HeatmapBaseline",
    backbone=dict(type="conv", channels=(16, 32, 48, 64)),
    input_size={{_base_.input_size}},
    heatmap_size={{_base_.heatmap_size}},
    frames=3,
    strl=dict(dim=64, depth=1, heads=4),
    head_channels=48,
)
