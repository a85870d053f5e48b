"""Noise-schedule maths, the DDIM step and grid, timestep schedules and the ODE trajectory cache."""

from recon.diffusion.ddim import DDIMGrid, ddim_invert, ddim_sample, ddim_step
from recon.diffusion.schedule import NoiseSchedule
from recon.diffusion.timesteps import TimestepConfig, TimestepSchedule
from recon.diffusion.trajectory import Trajectory, TrajectoryCache

__all__ = [
    "DDIMGrid",
    "NoiseSchedule",
    "TimestepConfig",
    "TimestepSchedule",
    "Trajectory",
    "TrajectoryCache",
    "ddim_invert",
    "ddim_sample",
    "ddim_step",
]
