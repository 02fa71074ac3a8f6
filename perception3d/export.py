"""Scene export for 3-D viewers: point clouds as coloured ``.ply`` point sets and boxes as ``.ply`` line sets
(8 corners and 12 edges per box), which Open3D, MeshLab and CloudCompare open.

open3d is the design card's point-cloud library but stays optional: its wheel needs a system USB library
(``libusb``) just to import. With open3d importable the files are written by ``open3d.io.write_point_cloud`` and
``open3d.io.write_line_set``; without it the same ASCII PLY content is written with numpy: ``element vertex`` with
``x y z`` (double) and ``red green blue`` (uchar) for points; ``element vertex`` (``x y z``) plus ``element edge``
(``vertex1 vertex2`` int, ``red green blue`` uchar) for boxes, as Open3D's PLY line-set files are laid out. Empty
clouds and empty box sets are always written with numpy (Open3D refuses to write them).
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from diffusekit.perception3d.boxes import box_corners

__all__ = ["BOX_EDGES", "export_scene", "open3d_available", "write_line_set_ply", "write_point_cloud_ply"]

# the 12 edges of a box with corners 0-3 the bottom face and 4-7 the top face, corner i + 4 above corner i
BOX_EDGES = np.array(
    [[0, 1], [1, 2], [2, 3], [3, 0], [4, 5], [5, 6], [6, 7], [7, 4], [0, 4], [1, 5], [2, 6], [3, 7]], dtype=np.int64
)
GT_COLOUR = (0, 200, 0)
DET_COLOUR = (230, 30, 30)
# one colour per agent (ego first), modulated by intensity
AGENT_COLOURS = np.array(
    [[70, 130, 230], [240, 150, 40], [170, 80, 200], [40, 180, 170], [200, 200, 60], [150, 150, 150]], dtype=np.float64
)


@functools.lru_cache(maxsize=1)
def _open3d():
    """The open3d module, or None when it is missing or fails to load its shared libraries (OSError)."""
    try:
        import open3d
    except (ImportError, OSError):
        return None
    return open3d


def open3d_available() -> bool:
    """Whether ``import open3d`` works here."""
    return _open3d() is not None


def _xyz(points, what: str) -> np.ndarray:
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < 3:
        raise ValueError(f"{what} must be (N, >=3) points, got shape {arr.shape}")
    if not np.isfinite(arr[:, :3]).all():
        raise ValueError(f"{what} has NaN or inf coordinates")
    return arr


def _colours(arr: np.ndarray, base: np.ndarray) -> np.ndarray:
    """(N, 3) uint8: the agent colour scaled by the intensity column (rescaled to [0, 1] when it exceeds 1)."""
    if arr.shape[1] < 4 or len(arr) == 0:
        return np.tile(base.astype(np.uint8), (len(arr), 1))
    intensity = np.nan_to_num(arr[:, 3], nan=0.0, posinf=0.0, neginf=0.0).clip(min=0.0)
    peak = intensity.max()
    if peak > 1.0:
        intensity = intensity / peak
    scale = 0.35 + 0.65 * intensity
    return np.clip(base[None, :] * scale[:, None], 0, 255).astype(np.uint8)


def _rows(table: np.ndarray, fmt: str) -> str:
    buffer = io.StringIO()
    np.savetxt(buffer, table, fmt=fmt)
    return buffer.getvalue()


def write_point_cloud_ply(path: str | Path, xyz, colours) -> Path:
    """Write an ASCII PLY point set with numpy: (N, 3) ``xyz`` and (N, 3) uint8 ``colours``."""
    path = Path(path)
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    colours = np.asarray(colours, dtype=np.uint8).reshape(-1, 3)
    header = (
        "ply\nformat ascii 1.0\ncomment diffusekit.perception3d.export\n"
        f"element vertex {len(xyz)}\nproperty double x\nproperty double y\nproperty double z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n"
    )
    table = np.column_stack([xyz, colours.astype(np.float64)])
    path.write_text(header + (_rows(table, "%.6f %.6f %.6f %d %d %d") if len(xyz) else ""))
    return path


def write_line_set_ply(path: str | Path, vertices, edges, colours) -> Path:
    """Write an ASCII PLY line set with numpy: (V, 3) ``vertices``, (E, 2) vertex-index ``edges`` and (E, 3) uint8
    edge ``colours`` (Open3D's line-set PLY layout)."""
    path = Path(path)
    vertices = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    colours = np.asarray(colours, dtype=np.uint8).reshape(-1, 3)
    header = (
        "ply\nformat ascii 1.0\ncomment diffusekit.perception3d.export\n"
        f"element vertex {len(vertices)}\nproperty double x\nproperty double y\nproperty double z\n"
        f"element edge {len(edges)}\nproperty int vertex1\nproperty int vertex2\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n"
    )
    body = _rows(vertices, "%.6f %.6f %.6f") if len(vertices) else ""
    body += _rows(np.column_stack([edges, colours.astype(np.int64)]), "%d %d %d %d %d") if len(edges) else ""
    path.write_text(header + body)
    return path


def _line_set(boxes, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Corners (8M, 3) of ``boxes`` (M, 7) and their (12M, 2) edges."""
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        arr = np.zeros((0, 7))
    if arr.ndim != 2 or arr.shape[1] != 7:
        raise ValueError(f"{what} must be (M, 7) [x, y, z, l, w, h, yaw], got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} has NaN or inf values")
    corners = np.asarray(box_corners(arr), dtype=np.float64).reshape(-1, 3)
    edges = (BOX_EDGES[None] + 8 * np.arange(len(arr))[:, None, None]).reshape(-1, 2)
    return corners, edges


def _name(key) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"agent_{key}" if isinstance(key, (int, np.integer)) else str(key))


def export_scene(
    out_dir: str | Path,
    points_by_agent: Mapping | Sequence,
    gt_boxes,
    det_boxes=None,
    *,
    use_open3d: bool | None = None,
) -> list[Path]:
    """Write a scene for a 3-D viewer and return the files written.

    Args:
        out_dir: created if missing.
        points_by_agent: {agent id or name: (N, >=3) points} or a list (names ``agent_0``, ``agent_1``, ...); give
            them in ONE frame (the ego's) so the clouds overlay. Column 3, if present, is the intensity that
            shades each agent's colour.
        gt_boxes: (M, 7) ``[x, y, z, l, w, h, yaw]``, written as green ``gt_boxes.ply``.
        det_boxes: optional (K, 7) detections, written as red ``det_boxes.ply``.
        use_open3d: None writes through open3d when it imports, else numpy; True requires open3d; False uses numpy.

    Files: ``points_<name>.ply`` per agent, ``gt_boxes.ply``, ``det_boxes.ply``.
    """
    o3d = _open3d() if use_open3d is not False else None
    if use_open3d and o3d is None:
        raise ImportError("use_open3d=True but open3d does not import here (pip install open3d; it needs libusb)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    items = points_by_agent.items() if isinstance(points_by_agent, Mapping) else enumerate(points_by_agent)
    written = []
    for k, (key, points) in enumerate(items):
        arr = _xyz(points, f"points of agent {key!r}")
        colours = _colours(arr, AGENT_COLOURS[k % len(AGENT_COLOURS)])
        path = out / f"points_{_name(key)}.ply"
        if path in written:
            raise ValueError(f"two agents map to the same file name {path.name}")
        if o3d is not None and len(arr):
            cloud = o3d.geometry.PointCloud()
            cloud.points = o3d.utility.Vector3dVector(np.ascontiguousarray(arr[:, :3]))
            cloud.colors = o3d.utility.Vector3dVector(colours.astype(np.float64) / 255.0)
            if not o3d.io.write_point_cloud(str(path), cloud, write_ascii=True):
                raise OSError(f"open3d could not write {path}")
        else:
            write_point_cloud_ply(path, arr[:, :3], colours)
        written.append(path)
    sets = [("gt_boxes", gt_boxes, GT_COLOUR)]
    if det_boxes is not None:
        sets.append(("det_boxes", det_boxes, DET_COLOUR))
    for name, boxes, colour in sets:
        corners, edges = _line_set(boxes, name)
        colours = np.tile(np.array(colour, dtype=np.uint8), (len(edges), 1))
        path = out / f"{name}.ply"
        if o3d is not None and len(edges):
            lines = o3d.geometry.LineSet(
                points=o3d.utility.Vector3dVector(corners), lines=o3d.utility.Vector2iVector(edges.astype(np.int32))
            )
            lines.colors = o3d.utility.Vector3dVector(colours.astype(np.float64) / 255.0)
            if not o3d.io.write_line_set(str(path), lines, write_ascii=True):
                raise OSError(f"open3d could not write {path}")
        else:
            write_line_set_ply(path, corners, edges, colours)
        written.append(path)
    return written
