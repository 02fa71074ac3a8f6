# The benchmark's "same network, no diffusion" baseline: divd_tiny's video U-Net (WTSA + MRPE) trained as a
# deterministic regressor (sharp = blurry + net(blurry), L1), with divd_tiny's data, optimiser and schedule.
_base_ = ["./divd_tiny.py"]

model = dict(
    _delete_=True,
    type="DeterministicDeblur",
    network={{_base_._net}},
)
