"""Scene export: the PLY files parse back (a small PLY reader below), 8 vertices and 12 edges per box at the closed-form
corner positions and edge lengths, points and colours per agent, empty sets, bad input, and the open3d path when
open3d imports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from diffusekit.perception3d.export import export_scene, open3d_available

_TYPES = {"double": np.float64, "float": np.float32, "int": np.int32, "uchar": np.uint8, "uint8": np.uint8}


def read_ply(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """An ASCII PLY file as {element: {property: column}} (no list properties: point sets and line sets only)."""
    lines = path.read_text().splitlines()
    assert lines[0] == "ply" and lines[1] == "format ascii 1.0", lines[:2]
    elements: list[tuple[str, int, list[tuple[str, str]]]] = []
    k = 2
    while lines[k] != "end_header":
        words = lines[k].split()
        if words[0] == "element":
            elements.append((words[1], int(words[2]), []))
        elif words[0] == "property":
            assert words[1] != "list", "list properties are not expected here"
            elements[-1][2].append((words[1], words[2]))
        k += 1
    rows = [line.split() for line in lines[k + 1 :] if line.strip()]
    assert len(rows) == sum(count for _, count, _ in elements), "row count differs from the header"
    out, start = {}, 0
    for name, count, props in elements:
        table = rows[start : start + count]
        start += count
        assert all(len(row) == len(props) for row in table)
        columns = np.array(table, dtype=np.float64).reshape(count, len(props))
        out[name] = {prop: columns[:, j].astype(_TYPES[kind]) for j, (kind, prop) in enumerate(props)}
    return out


def _xyz(element: dict[str, np.ndarray]) -> np.ndarray:
    return np.stack([element["x"], element["y"], element["z"]], axis=1)


@pytest.fixture
def scene():
    rng = np.random.default_rng(0)
    points = {0: rng.uniform(-5, 5, (50, 4)).astype(np.float32), -1: rng.uniform(-5, 5, (30, 3))}
    points[0][:, 3] = np.linspace(0, 1, 50)
    gt = np.array([[1.0, 2.0, 0.5, 4.0, 2.0, 1.5, 0.0], [-3.0, 1.0, -0.5, 5.0, 2.5, 2.0, np.pi / 2]])
    det = np.array([[1.1, 2.1, 0.5, 4.2, 1.9, 1.5, 0.1], [9.0, 9.0, 0.0, 3.0, 1.0, 1.0, 1.0], [0, 0, 0, 1, 1, 1, 0]])
    return points, gt, det


def test_numpy_files_parse_back_with_8_vertices_and_12_edges_per_box(tmp_path, scene):
    points, gt, det = scene
    files = export_scene(tmp_path / "out", points, gt, det, use_open3d=False)
    assert [f.name for f in files] == [
        "points_agent_0.ply",
        "points_agent_-1.ply",
        "gt_boxes.ply",
        "det_boxes.ply",
    ]
    for path, arr in zip(files[:2], points.values()):
        vertex = read_ply(path)["vertex"]
        np.testing.assert_allclose(_xyz(vertex), arr[:, :3], atol=1e-5)
        assert {"red", "green", "blue"} <= vertex.keys()
    for path, boxes in ((files[2], gt), (files[3], det)):
        ply = read_ply(path)
        corners, edges = _xyz(ply["vertex"]), np.stack([ply["edge"]["vertex1"], ply["edge"]["vertex2"]], axis=1)
        assert corners.shape == (8 * len(boxes), 3) and edges.shape == (12 * len(boxes), 2)
        for m, box in enumerate(boxes):
            own = edges[12 * m : 12 * (m + 1)]
            assert np.all((own >= 8 * m) & (own < 8 * (m + 1)))  # a box's edges join its own corners
            lengths = np.sort(np.linalg.norm(corners[own[:, 0]] - corners[own[:, 1]], axis=1))
            np.testing.assert_allclose(lengths, np.sort(np.repeat(box[3:6], 4)), atol=1e-5)
            assert len({tuple(sorted(e)) for e in own.tolist()}) == 12  # 12 distinct edges
            np.testing.assert_allclose(corners[8 * m : 8 * (m + 1)].mean(axis=0), box[:3], atol=1e-5)
    # the first GT box is axis-aligned: its corners are x +- 2, y +- 1, z +- 0.75 (closed form)
    first = _xyz(read_ply(files[2])["vertex"])[:8]
    expected = {(x, y, z) for x in (-1.0, 3.0) for y in (1.0, 3.0) for z in (-0.25, 1.25)}
    assert {tuple(np.round(c, 5)) for c in first} == expected
    colours = read_ply(files[2])["edge"]
    assert np.all(colours["green"] > colours["red"])  # GT green
    colours = read_ply(files[3])["edge"]
    assert np.all(colours["red"] > colours["green"])  # detections red


def test_intensity_shades_the_agent_colour_and_agents_differ(tmp_path, scene):
    points, gt, _ = scene
    files = export_scene(tmp_path, points, gt, use_open3d=False)
    first = read_ply(files[0])["vertex"]
    brightness = first["red"].astype(int) + first["green"] + first["blue"]
    assert np.all(np.diff(brightness) >= 0) and brightness[-1] > brightness[0]  # intensity rises along the cloud
    second = read_ply(files[1])["vertex"]
    assert (first["red"][-1], first["blue"][-1]) != (second["red"][0], second["blue"][0])
    assert not (tmp_path / "det_boxes.ply").exists() and len(files) == 3


def test_list_input_empty_boxes_and_empty_cloud(tmp_path):
    files = export_scene(tmp_path, [np.zeros((0, 4)), np.ones((2, 3))], np.zeros((0, 7)), [])
    assert [f.name for f in files] == ["points_agent_0.ply", "points_agent_1.ply", "gt_boxes.ply", "det_boxes.ply"]
    assert len(read_ply(files[0])["vertex"]["x"]) == 0
    for path in files[2:]:
        ply = read_ply(path)
        assert len(ply["vertex"]["x"]) == 0 and len(ply["edge"]["vertex1"]) == 0


def test_named_agents_and_bad_input(tmp_path):
    files = export_scene(tmp_path, {"ego car": np.zeros((1, 3)), "rsu/1": np.zeros((1, 3))}, np.zeros((0, 7)))
    assert [f.name for f in files[:2]] == ["points_ego_car.ply", "points_rsu_1.ply"]
    with pytest.raises(ValueError, match="NaN"):
        export_scene(tmp_path, [np.array([[np.nan, 0, 0]])], np.zeros((0, 7)), use_open3d=False)
    with pytest.raises(ValueError, match=r"\(N, >=3\)"):
        export_scene(tmp_path, [np.zeros((4, 2))], np.zeros((0, 7)), use_open3d=False)
    with pytest.raises(ValueError, match=r"\(M, 7\)"):
        export_scene(tmp_path, [], np.zeros((2, 8, 3)), use_open3d=False)
    with pytest.raises(ValueError, match="same file name"):
        export_scene(tmp_path, {0: np.zeros((1, 3)), "agent_0": np.zeros((1, 3))}, np.zeros((0, 7)))


def test_use_open3d_true_without_open3d_is_an_import_error(tmp_path):
    if open3d_available():
        pytest.skip("open3d imports here")
    with pytest.raises(ImportError, match="open3d"):
        export_scene(tmp_path, [np.zeros((1, 3))], np.zeros((0, 7)), use_open3d=True)


def test_open3d_path_writes_the_same_content(tmp_path, scene):
    if not open3d_available():
        pytest.skip("open3d does not import here (not installed, or its system libraries are missing)")
    import open3d

    points, gt, det = scene
    files = export_scene(tmp_path / "o3d", points, gt, det, use_open3d=True)
    reference = export_scene(tmp_path / "np", points, gt, det, use_open3d=False)
    for path, ref in zip(files, reference):
        ours, theirs = read_ply(path), read_ply(ref)
        np.testing.assert_allclose(_xyz(ours["vertex"]), _xyz(theirs["vertex"]), atol=1e-5)
        if "edge" in theirs:
            np.testing.assert_array_equal(ours["edge"]["vertex1"], theirs["edge"]["vertex1"])
            np.testing.assert_array_equal(ours["edge"]["vertex2"], theirs["edge"]["vertex2"])
    cloud = open3d.io.read_point_cloud(str(reference[0]))
    assert len(cloud.points) == len(points[0])
    lines = open3d.io.read_line_set(str(reference[2]))
    assert len(lines.points) == 16 and len(lines.lines) == 24
