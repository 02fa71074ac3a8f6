"""diffusekit.video: DIVD video deblurring (conditional video diffusion with WTSA and MRPE) on GoPro, DVD and BSD.

Data: `frames` (frame and video I/O), `gopro`, `dvd`, `bsd`, `folders` (readers of the published layouts),
`datasets` (training clips, evaluation sequences), `synthetic` (writes the layouts). Method: `networks` (the video
U-Net), `divd` (DIVD and the regressor), `inference` (tiled, streamed restoration). Evaluation: `metrics` (BasicSR
PSNR/SSIM, tOF) and `perceptual` (LPIPS, FID, KID with user-supplied weights). See docs/video.md.
"""
