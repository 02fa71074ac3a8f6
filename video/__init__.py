"""diffusekit.video: DIVD video deblurring (not yet implemented; see the README's domain table)."""
