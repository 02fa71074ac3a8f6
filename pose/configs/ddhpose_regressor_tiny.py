# The deterministic baseline of the DDHPose benchmark: the same tiny HSTDenoiser trained as a plain regressor
# (2D -> 3D, no noisy bones, t = 0) with the same loss, data and optimiser as ddhpose_tiny.
_base_ = ["./ddhpose_tiny.py"]

model = dict(deterministic=True)
evaluate = dict(hypotheses=(1,), steps=(1,))
