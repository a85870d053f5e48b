"""Stage 1's settings: loss weights (constants or threestudio-style ramps) and :class:`Stage1Config`."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as _field
from typing import Literal

from recon.pipeline.camera_groups import CameraSampling
from recon.scene.field import FieldConfig
from recon.scene.occupancy import OccupancyConfig
from recon.scene.volume import VolumeConfig

# A loss weight: a constant, or threestudio's ramp [start_step, start_value, end_value, end_step].
Weight = float | list[float]

def weight_at(value: Weight, step: int) -> float:
    """A scheduled weight at ``step``: a constant, or a linear ramp ``[s0, v0, v1, s1]`` (clamped)."""
    if isinstance(value, (int, float)):
        return float(value)
    if len(value) != 4:
        raise ValueError(f"a weight schedule is [start_step, start_value, end_value, end_step], got {value}")
    s0, v0, v1, s1 = (float(v) for v in value)
    if step <= s0 or s1 <= s0:
        return v0 if step <= s0 else v1
    f = min((step - s0) / (s1 - s0), 1.0)
    return v0 + (v1 - v0) * f


@dataclass
class LossWeights:
    """Loss weights (DESIGN.md's coarse-NeRF column); each a constant or a ramp, see :func:`weight_at`."""

    rgb: Weight = 500.0
    mask: Weight = 50.0
    guidance: Weight = 0.1
    normal_smooth: Weight = 8.0
    sparsity: Weight = 0.1
    opaque: Weight = 0.1


@dataclass
class Stage1Config:
    """Stage-1 optimisation.

    Attributes:
        steps: optimisation steps.
        seed: stream seed; hypothesis k's streams are ``(seed, k, purpose)``. In a run (``recon run`` /
            ``text``) this is an offset: the streams use ``stage1_stream_seed(run seed, stage1.seed)``
            (:mod:`recon.pipeline.run_setup`), so ``--seed`` reaches them.
        lr: Adam learning rate of the fields (and the learned background).
        adam_eps: Adam's ε; tiny (instant-ngp's choice for grids) so that steps do not depend on
            the overall scale of the losses.
        resolutions, batch_sizes, milestones: render schedule of the guidance views: before
            ``milestones[0]`` render ``batch_sizes[0]`` views per hypothesis at ``resolutions[0]``²,
            and so on (threestudio: 64/128/256 with 12/4/2).
        reference_rays: rays per hypothesis per step drawn uniformly from all known views' pixels
            (0 = every pixel of every known view, each step).
        guidance_background: background of the guidance renders: ``white``; ``mixed`` (each view
            white or a random colour with even odds, threestudio's zero123 recipe); ``random``;
            ``learned`` (the field's learned background; needs ``volume.background: learned``).
        Normals are rendered for the guidance views only while the normal-smooth weight is > 0.
    """

    steps: int = 600
    seed: int = 0
    lr: float = 0.01
    adam_eps: float = 1e-15
    field: FieldConfig = _field(default_factory=FieldConfig)
    volume: VolumeConfig = _field(default_factory=VolumeConfig)
    occupancy: OccupancyConfig = _field(default_factory=OccupancyConfig)
    resolutions: list[int] = _field(default_factory=lambda: [64, 128, 256])
    batch_sizes: list[int] = _field(default_factory=lambda: [12, 4, 2])
    milestones: list[int] = _field(default_factory=lambda: [200, 300])
    reference_rays: int = 4096
    cameras: CameraSampling = _field(default_factory=CameraSampling)
    guidance_background: Literal["white", "mixed", "random", "learned"] = "mixed"
    weights: LossWeights = _field(default_factory=LossWeights)

    def schedule(self, step: int) -> tuple[int, int]:
        """(resolution, views per hypothesis) of the guidance renders at ``step``."""
        if not (len(self.resolutions) == len(self.batch_sizes) == len(self.milestones) + 1):
            raise ValueError("need len(resolutions) == len(batch_sizes) == len(milestones) + 1")
        i = sum(1 for m in self.milestones if step >= m)
        return int(self.resolutions[i]), int(self.batch_sizes[i])


