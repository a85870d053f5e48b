"""DSD on MVDream: a sample's 4 views share one trajectory, one t and one network call, and each
view has its own slice of ε*."""

import torch

from recon.diffusion import TimestepConfig
from recon.distill import DistillConfig, Hypothesis, build_distiller


def test_dsd_runs_on_mvdream_with_grouped_trajectories(mvdream_prior):
    prior = mvdream_prior
    config = DistillConfig(method="dsd", guidance_scale=3.0, ode_guidance_scale=3.0,
                           timesteps=TimestepConfig(kind="anneal", t_max=0.9, t_min=0.1, total_steps=4))
    distiller = build_distiller(prior, config)
    hyps = [Hypothesis(0, 0), Hypothesis(0, 1)]
    state = distiller.init_state(hyps)
    assert state.eps_star.shape == (2, 4, *prior.sample_shape)  # one latent per view of the group
    assert not torch.equal(state.eps_star[0, 0], state.eps_star[0, 1])
    cams = torch.tensor([[15.0, a, 3.8] for a in (0.0, 90.0, 180.0, 270.0)] * 2)
    cond = prior.condition(prompt="a chair", camera=cams)
    x = torch.randn(8, *prior.sample_shape, generator=torch.Generator().manual_seed(0))
    rows = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    for step in range(3):
        result = distiller.grad(x, step, cond, state.for_rows(rows))
        assert result.grad.shape == x.shape and torch.isfinite(result.grad).all()
        # one t per sample of 4 views
        assert torch.equal(result.t[:4], result.t[:1].expand(4)) and torch.equal(result.t_plus[4:], result.t_plus[4:5].expand(4))
    assert len(state.cache) == 2  # one trajectory per hypothesis (its 4-view group), not one per view
    traj = next(iter(state.cache._store.values()))
    assert traj.eps[0].shape == (4, *prior.sample_shape)
