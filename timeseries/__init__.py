"""diffusekit.timeseries: ImDiffusion anomaly detection (not yet implemented; see the README's domain table)."""
