"""diffusekit.perception3d: CoDiff collaborative 3D object detection (OPV2V, V2XSet, DAIR-V2X-C).

Data: `pcd` (PCD files in numpy), `geometry` (CARLA poses, frames), `opv2v` and `dairv2x` (readers returning one
cooperative sample layout), `noise` (pose noise and delay as OpenCOOD / CoAlign simulate them), `synthetic` with
`scene` and `lidar` (ray-cast datasets written in OPV2V's layout). Method: `pillars`, `anchors`, `networks`,
`detector` (PointPillars with no, late or attention fusion), `codiff` (the latent diffusion refinement). Evaluation:
`boxes` (BEV rotated IoU, NMS), `metrics` (OpenCOOD's AP in both detection sorts). See docs/perception3d.md.

Conventions: points (N, 4) x, y, z, intensity in their agent's LiDAR frame; poses [x, y, z, roll, yaw, pitch] in the
CARLA world frame, degrees; boxes (M, 7) [x, y, z, l, w, h, yaw] with z the box centre and yaw in radians (OpenCOOD
stores 'hwl'; we use lwh).
"""
