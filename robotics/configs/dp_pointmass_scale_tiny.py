# RTI-DP-scale on the point-mass task: the gripper column of the demonstrations is divided by 10 and passed through
# the normaliser, so the model is retrained on +-0.1 gripper values; RTI keeps the gripper entries of the kept chunk
# as they are (executed as sign(.)).
_base_ = ["./dp_pointmass_tiny.py"]

train_dataloader = dict(dataset=dict(gripper_scale=10.0))
val_dataloader = dict(dataset=dict(gripper_scale=10.0))
evaluate = dict(gripper="scale")
