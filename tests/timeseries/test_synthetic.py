"""synthetic.py writes the official layouts; the real readers read them back exactly, every anomaly kind is there,
the interpretation dims are the features actually perturbed, and normal data is correlated through shared factors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diffusekit.timeseries.msl_smap import read_msl_smap
from diffusekit.timeseries.psm import read_psm
from diffusekit.timeseries.smd import read_smd
from diffusekit.timeseries.synthetic import (
    ANOMALY_KINDS,
    MANIFEST,
    SIZES,
    generate_entity,
    write_msl_smap_dataset,
    write_psm_dataset,
    write_smd_dataset,
    write_synthetic,
)


@pytest.fixture(scope="module")
def small_smd(tmp_path_factory):
    root = tmp_path_factory.mktemp("smd_small")
    return write_smd_dataset(root, size="small", seed=5)


def test_smd_round_trip(small_smd):
    splits = read_smd(small_smd.root)
    assert list(splits) == list(small_smd.anomalies) == ["machine-1-1", "machine-1-2", "machine-1-3"]
    for index, (name, split) in enumerate(splits.items()):
        anomalies = small_smd.anomalies[name]
        assert split.train.shape == split.test.shape == (SIZES["small"]["length"], 38)
        assert {a.kind for a in anomalies} == set(ANOMALY_KINDS)
        assert [(s.start, s.end, s.dims) for s in split.interpretation] == [(a.start, a.end, a.dims) for a in anomalies]
        # the files hold what the generator made (machine i uses seed [seed, i]), to printing precision
        entity = generate_entity(len(split.test), 38, [5, index], per_kind=1)
        np.testing.assert_array_equal(split.test_labels, entity.labels)
        np.testing.assert_allclose(split.raw_test, entity.test, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(split.raw_train, entity.train, rtol=1e-5, atol=1e-6)
        assert not split.notes  # every labeled stretch has an interpretation line and vice versa
    manifest = json.loads((small_smd.root / MANIFEST).read_text())
    assert manifest["anomalies"]["machine-1-2"][0]["kind"] == small_smd.anomalies["machine-1-2"][0].kind


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_interpretation_dims_are_the_perturbed_features(seed):
    entity = generate_entity(2000, 38, seed, per_kind=2)
    assert sorted(a.kind for a in entity.anomalies) == sorted(ANOMALY_KINDS * 2)
    change = np.abs(entity.test - entity.clean_test)
    expected = np.zeros_like(change, dtype=bool)
    for anomaly in entity.anomalies:
        dims = list(anomaly.dims)
        expected[anomaly.start : anomaly.end, dims] = True
        assert (change[anomaly.start : anomaly.end, dims].max(axis=0) > 0.01).all(), anomaly
        assert 37 not in anomaly.dims  # the constant feature is never perturbed
    assert change[~expected].max() == 0
    assert np.array_equal(entity.labels.astype(bool), expected.any(axis=1))


def test_features_share_latent_factors():
    entity = generate_entity(2000, 38, 11, per_kind=1)
    off_diagonal = ~np.eye(37, dtype=bool)
    correlated = np.abs(np.corrcoef(entity.train[:, :37].T)[off_diagonal]).mean()
    noise = np.random.default_rng(0).normal(size=(2000, 37))
    independent = np.abs(np.corrcoef(noise.T)[off_diagonal]).mean()
    assert correlated > 0.25 and correlated > 10 * independent
    assert np.all(entity.train[:, 37] == 0)


def test_correlation_break_breaks_correlations():
    for seed in range(3):
        entity = generate_entity(2000, 38, seed, per_kind=1)
        anomaly = next(a for a in entity.anomalies if a.kind == "correlation_break")
        window = slice(anomaly.start, anomaly.end)
        before = np.corrcoef(entity.clean_test[window, :37].T)
        after = np.corrcoef(entity.test[window, :37].T)
        peers = [k for k in range(37) if k not in anomaly.dims]
        drop = max(before[d, p] - after[d, p] for d in anomaly.dims for p in peers)
        assert drop > 1.0  # some perturbed feature turned from following a peer to opposing it


def test_psm_round_trip(tmp_path):
    written = write_psm_dataset(tmp_path, length=3000, features=25, seed=4)
    split = read_psm(tmp_path)
    assert split.train.shape == split.test.shape == (3000, 25) and split.feature_names[-1] == "feature_24"
    labels = np.zeros(3000, dtype=int)
    for anomaly in written.anomalies["PSM"]:
        labels[anomaly.start : anomaly.end] = 1
    np.testing.assert_array_equal(split.test_labels, labels)
    assert split.fill_report.missing_train > 5 and split.fill_report.by_feature["feature_0"][0] >= 5
    assert {a.kind for a in written.anomalies["PSM"]} == set(ANOMALY_KINDS)


def test_msl_smap_round_trip(tmp_path):
    written = write_msl_smap_dataset(tmp_path / "smap", "SMAP", channels=3, length=1000, seed=6)
    smap = read_msl_smap(written.root, "SMAP")
    assert smap.name == "SMAP" and smap.train.shape == (3000, 25) and list(smap.parts) == ["A-1", "D-1", "E-1"]
    assert any(note.startswith("dropped channel P-2") for note in smap.notes)
    for chan, (_, test_slice) in smap.parts.items():
        labels = np.zeros(1000, dtype=int)
        for anomaly in written.anomalies[chan]:
            labels[anomaly.start : anomaly.end] = 1
        np.testing.assert_array_equal(smap.test_labels[test_slice], labels)
    commands = smap.raw_train[:, 1:]
    assert set(np.unique(commands)) <= {0.0, 1.0} and commands.sum(axis=1).max() <= 1
    written = write_msl_smap_dataset(tmp_path / "msl", "MSL", channels=2, length=1000, seed=6)
    msl = read_msl_smap(written.root, "MSL", concatenate=False)
    assert sorted(msl) == ["M-1", "S-1"] and msl["M-1"].train.shape == (1000, 55) and not msl["M-1"].notes


def test_determinism_and_dispatch(tmp_path):
    first = write_smd_dataset(tmp_path / "a", machines=1, length=1000, seed=9)
    second = write_smd_dataset(tmp_path / "b", machines=1, length=1000, seed=9)
    third = write_smd_dataset(tmp_path / "c", machines=1, length=1000, seed=10)
    text = [(d.root / "test" / "machine-1-1.txt").read_text() for d in (first, second, third)]
    assert text[0] == text[1] != text[2]
    for layout in ("psm", "msl"):
        assert write_synthetic(tmp_path / layout, layout, seed=1).layout == layout
    with pytest.raises(ValueError, match="too short"):
        generate_entity(500, 38, 0, per_kind=1)
