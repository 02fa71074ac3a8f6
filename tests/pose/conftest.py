"""Shared fixtures: one small synthetic PoseTrack18 dataset per test session (written in ~2 s)."""

from __future__ import annotations

import pytest
import torch

from diffusekit.pose.synthetic import write_posetrack


@pytest.fixture(scope="session")
def posetrack_root(tmp_path_factory):
    return write_posetrack(tmp_path_factory.mktemp("posetrack"), "small", seed=0)


@pytest.fixture(autouse=True)
def one_thread():
    """Small models run faster on one thread, and it avoids OpenMP stalls on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
