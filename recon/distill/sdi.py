"""Score Distillation via Inversion (Lukoianov et al., "Score distillation via reparametrized DDIM").

Instead of fresh noise, the noise is what DDIM inversion of the current estimate up to t implies:
x_t = DDIM-Invert(x_π, 0 → t),  ε_inv = (x_t − √ᾱ_t x_π) / √(1 − ᾱ_t),
grad = w(t) [ε̂(x_t, t; s) − ε_inv]. The inversion runs ``sdi_inversion_steps`` steps at CFG
``sdi_inversion_guidance`` (the authors use 10 steps at −7.5), batched over rows; deterministic
(the authors' optional η-noise is not used).
"""

from __future__ import annotations

import torch

from recon.diffusion.ddim import ddim_invert
from recon.distill.base import Distiller, DistillState
from recon.priors.base import Condition


class SDI(Distiller):
    def _grad(self, x: torch.Tensor, step: int, cond: Condition, state: DistillState, rows: torch.Tensor):
        schedule = self.prior.schedule
        t, _ = self.sample_t(step, state, rows, plus=False)
        x_t = ddim_invert(self.prior, x, cond, t, self.config.sdi_inversion_steps,
                          self.config.sdi_inversion_guidance)
        a = schedule.alpha(t, x)
        eps_inv = (x_t - a.sqrt() * x) / (1 - a).sqrt()
        eps_hat = self.prior.predict_noise(x_t, t.to(x.device), cond, self.guidance_scale)
        return self.weight(t, x) * (eps_hat - eps_inv), t, None
