"""diffusekit.medical: echocardiography segmentation (Echo-DND) on CAMUS and EchoNet-Dynamic.

Data: `camus` (NIfTI 2023 and legacy MHD releases), `echonet` (FileList, VolumeTracings, AVI), `synthetic` (writes
both layouts), `datasets` (torch datasets for the runner). Evaluation: `metrics` (MONAI Dice / IoU / HD95 / MSD in mm
with an explicit empty-mask policy, pooled Dice) and `cardiac` (Simpson's biplane volumes and EF).
"""
