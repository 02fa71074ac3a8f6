"""diffusekit.pose: DiffPose (video 2D pose) and DDHPose (3D lifting) (not yet implemented; see the README)."""
