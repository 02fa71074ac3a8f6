# The single-agent PointPillars of attfuse_tiny.py (no fusion): trained on the ego's LiDAR alone; `evaluate` with
# --fusion late runs it on every agent and merges the boxes in the ego frame (OpenCOOD's late fusion).
_base_ = ["./attfuse_tiny.py"]

model = dict(fusion="none")
train_dataloader = dict(dataset=dict(max_cav=1))
