"""Diffusion core and diffusion-based restoration (above the models, below train/eval).

schedules  beta schedules, timestep respacing, SR3/DvSR continuous noise levels
gaussian   the Gaussian diffusion process: q(x_t|x_0), posterior, parameterisations, p(x_{t-1}|x_t)
samplers   DDPM ancestral and DDIM(η) sampling as jitted lax.scan loops with explicit keys
karras     Karras et al. denoiser scalings (consistency models)
operators  degradation operators with adjoints, pseudo-inverses and closed-form data steps
rdmd       RDMD (CVPR 2025) zero-shot restoration
cm4ir      consistency-model zero-shot restoration (Garber & Tirer, CVPR 2025)
"""
