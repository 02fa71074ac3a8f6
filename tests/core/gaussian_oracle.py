"""An exact denoiser for Gaussian data: x0 ~ N(mu, s^2) per coordinate, so E[eps | x_t] is known in closed form."""

import torch

from diffusekit.core import GaussianDiffusion


class GaussianDataOracle:
    """model(x_t, t) = E[eps | x_t] = sigma_t (x_t - alpha_t mu) / (alpha_t^2 s^2 + sigma_t^2), as eps, x0 or v."""

    def __init__(self, diffusion: GaussianDiffusion, mu: torch.Tensor, std: torch.Tensor):
        self.diffusion, self.mu, self.std = diffusion, mu.double(), std.double()
        self.calls = 0

    def marginal(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        ab = self.diffusion.schedule.alpha_bar(t)
        return ab.sqrt() * self.mu, (ab * self.std**2 + 1 - ab).sqrt()

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        ab = self.diffusion.schedule.alpha_bar(t).to(x_t.device, torch.float64).reshape(-1, *([1] * (x_t.ndim - 1)))
        alpha, sigma = ab.sqrt(), (1 - ab).sqrt()
        x, mu, std = x_t.double(), self.mu.to(x_t.device), self.std.to(x_t.device)
        eps = sigma * (x - alpha * mu) / (ab * std**2 + sigma**2)
        x0 = (x - sigma * eps) / alpha
        out = {"eps": eps, "x0": x0, "v": alpha * eps - sigma * x0}[self.diffusion.prediction]
        return out.to(x_t.dtype)
