"""diffusekit.robotics: Diffusion Policy with Real-Time Iteration (not yet implemented; see the README)."""
