"""Parity with the diffusers schedulers (dev-only dependency) on identical timesteps and model outputs."""

import pytest
import torch

from diffusekit.core import GaussianDiffusion, NoiseSchedule, make_timesteps

from .gaussian_oracle import GaussianDataOracle

diffusers = pytest.importorskip("diffusers")


def _schedule_like(scheduler) -> NoiseSchedule:
    """Our schedule with exactly the scheduler's (float32) alpha-bar values."""
    ac = scheduler.alphas_cumprod.double()
    return NoiseSchedule(1.0 - ac / torch.cat([torch.ones(1, dtype=torch.float64), ac[:-1]]))


class _Model:
    """A stand-in network: the exact denoiser of per-channel Gaussian data plus a small nonlinear, t-dependent term
    (a realistic, contracting reverse chain, so that float32 round-off is not amplified over 1000 steps)."""

    def __init__(self, diffusion: GaussianDiffusion):
        mu, std = torch.tensor([0.5, -1.0, 0.2]), torch.tensor([0.3, 1.0, 2.0])
        self.oracle = GaussianDataOracle(diffusion, mu[:, None, None], std[:, None, None])

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        tt = t.float().reshape(-1, *([1] * (x.ndim - 1))) / 1000.0
        return self.oracle(x, t) + 0.05 * torch.sin(3 * x + tt)


def _run_both(scheduler, ours: GaussianDiffusion, sampler: str, seed=None, dtype=torch.float32, **kwargs):
    """Run the diffusers loop and ours over the scheduler's timesteps with the same model and noise."""
    model = _Model(ours)
    x = X_T.clone().to(dtype)
    gen = None if seed is None else torch.Generator().manual_seed(seed)
    for t in scheduler.timesteps:
        x = scheduler.step(model(x, torch.full((x.shape[0],), int(t))), t, x, generator=gen, **kwargs).prev_sample
    gen = None if seed is None else torch.Generator().manual_seed(seed)
    ts = [int(t) for t in scheduler.timesteps]
    return ours.sample(model, X_T.clone().to(dtype), ts, sampler, generator=gen, **kwargs), x


X_T = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("prediction,ptype", [("eps", "epsilon"), ("v", "v_prediction"), ("x0", "sample")])
def test_ddim_parity(prediction, ptype):
    ref = diffusers.DDIMScheduler(
        clip_sample=False, set_alpha_to_one=True, prediction_type=ptype, timestep_spacing="leading"
    )
    ref.set_timesteps(20)
    assert [int(t) for t in ref.timesteps] == make_timesteps(1000, 20, "leading")
    got, expected = _run_both(ref, GaussianDiffusion(_schedule_like(ref), prediction=prediction), "ddim", eta=0.0)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_ddim_parity_with_eta():
    ref = diffusers.DDIMScheduler(clip_sample=False, set_alpha_to_one=True, timestep_spacing="leading")
    ref.set_timesteps(10)
    got, expected = _run_both(ref, GaussianDiffusion(_schedule_like(ref)), "ddim", seed=3, eta=0.5)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("num_steps", [None, 25])
def test_ddpm_parity(num_steps):
    ref = diffusers.DDPMScheduler(clip_sample=False, variance_type="fixed_small")
    ts = list(range(999, -1, -1)) if num_steps is None else make_timesteps(1000, num_steps, "trailing")
    ref.set_timesteps(timesteps=ts)
    # 1000 float32 steps accumulate ~1e-5 of round-off (diffusers keeps alpha-bar in float32): compare the full
    # chain in float64 on both sides
    dtype = torch.float64 if num_steps is None else torch.float32
    ref.alphas_cumprod = ref.alphas_cumprod.to(dtype)
    got, expected = _run_both(ref, GaussianDiffusion(_schedule_like(ref)), "ddpm", seed=4, dtype=dtype)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("num_steps", [5, 10, 20, 50])
@pytest.mark.parametrize("prediction,ptype", [("eps", "epsilon"), ("v", "v_prediction")])
def test_dpmpp_2m_parity(num_steps, prediction, ptype):
    ref = diffusers.DPMSolverMultistepScheduler(
        algorithm_type="dpmsolver++", solver_order=2, prediction_type=ptype, final_sigmas_type="zero"
    )
    ref.set_timesteps(num_steps)
    got, expected = _run_both(ref, GaussianDiffusion(_schedule_like(ref), prediction=prediction), "dpmpp_2m")
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_add_noise_and_velocity_parity():
    ref = diffusers.DDPMScheduler(beta_schedule="squaredcos_cap_v2")
    ours = GaussianDiffusion(_schedule_like(ref), prediction="v")
    x0, noise = torch.randn(6, 5), torch.randn(6, 5)
    t = torch.tensor([0, 1, 10, 500, 998, 999])
    torch.testing.assert_close(ours.q_sample(x0, t, noise), ref.add_noise(x0, noise, t), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(ours.target(x0, noise, t), ref.get_velocity(x0, noise, t), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize(
    "name,dname", [("linear", "linear"), ("scaled_linear", "scaled_linear"), ("cosine", "squaredcos_cap_v2")]
)
def test_named_schedules_match_diffusers(name, dname):
    ref = diffusers.DDPMScheduler(
        beta_schedule=dname, **({"beta_start": 0.00085, "beta_end": 0.012} if name == "scaled_linear" else {})
    )
    torch.testing.assert_close(NoiseSchedule.named(name, 1000).betas.float(), ref.betas, atol=1e-7, rtol=1e-5)


def test_zero_snr_rescaling_matches_diffusers():
    ref = diffusers.DDIMScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, rescale_betas_zero_snr=True
    )
    ours = NoiseSchedule.named("scaled_linear", 1000, zero_terminal_snr=True)
    torch.testing.assert_close(ours.alphas_cumprod.float(), ref.alphas_cumprod, atol=1e-6, rtol=1e-5)
