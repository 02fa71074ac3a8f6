"""Optional LPIPS/FID/KID: the one-sentence errors when a package or a weights file is missing, and the wiring with
random backbones saved to tmp files (nothing is downloaded).

The wiring tests need lpips, torchmetrics and torch-fidelity (``pip install 'diffusekit[video-perceptual]'``) and
skip without them. All three import torchvision, which the project's CPU machines cannot load (PyPI's torchvision
is a CUDA build that fails beside torch+cpu with "operator torchvision::nms does not exist", and is not installed
there). Where torchvision does not import, a stand-in module provides what these packages touch: the names imported
at module level, and AlexNet's architecture in torchvision's layout (the only torchvision network lpips builds for
``net="alex"``; the weights always come from our tmp files). Where the real torchvision imports, it is used.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import types

import cv2
import numpy as np
import pytest
import torch
from skimage import data
from torch import nn

from diffusekit.core.errors import DataError
from diffusekit.video import perceptual
from diffusekit.video.perceptual import (
    INCEPTION_WEIGHTS,
    PerceptualUnavailable,
    fid_kid,
    lpips_distance,
    lpips_per_frame,
)

PACKAGES = ("lpips", "torchmetrics", "torch_fidelity")
IMPORTED_HERE = ("torchvision", "lpips", "torchmetrics", "torch_fidelity")


def clip(frames: int = 2, size: int = 96) -> np.ndarray:
    photo = cv2.resize(data.astronaut(), (size + 8, size + 8), interpolation=cv2.INTER_AREA)
    return np.stack([photo[4 : 4 + size, t : t + size] for t in range(frames)])


# errors when something is missing (no package needed)


def test_missing_lpips_weights_say_which_file_and_where_from(tmp_path):
    with pytest.raises(PerceptualUnavailable, match="alexnet-owt-7be5be79.pth") as caught:
        lpips_distance(clip(), clip(), None)
    message = str(caught.value)
    assert "download.pytorch.org/models/alexnet-owt-7be5be79.pth" in message and "\n" not in message
    assert isinstance(caught.value, DataError)
    missing = tmp_path / "alexnet.pth"
    with pytest.raises(PerceptualUnavailable, match=f"^{missing}: no such weights file: LPIPS-vgg .*vgg16-397923af"):
        lpips_distance(clip(), clip(), missing, net="vgg")
    with pytest.raises(ValueError, match="net must be one of"):
        lpips_distance(clip(), clip(), missing, net="resnet")


def test_missing_inception_weights_say_which_file_and_where_from(tmp_path):
    with pytest.raises(PerceptualUnavailable, match=INCEPTION_WEIGHTS) as caught:
        fid_kid(clip(), clip(), None)
    assert "torch-fidelity" in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(PerceptualUnavailable, match=f"^{tmp_path / 'inception.pth'}: no such weights file"):
        fid_kid(clip(), clip(), tmp_path / "inception.pth")


@pytest.mark.parametrize("error", [ImportError("No module named 'lpips'"), RuntimeError("operator torchvision::nms")])
def test_missing_or_broken_packages_say_what_to_install(tmp_path, monkeypatch, error):
    weights = tmp_path / "weights.pth"
    torch.save({}, weights)

    real_import = importlib.import_module

    def refuse(name, package=None):
        if name.split(".")[0] in PACKAGES:
            raise error
        return real_import(name, package)

    monkeypatch.setattr(perceptual.importlib, "import_module", refuse)
    perceptual._lpips_model.cache_clear()
    perceptual._inception.cache_clear()
    for call in (lambda: lpips_distance(clip(), clip(), weights), lambda: fid_kid(clip(), clip(), weights)):
        with pytest.raises(PerceptualUnavailable, match=r"pip install 'diffusekit\[video-perceptual\]'$") as caught:
            call()
        assert str(error) in str(caught.value) and "\n" not in str(caught.value)


# wiring, with random backbones


def _torchvision_imports() -> bool:
    if importlib.util.find_spec("torchvision") is None:
        return False
    try:
        importlib.import_module("torchvision.models")
    except Exception:
        return False
    return True


class _StandInAlexNet(nn.Module):
    """torchvision's AlexNet ``features`` (its layer indices, hence its state-dict keys); no classifier."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )


def _stand_in_alexnet(pretrained: bool = False, weights=None, **kwargs) -> nn.Module:
    if pretrained or weights is not None:
        raise AssertionError("the torchvision stand-in never provides pretrained weights")
    return _StandInAlexNet()


def _stand_in_torchvision() -> dict[str, types.ModuleType]:
    """A torchvision package whose unknown attributes are inert classes (only imported by name, never used here)."""

    def package(name: str, **attributes) -> types.ModuleType:
        module = types.ModuleType(name)
        module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
        module.__path__ = []
        module.__dict__.update(attributes)

        def inert(attribute: str):
            if attribute.startswith("__"):
                raise AttributeError(attribute)
            return type(attribute, (), {})

        module.__getattr__ = inert
        return module

    functional = package("torchvision.transforms.functional")
    transforms = package("torchvision.transforms", functional=functional)
    models = package("torchvision.models", alexnet=_stand_in_alexnet)
    datasets = package("torchvision.datasets")
    root = package("torchvision", models=models, datasets=datasets, transforms=transforms, __version__="0+stand-in")
    return {
        "torchvision": root,
        "torchvision.models": models,
        "torchvision.datasets": datasets,
        "torchvision.transforms": transforms,
        "torchvision.transforms.functional": functional,
    }


@pytest.fixture(scope="module")
def packages():
    """lpips, torchmetrics and torch-fidelity imported (against the real torchvision or the stand-in)."""
    for name in PACKAGES:
        if importlib.util.find_spec(name) is None:
            pytest.skip(f"{name} is not installed (pip install 'diffusekit[video-perceptual]')")
    with pytest.MonkeyPatch.context() as patch:
        if not _torchvision_imports():
            for name in [m for m in sys.modules if m.split(".")[0] == "torchvision"]:
                patch.delitem(sys.modules, name)
            for name, module in _stand_in_torchvision().items():
                patch.setitem(sys.modules, name, module)
        try:
            modules = {name: importlib.import_module(name) for name in ("lpips", "torchmetrics.image.fid")}
        except Exception as error:
            pytest.skip(f"the perceptual packages do not import here: {error}")
        modules["torchvision"] = sys.modules["torchvision"]
        yield modules
        perceptual._lpips_model.cache_clear()
        perceptual._inception.cache_clear()
        for name in [m for m in sys.modules if m.split(".")[0] in IMPORTED_HERE]:
            del sys.modules[name]  # nothing imported against the stand-in outlives this module


@pytest.fixture(scope="module")
def alexnet_weights(packages, tmp_path_factory):
    """A random AlexNet backbone saved in torchvision's layout (features.<i>.*, plus a classifier key to ignore)."""
    torch.manual_seed(0)
    network = packages["torchvision"].models.alexnet(weights=None)
    state = {key: value for key, value in network.state_dict().items() if key.startswith("features.")}
    state["classifier.6.bias"] = torch.zeros(1000)
    path = tmp_path_factory.mktemp("lpips") / "alexnet-owt-7be5be79.pth"
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def inception_weights(packages, tmp_path_factory):
    """A random Inception-v3 in torch-fidelity's layout, He-initialised so that its deep features still vary."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class RandomInception(FeatureExtractorInceptionV3):
        def load_state_dict(self, *args, **kwargs):  # keep the random initialisation
            return None

    folder = tmp_path_factory.mktemp("fid")
    torch.save({}, folder / "empty.pth")
    torch.manual_seed(0)
    network = RandomInception("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(folder / "empty.pth"))
    for layer in network.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
    path = folder / INCEPTION_WEIGHTS
    torch.save(network.state_dict(), path)
    return path


def test_lpips_is_zero_on_identical_frames_and_symmetric(alexnet_weights):
    frames = clip(3)
    assert lpips_per_frame(frames, frames, alexnet_weights) == [0.0, 0.0, 0.0]
    noisy = np.clip(frames + np.random.default_rng(0).normal(0, 20, frames.shape), 0, 255).astype(np.uint8)
    assert lpips_distance(noisy, frames, alexnet_weights) == pytest.approx(
        lpips_distance(frames, noisy, alexnet_weights)
    )


def test_lpips_grows_with_blur_and_takes_tensors(alexnet_weights):
    frames = clip(2)
    blurred = np.stack([cv2.GaussianBlur(frame, (0, 0), 1.5) for frame in frames])
    more = np.stack([cv2.GaussianBlur(frame, (0, 0), 4.0) for frame in frames])
    light, heavy = lpips_distance(blurred, frames, alexnet_weights), lpips_distance(more, frames, alexnet_weights)
    assert 0.0 < light < heavy
    as_tensor = torch.from_numpy(blurred).permute(0, 3, 1, 2).float() / 255
    assert lpips_distance(as_tensor, frames, alexnet_weights) == pytest.approx(light, rel=1e-6)
    single = lpips_per_frame(blurred[0], frames[0], alexnet_weights)  # one (H, W, 3) frame
    assert single == pytest.approx(lpips_per_frame(blurred, frames, alexnet_weights)[:1])
    with pytest.raises(ValueError, match="differ"):
        lpips_distance(blurred[:1], frames, alexnet_weights)


def test_lpips_rejects_a_file_that_is_not_a_torchvision_backbone(alexnet_weights, inception_weights, tmp_path):
    with pytest.raises(DataError, match="is not a torchvision alex state dict") as caught:
        lpips_distance(clip(), clip(), inception_weights)
    assert str(caught.value).startswith(str(inception_weights))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="cannot be read as a PyTorch state dict"):
        lpips_distance(clip(), clip(), garbage)


def test_fid_of_a_set_with_itself_is_about_zero(inception_weights):
    frames = [clip(4), np.stack([cv2.resize(p, (96, 96)) for p in (data.chelsea(), data.coffee(), data.rocket())])]
    pooled = np.concatenate(frames)
    noise = np.random.default_rng(0).integers(0, 256, pooled.shape, dtype=np.uint8)
    same = fid_kid(frames, pooled, inception_weights, feature=64)
    other = fid_kid(noise, pooled, inception_weights, feature=64)
    assert set(same) == {"fid", "kid_mean", "kid_std"}
    assert other["fid"] > 0.1
    assert abs(same["fid"]) < 1e-6 * other["fid"]
    # KID's unbiased MMD of a set with itself is 2/m (mean off-diagonal kernel - mean diagonal kernel), not 0
    assert other["kid_mean"] > max(0.0, same["kid_mean"])
    as_tensor = torch.from_numpy(noise).permute(0, 3, 1, 2).float() / 255
    assert fid_kid(as_tensor, pooled, inception_weights, feature=64)["fid"] == pytest.approx(other["fid"], rel=1e-6)
    with pytest.raises(ValueError, match="at least two frames"):
        fid_kid(pooled[:1], pooled, inception_weights, feature=64)


def test_the_default_features_are_inceptions_2048_pool_features(inception_weights):
    """FID/KID's default path differs from the tests above only in the layer read (the 2048-d FID takes torchmetrics
    ~15 s of eigenvalues on one core, so the maths is checked on 64-d features)."""
    extractor = perceptual._inception(
        str(inception_weights.resolve()), inception_weights.stat().st_mtime_ns, 2048, False
    )
    batch = torch.from_numpy(clip(3)).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        features = extractor(batch)
    assert features.shape == (3, 2048) and torch.isfinite(features).all() and features.std() > 0


def test_fid_rejects_a_file_that_is_not_an_inception(alexnet_weights):
    with pytest.raises(DataError, match="is not an Inception-v3 FID weights file") as caught:
        fid_kid(clip(), clip(), alexnet_weights, feature=64)
    assert str(caught.value).startswith(str(alexnet_weights.resolve()))
