"""Stage 1: fit K coarse radiance fields at once to known views plus an optional guidance term.

Each step, for every hypothesis k:

1. **Reference term** — rays through the known views (the input photo, or several known renders
   in the photometric multi-view mode) give RGB and mask losses against the targets. Text-to-3D
   has no known views (``views=None``): the term is skipped and guidance plus the regularisers
   alone shape the field.
2. **Guidance term** (optional) — V views at random orbit cameras (each hypothesis draws its own)
   are rendered at the scheduled resolution; ``guidance(rgb, cameras, step)`` turns the batch
   into a loss (the lead connects it to a prior + distiller). Sparsity and normal smoothness act
   on these renders. With ``cameras.group = G > 1`` the V views of a hypothesis come in groups of
   G at one elevation, 360°/G apart (MVDream's 4-view convention; :mod:`recon.pipeline.camera_groups`).
3. Opacity entropy (threestudio's "opaque") on every render; Adam steps all K fields.

Batch order is **hypothesis-major**: row ``k · V + v`` of the guidance batch is view v of
hypothesis slot k, and ``cameras`` follows the same order. Every random draw comes from a stream
of :mod:`recon.seeding` keyed by ``(seed, hypothesis, purpose)``, and losses are per-hypothesis
means summed over hypotheses, so hypothesis k's run does not depend on which others share the
batch (up to float rounding in batched kernels). The t range of the guidance lives in the
distiller's :class:`~recon.diffusion.timesteps.TimestepConfig`, not here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from recon import seeding
from recon.config import from_dict, to_dict
from recon.pipeline import losses
from recon.pipeline.camera_groups import check_group
from recon.pipeline.known_views import KnownViews
from recon.pipeline.stage1_config import Stage1Config, weight_at
from recon.render.cameras import Cameras, camera_batch, rays
from recon.scene.field import RadianceField
from recon.scene.occupancy import OccupancyGrid
from recon.scene.volume import LearnedBackground, render_rays, render_rays_and_views, render_views

# Random-stream purposes of stage 1 (see recon.seeding): one independent stream each.
FIELD_INIT = "stage1_field_init"
SAMPLES = "stage1_samples"
REF_RAYS = "stage1_reference_rays"
BACKGROUND = "stage1_background"
OCCUPANCY = "stage1_occupancy"

GuidanceFn = Callable[[torch.Tensor, Cameras, int], torch.Tensor]
"""guidance(rgb (K·V, 3, H, W) in [0, 1] with gradients, cameras (K·V), step) -> scalar loss.

Rows are hypothesis-major. Return the mean over rows (as ``recon.distill.sd_loss`` does); stage 1
multiplies it by K so each hypothesis's gradient does not depend on K."""


@dataclass
class StepResult:
    """One step: step index, weighted loss terms (floats, summed over hypotheses), total, the
    guidance renders (K, V, 3, H, W) detached (None without guidance) and field evaluations."""

    step: int
    losses: dict[str, float]
    total: float
    renders: torch.Tensor | None
    samples: int
    seconds: float


class Stage1:
    """K coarse radiance fields optimised together; a :class:`~recon.pipeline.stage.Stage` (step it with
    :func:`~recon.pipeline.stage.run_stage`).

    Args:
        config: the stage's settings.
        views: known views (the input photo via :meth:`KnownViews.from_image`, or several views);
            None for text-to-3D (no reference term; then ``guidance`` is required).
        hypotheses: hypothesis indices (K = len); index h seeds every stream of its slot.
        guidance: optional :data:`GuidanceFn`.
    """

    def __init__(self, config: Stage1Config, views: KnownViews | None, hypotheses: int | Sequence[int] = 1,
                 guidance: GuidanceFn | None = None) -> None:
        self.config = config
        self.hypotheses = tuple(range(hypotheses)) if isinstance(hypotheses, int) else tuple(int(h) for h in hypotheses)
        if not self.hypotheses:
            raise ValueError("need at least one hypothesis")
        if views is None and guidance is None:
            raise ValueError("stage 1 needs known views, a guidance term, or both")
        for size in config.batch_sizes:
            check_group(int(size), config.cameras.group, "stage1.batch_sizes")
        self.guidance = guidance
        self.views = views
        k = len(self.hypotheses)
        self.field = new_field(config, self.hypotheses)
        self.background = (LearnedBackground(self.hypotheses, config.seed)
                           if config.volume.background == "learned" else None)
        if config.guidance_background == "learned" and self.background is None:
            raise ValueError("guidance_background 'learned' needs volume.background: learned")
        self.occupancy = OccupancyGrid(config.occupancy, k, config.field.radius)
        self.optimizer = torch.optim.Adam(self.parameters(), lr=config.lr, betas=(0.9, 0.99), eps=config.adam_eps)
        self.generators: dict[str, list[torch.Generator]] = {
            purpose: [seeding.generator(config.seed, h, purpose) for h in self.hypotheses]
            for purpose in (seeding.CAMERAS, SAMPLES, REF_RAYS, BACKGROUND, OCCUPANCY)
        }
        self.step_index = 0
        if views is not None:
            # All known-view rays and their targets, flattened once: (N·H·W, ...).
            o, d = rays(views.cameras, *views.rgb.shape[2:])
            self._ref_o = o.reshape(-1, 3)
            self._ref_d = d.reshape(-1, 3)
            self._ref_rgb = views.rgb.permute(0, 2, 3, 1).reshape(-1, 3)
            self._ref_mask = views.mask.permute(0, 2, 3, 1).reshape(-1, 1)

    checkpoint_tag = "stage1_nerf"

    @property
    def total_steps(self) -> int:
        return self.config.steps

    @property
    def num_hypotheses(self) -> int:
        return len(self.hypotheses)

    def parameters(self) -> list[torch.nn.Parameter]:
        params = list(self.field.parameters())
        if self.background is not None:
            params += list(self.background.parameters())
        return params

    # ------------------------------------------------------------------------------ one step
    def _reference_batch(self) -> tuple[torch.Tensor, ...]:
        """(K, R, ·) rays and targets of this step's reference rays."""
        k, total = self.num_hypotheses, self._ref_o.shape[0]
        n = self.config.reference_rays
        if n <= 0 or n >= total:
            idx = torch.arange(total).expand(k, total)
        else:
            idx = torch.stack([torch.randint(0, total, (n,), generator=g) for g in self.generators[REF_RAYS]])
        return self._ref_o[idx], self._ref_d[idx], self._ref_rgb[idx], self._ref_mask[idx]

    def _guidance_background(self, views: int) -> torch.Tensor | torch.nn.Module | None:
        mode = self.config.guidance_background
        if mode == "learned":
            return self.background
        if mode == "white":
            return None
        group = self.config.cameras.group  # one colour per jointly denoised group (threestudio's share_aug_bg)
        cols = []
        for g in self.generators[BACKGROUND]:
            c = torch.rand(views // group, 3, generator=g)
            if mode == "mixed":
                white = torch.rand(views // group, 1, generator=g) < 0.5
                c = torch.where(white, torch.ones_like(c), c)
            cols.append(c.repeat_interleave(group, dim=0))
        return torch.cat(cols)  # (K·V, 3)

    def sample_cameras(self, views: int, resolution: int, step: int | None = None) -> Cameras:
        """K·V random cameras, hypothesis-major, each hypothesis from its own camera stream (in groups
        of ``cameras.group`` views when that is > 1). Where the guidance pins the views to an anchor at
        ``step`` (``dsd-commit``'s commit phase) every view sits there; the streams advance the same."""
        c = self.config.cameras
        drawn = Cameras.cat([c.draw(views, g, resolution) for g in self.generators[seeding.CAMERAS]])
        anchor_fn = getattr(self.guidance, "anchor_camera", None)
        anchor = None if anchor_fn is None or step is None else anchor_fn(step)
        if anchor is None:
            return drawn
        n = len(drawn)
        return camera_batch(torch.full((n,), anchor[0]), torch.full((n,), anchor[1]), drawn.distance, drawn.fovy,
                            resolution)

    def step(self) -> StepResult:
        """Run one optimisation step and advance ``step_index``."""
        start = time.perf_counter()
        cfg, step, k = self.config, self.step_index, self.num_hypotheses
        occ = self.occupancy
        if occ.enabled and step % cfg.occupancy.update_every == 0:
            occ.update(self.field.density, self.generators[OCCUPANCY])
        w = {name: weight_at(getattr(cfg.weights, name), step) for name in
             ("rgb", "mask", "guidance", "normal_smooth", "sparsity", "opaque")}
        terms: dict[str, torch.Tensor] = {}
        samples = 0

        guided = self.guidance is not None and w["guidance"] > 0
        want_normals = guided and w["normal_smooth"] > 0
        ref = out = None
        if guided:
            res, views = cfg.schedule(step)
            cams = self.sample_cameras(views, res, step)
        if self.views is not None:
            # Reference rays (white or learned background, as the input photo is composited).
            o, d, target, mask = self._reference_batch()
            if guided:
                # One render call for the reference rays and the guidance views (each op once, not twice).
                ref, out = render_rays_and_views(
                    self.field, o, d, cams, res, res, cfg.volume, ray_background=self.background,
                    view_background=self._guidance_background(views), occupancy=occ,
                    generators=self.generators[SAMPLES], normals=want_normals)
            else:
                ref = render_rays(self.field, o, d, cfg.volume, occupancy=occ, generators=self.generators[SAMPLES],
                                  background=self.background)
            samples += int(ref["samples"])
            terms["rgb"] = w["rgb"] * losses.rgb_loss(ref["rgb"], target, mask, ref["background"])
            terms["mask"] = w["mask"] * losses.mask_loss(ref["opacity"], mask[..., 0])
            terms["opaque"] = w["opaque"] * losses.opacity_entropy(ref["opacity"])

        renders = None
        if guided:
            if out is None:
                out = render_views(self.field, cams, res, res, cfg.volume, occupancy=occ,
                                   generators=self.generators[SAMPLES], background=self._guidance_background(views),
                                   normals=want_normals)
                samples += int(out["samples"])
            rgb = out["rgb"].reshape(k * views, 3, res, res)
            terms["guidance"] = w["guidance"] * self.guidance(rgb, cams, step)
            terms["sparsity"] = w["sparsity"] * losses.sparsity(out["opacity"])
            terms["opaque"] = terms.get("opaque", 0.0) + w["opaque"] * losses.opacity_entropy(out["opacity"])
            if want_normals:
                terms["normal_smooth"] = w["normal_smooth"] * losses.normal_smoothness(
                    out["normal"].reshape(k * views, 3, res, res))
            renders = rgb.detach().reshape(k, views, 3, res, res)

        # Per-hypothesis means summed over hypotheses: K · (mean over the K-batch).
        total = k * sum(terms.values()) if terms else torch.zeros(())
        self.optimizer.zero_grad(set_to_none=True)
        if total.requires_grad:  # no term this step (no known views, guidance weight 0): nothing to fit
            total.backward()
            self.optimizer.step()
        self.step_index += 1
        return StepResult(step, {n: float(v.detach()) * k for n, v in terms.items()}, float(total.detach()),
                          renders, samples, time.perf_counter() - start)

    # ------------------------------------------------------------------------------ renders
    @torch.no_grad()
    def render(self, cameras: Cameras, resolution: int, normals: bool = False) -> dict[str, torch.Tensor]:
        """Deterministic (midpoint) renders of K·V cameras, hypothesis-major -> (K, V, C, H, W) maps."""
        return render_views(self.field, cameras, resolution, resolution, self.config.volume,
                            occupancy=self.occupancy, background=self.background, normals=normals)

    # --------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything a bit-identical resume needs: parameters, optimizer, step, occupancy, RNG, and the
        guidance's own state (ε*, streams, trajectory cache) when it has one."""
        state = {
            "config": to_dict(self.config),
            "hypotheses": list(self.hypotheses),
            "step": self.step_index,
            "field": self.field.state_dict(),
            "background": None if self.background is None else self.background.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "occupancy": self.occupancy.state_dict(),
            "generators": {p: [g.get_state() for g in gens] for p, gens in self.generators.items()},
        }
        if hasattr(self.guidance, "state_dict"):
            state["guidance"] = self.guidance.state_dict()  # type: ignore[union-attr]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if tuple(state["hypotheses"]) != self.hypotheses:
            raise ValueError(f"checkpoint holds hypotheses {state['hypotheses']}, this stage has {list(self.hypotheses)}")
        self.field.load_state_dict(state["field"])
        if self.background is not None:
            self.background.load_state_dict(state["background"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.occupancy.load_state_dict(state["occupancy"])
        for purpose, states in state["generators"].items():
            for g, s in zip(self.generators[purpose], states):
                g.set_state(s)
        if "guidance" in state and hasattr(self.guidance, "load_state_dict"):
            self.guidance.load_state_dict(state["guidance"])  # type: ignore[union-attr]
        self.step_index = int(state["step"])


def new_field(config: Stage1Config, hypotheses: Sequence[int]) -> RadianceField:
    """K radiance fields at their seeded initialisation, as stage 1 starts them."""
    return RadianceField(config.field, tuple(hypotheses), config.seed, purpose=FIELD_INIT)


def field_from_state(state: dict[str, Any]) -> RadianceField:
    """The trained, frozen fields of a :meth:`Stage1.state_dict` — what export needs, without the
    optimiser, views or guidance a :class:`Stage1` would rebuild."""
    field = new_field(from_dict(Stage1Config, state["config"]), state["hypotheses"])
    field.load_state_dict(state["field"])
    return field.requires_grad_(False)


