"""The core's STAPLE (diffusekit.core.aggregate) against SimpleITK's ``STAPLEImageFilter`` (ITK's implementation of
Warfield et al. 2004) on random binary segmentations.

Both run the same EM with the same global prior (the foreground fraction over every rater and voxel, fixed) and
stop at a fixed point, so the soft truth W and each rater's sensitivity and specificity must agree up to the
stopping rule and rounding: measured here, 1e-7 in float64 and 1e-6 in float32. The tolerances (1e-5 for W and the
rater parameters in float64, 1e-4 for W in float32) leave room for ITK's looser convergence test and for rounding,
while a real difference shows: ITK with its prior halved differs by more than 1e-2 (the last test).

Definitional differences, none active here: ITK starts from p = q = 0.99999 (the core from 0.99; the same fixed
point on these inputs); ITK scales the prior by its ``ConfidenceWeight`` (1 by default); ITK returns the soft W,
which ``aggregate(method="staple")`` thresholds at W >= 0.5.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffusekit.core.aggregate import aggregate, staple

sitk = pytest.importorskip("SimpleITK")


def _raters(seed: int, shape: tuple[int, ...], count: int) -> tuple[np.ndarray, np.ndarray]:
    """An ellipsoid truth and ``count`` raters with their own false-positive / false-negative rates."""
    rng = np.random.default_rng(seed)
    grid = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    radii = rng.uniform(0.3, 0.7, len(shape))
    truth = (sum((g / r) ** 2 for g, r in zip(grid, radii)) < 1).astype(np.uint8)
    raters = []
    for _ in range(count):
        fp, fn = rng.uniform(0.0, 0.15), rng.uniform(0.0, 0.3)
        noise = rng.random(shape)
        rater = truth.copy()
        rater[(truth == 1) & (noise < fn)] = 0
        rater[(truth == 0) & (noise < fp)] = 1
        raters.append(rater)
    return truth, np.stack(raters)


def _itk_staple(raters: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    flt = sitk.STAPLEImageFilter()
    flt.SetForegroundValue(1.0)
    w = sitk.GetArrayFromImage(flt.Execute([sitk.GetImageFromArray(r) for r in raters]))
    return w, np.array(flt.GetSensitivity()), np.array(flt.GetSpecificity())


@pytest.mark.parametrize(("seed", "shape", "count"), [(0, (48, 48), 5), (1, (40, 56), 3), (2, (12, 20, 24), 7)])
def test_staple_matches_simpleitk(seed, shape, count):
    truth, raters = _raters(seed, shape, count)
    w_itk, sens_itk, spec_itk = _itk_staple(raters)
    w, sens, spec = staple(torch.from_numpy(raters).double(), tol=1e-10, max_iter=1000)
    np.testing.assert_allclose(w.numpy(), w_itk, atol=1e-5)
    np.testing.assert_allclose(sens.numpy(), sens_itk, atol=1e-5)
    np.testing.assert_allclose(spec.numpy(), spec_itk, atol=1e-5)
    # float32, default tolerance, through aggregate: the same hard decision wherever ITK's W is not ~0.5
    fused, _ = aggregate(torch.from_numpy(raters).float(), "staple")
    w32, _, _ = staple(torch.from_numpy(raters).float())
    np.testing.assert_allclose(w32.numpy(), w_itk, atol=1e-4)
    clear = np.abs(w_itk - 0.5) > 1e-3
    assert np.array_equal(fused.numpy()[clear], (w_itk >= 0.5)[clear])
    # and STAPLE is worth it: closer to the truth than a majority vote of these unequal raters, or as close
    vote, _ = aggregate(torch.from_numpy(raters).float(), "vote")
    assert (fused.numpy() != truth).sum() <= (vote.numpy() != truth).sum()


def test_batched_staple_is_one_itk_run_per_image():
    stacks = [_raters(seed, (32, 32), 4)[1] for seed in (3, 4)]
    batch = torch.from_numpy(np.stack(stacks, axis=1)).double()  # (raters, images, H, W)
    w, sens, _ = staple(batch, batch_ndim=1, tol=1e-10, max_iter=1000)
    for i, raters in enumerate(stacks):
        w_itk, sens_itk, _ = _itk_staple(raters)
        np.testing.assert_allclose(w[i].numpy(), w_itk, atol=1e-5)
        np.testing.assert_allclose(sens[i].numpy(), sens_itk, atol=1e-5)


def test_a_different_prior_is_visible():
    """The tolerance can fail: ITK with its prior scaled (ConfidenceWeight 0.5) differs from the core's STAPLE."""
    _, raters = _raters(5, (48, 48), 5)
    flt = sitk.STAPLEImageFilter()
    flt.SetForegroundValue(1.0)
    flt.SetConfidenceWeight(0.5)
    w_itk = sitk.GetArrayFromImage(flt.Execute([sitk.GetImageFromArray(r) for r in raters]))
    w, _, _ = staple(torch.from_numpy(raters).double(), tol=1e-10, max_iter=1000)
    assert np.abs(w.numpy() - w_itk).max() > 1e-2
