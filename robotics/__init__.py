"""diffusekit.robotics: Diffusion Policy with Real-Time Iteration (RTI-DP) on Push-T and a point-mass task.

See docs/robotics.md.
"""
