"""diffusekit.pose: DiffPose (video 2D pose, docs/pose.md) and DDHPose (3D lifting, docs/pose3d.md)."""
