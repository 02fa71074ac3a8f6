"""diffusekit.medical: Echo-DND left-ventricle segmentation (not yet implemented; see the README's domain table)."""
