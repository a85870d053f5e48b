"""DDIM trajectories from a seed noise ε*, computed lazily and cached.

A trajectory depends on ε*, the condition and the grid — never on the render being optimised — so
each grid level is computed once per (hypothesis, condition key) and reused by every later step.
Extending several trajectories at once batches them into one network call per level.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from recon.diffusion.ddim import DDIMGrid, ddim_step

if TYPE_CHECKING:  # priors import the schedule from this package
    from recon.priors.base import Condition, Prior


@dataclass
class Trajectory:
    """One ODE path of a group of G jointly denoised views (G = 1 for most priors): ``x[j]`` (G, ...)
    is the sample at ``grid.timesteps[j]`` (x[0] = ε*), ``eps[j]`` (G, ...) the (CFG) noise
    prediction there. ``cond`` is the G-row condition the path was started with."""

    cond: Condition
    x: list[torch.Tensor] = field(default_factory=list)
    eps: list[torch.Tensor] = field(default_factory=list)


class TrajectoryCache:
    """Lazily extended, bounded store of DDIM trajectories keyed by (hypothesis, condition key).

    Args:
        prior: the noise predictor.
        grid: the DDIM grid (e.g. 10 steps over [999 → 0]).
        guidance_scale: CFG scale along the ODE (None: the prior's default).
        camera_bin: condition cameras are rounded to this for the key (0 = exact camera); a binned
            trajectory is conditioned on the bin centre when the condition can be rebuilt there.
        enabled: False recomputes every trajectory from scratch at each request, which is what
            the DSD authors' implementation does; kept for the cost benchmark.
        max_entries: least-recently-used trajectories beyond this are dropped.
        group: rows the prior denoises jointly (``prior.views_per_sample``); consecutive aligned
            groups of this many rows share one trajectory.
    """

    def __init__(
        self,
        prior: Prior,
        grid: DDIMGrid,
        guidance_scale: float | None = None,
        camera_bin: float = 0.0,
        enabled: bool = True,
        max_entries: int = 1024,
        group: int = 1,
    ) -> None:
        self.prior = prior
        self.grid = grid
        self.guidance_scale = prior.default_guidance_scale if guidance_scale is None else guidance_scale
        self.camera_bin = camera_bin
        self.enabled = enabled
        self.max_entries = max_entries
        self.group = group
        self._store: OrderedDict[Hashable, Trajectory] = OrderedDict()

    def __len__(self) -> int:
        return len(self._store)

    def clear(self) -> None:
        self._store.clear()

    def same_paths(self, other: TrajectoryCache) -> bool:
        """True when ``other`` computes exactly the trajectories this cache would (same prior, grid, ODE
        guidance, camera bins and groups), so one can serve in place of the other."""
        return (self.prior is other.prior and self.grid == other.grid and self.guidance_scale == other.guidance_scale
                and self.camera_bin == other.camera_bin and self.group == other.group
                and self.enabled and other.enabled)

    def keys_for(self, hyp_keys: Sequence[Hashable], cond: Condition) -> list[Hashable]:
        """One key per group of rows: (hypothesis, the group's condition keys)."""
        g = self.group
        if len(hyp_keys) % g:
            raise ValueError(f"{len(hyp_keys)} rows do not split into groups of {g} jointly denoised views")
        ckeys = cond.cache_keys(self.camera_bin)
        return [(hyp_keys[i], tuple(ckeys[i : i + g])) for i in range(0, len(hyp_keys), g)]

    def ensure(
        self,
        levels: Sequence[int],
        eps_star: torch.Tensor,
        hyp_keys: Sequence[Hashable],
        cond: Condition,
    ) -> list[Trajectory]:
        """Make sure row i's trajectory has ε at level ``levels[i]``; return each row's trajectory.

        Args:
            levels: (B,) grid level needed per row.
            eps_star: (B, *shape) ε* per row.
            hyp_keys: (B,) hypothesis identity per row.
            cond: condition with B rows.
        """
        if not self.enabled:
            self._store.clear()
        g = self.group
        keys = self.keys_for(hyp_keys, cond)
        need: dict[Hashable, int] = {}
        for j, key in enumerate(keys):
            rows = range(j * g, (j + 1) * g)
            traj = self._store.get(key)
            if traj is None:
                group_cond = type(cond).cat([cond.row_for_trajectory(i, self.camera_bin) for i in rows])
                traj = Trajectory(cond=group_cond, x=[eps_star[j * g : (j + 1) * g]])
                self._store[key] = traj
            self._store.move_to_end(key)
            need[key] = max(need.get(key, -1), *(int(levels[i]) for i in rows))
        self._extend(need)
        out = [self._store[keys[i // g]] for i in range(len(hyp_keys))]
        while len(self._store) > max(self.max_entries, len(need)):
            self._store.popitem(last=False)
        return out

    @torch.no_grad()
    def _extend(self, need: dict[Hashable, int]) -> None:
        schedule = self.prior.schedule
        while True:
            todo = [k for k, lvl in need.items() if len(self._store[k].eps) <= lvl]
            if not todo:
                return
            trajs = [self._store[k] for k in todo]
            level = torch.tensor([len(tr.eps) for tr in trajs])
            g = self.group
            x = torch.cat([tr.x[-1] for tr in trajs])
            t = torch.tensor([self.grid.timesteps[int(j)] for j in level]).repeat_interleave(g)
            t_prev = torch.tensor([self.grid.prev[int(j)] for j in level]).repeat_interleave(g)
            cond = type(trajs[0].cond).cat([tr.cond for tr in trajs])
            eps = self.prior.predict_noise(x, t.to(x.device), cond, self.guidance_scale)
            x_next, _ = ddim_step(schedule, x, eps, t, t_prev)
            for i, tr in enumerate(trajs):
                tr.eps.append(eps[i * g : (i + 1) * g])
                if len(tr.x) < len(self.grid):
                    tr.x.append(x_next[i * g : (i + 1) * g])

    def eps_at(
        self,
        levels: Sequence[int],
        eps_star: torch.Tensor,
        hyp_keys: Sequence[Hashable],
        cond: Condition,
    ) -> torch.Tensor:
        """(B, *shape): ε on row i's trajectory at grid level ``levels[i]``."""
        return self._pick(self.ensure(levels, eps_star, hyp_keys, cond), levels, "eps")

    def _pick(self, trajs: Sequence[Trajectory], levels: Sequence[int], what: str) -> torch.Tensor:
        """(B, *shape): row i's ``x`` or ``eps`` at ``levels[i]`` (row i is view i mod G of its group)."""
        g = self.group
        return torch.stack([getattr(tr, what)[int(lvl)][i % g] for i, (tr, lvl) in enumerate(zip(trajs, levels))])

    @torch.no_grad()
    def eps_at_time(
        self,
        t: Sequence[int],
        eps_star: torch.Tensor,
        hyp_keys: Sequence[Hashable],
        cond: Condition,
    ) -> torch.Tensor:
        """(B, *shape): ε of row i's ODE at exactly ``t[i]`` (Algorithm 3 and the DSD authors' code).

        The ODE is integrated to t itself: from the grid point at or above t (j), a partial DDIM step
        x(t) = √ᾱ_t x0(t_j) + √(1 − ᾱ_t) ε(t_j) (x(t) = ε* when t lies above the grid's top), then one
        network evaluation ε̂(x(t), t) with the ODE's guidance and the trajectory's own condition. Rows whose t is a grid point reuse the cached ε
        (no evaluation). Rows of one jointly denoised group must share t.
        """
        levels = [self.grid.level_at_or_above(int(ti)) for ti in t]
        trajs = self.ensure(levels, eps_star, hyp_keys, cond)
        g = self.group
        eps = self._pick(trajs, levels, "eps")
        t_exact = torch.as_tensor([int(ti) for ti in t], dtype=torch.long)
        t_grid = torch.tensor([self.grid.timesteps[int(lvl)] for lvl in levels], dtype=torch.long)
        off = (t_exact != t_grid).nonzero().flatten()
        if off.numel() == 0:
            return eps
        groups = sorted({int(i) // g for i in off})
        rows = torch.tensor([j * g + r for j in groups for r in range(g)])
        x = self._pick(trajs, levels, "x")[rows]
        schedule = self.prior.schedule
        x0 = schedule.predict_x0(x, eps[rows], t_grid[rows])
        # Above the grid's top the ODE has not started: x(t) is ε* itself (as in the authors' code).
        above = (t_exact[rows] > t_grid[rows]).view(-1, *([1] * (x.ndim - 1))).to(x.device)
        x_t = torch.where(above, x, schedule.add_noise(x0, eps[rows], t_exact[rows]))
        group_cond = type(cond).cat([trajs[j * g].cond for j in groups])
        out = eps.clone()
        out[rows] = self.prior.predict_noise(x_t, t_exact[rows].to(x.device), group_cond, self.guidance_scale)
        return out

    def x0_at(
        self,
        levels: Sequence[int],
        eps_star: torch.Tensor,
        hyp_keys: Sequence[Hashable],
        cond: Condition,
    ) -> torch.Tensor:
        """(B, *shape): the one-step data prediction x0 at row i's grid level ``levels[i]``."""
        trajs = self.ensure(levels, eps_star, hyp_keys, cond)
        x, eps = self._pick(trajs, levels, "x"), self._pick(trajs, levels, "eps")
        t = torch.tensor([self.grid.timesteps[int(lvl)] for lvl in levels])
        return self.prior.schedule.predict_x0(x, eps, t)
