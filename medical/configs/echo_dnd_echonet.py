# Echo-DND on EchoNet-Dynamic: the CAMUS paper configuration on the traced ED/ES frames (112 x 112 videos resized to
# 256 x 256 as in the paper), the official TRAIN / VAL / TEST split; validation on VAL every 5k iterations.
_base_ = ["./echo_dnd_camus.py"]

train_dataloader = dict(dataset=dict(layout="echonet", split="TRAIN"))
val_dataloader = dict(dataset=dict(layout="echonet", split="VAL"))  # 1,288 videos, their traced ED and ES frames
evaluate = dict(split="TEST")
