"""Run by test_engine.py under ``torchrun --nproc_per_node 2``: CPU (gloo) DDP training, then a resume.

Each rank saves its final weights to ``OUT/rank{r}_{stage}.pth`` so that the test can compare the ranks.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import torch
import torch.distributed as dist

print("ddp-script-started", flush=True)

from engine_fixtures import tiny_config  # noqa: E402  (this script's folder is on sys.path)

from diffusekit.core.engine import train  # noqa: E402

out = Path(sys.argv[1])
work_dir = out / "work"
model = train(tiny_config(6, checkpoint_interval=3), work_dir=work_dir, launcher="pytorch")
torch.save(model.state_dict(), out / f"rank{dist.get_rank()}_first.pth")
model = train(tiny_config(8, checkpoint_interval=3), work_dir=work_dir, launcher="pytorch", resume=True)
torch.save(model.state_dict(), out / f"rank{dist.get_rank()}_resumed.pth")
del model
gc.collect()  # free the runners' DDP wrappers while their process group still exists
dist.barrier()
dist.destroy_process_group()
