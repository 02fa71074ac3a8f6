# Echo-DND on EchoNet-Dynamic: the CAMUS paper configuration on the traced ED/ES frames (112 x 112 videos resized to
# 256 x 256 as in the paper), the official TRAIN / VAL / TEST split.
_base_ = ["./echo_dnd_camus.py"]

train_dataloader = dict(dataset=dict(layout="echonet", split="TRAIN"))
evaluate = dict(split="TEST")
