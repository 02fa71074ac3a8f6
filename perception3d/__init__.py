"""diffusekit.perception3d: CoDiff collaborative 3D detection (not yet implemented; see the README)."""
