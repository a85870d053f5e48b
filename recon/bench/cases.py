"""Cases of the toy-world benchmark and the runs that serve them.

A **case** is one ground truth: a library member whose front view is the input. Every member of a
family has the same front view (the parts that differ sit behind the body), so all cases of a family
share one input image and therefore one reconstruction per (method, seed): a **run**. Each run is
scored against every member of its family; the member the input was rendered from is the case's
ground truth, and the others are the equally plausible alternatives that coverage counts.

Two case sets: ``smoke`` (crate and drum, one seed, the recipe's default method and SDS, a short
stage 2) and ``full`` (every family of the library, three seeds, the default method, DSD and SDS, the
same short stage 2). ``default`` in a method list stands for the recipe's ``distill.method``, resolved
when the bench starts (:func:`resolve_methods`). Budgets are ``key=value`` overrides on top of the
recipe (``configs/cpu-demo.yaml`` by default).

Each family also gets **floor runs** (:mod:`recon.bench.noise_floor`): its first method at each of its first
``floor_seeds`` seeds again with other stage-1/2 random streams (``RunSpec.floor``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

CaseSetName = Literal["smoke", "full"]
Weighting = Literal["equal", "calibrated"]
DEFAULT = "default"  # in a method list: the recipe's distill.method


@dataclass(frozen=True)
class Variant:
    """A method as benchmarked: the distiller and how its guidance weight is set.

    weighting ``equal``: the recipe's guidance weights for every method; ``calibrated``: weights scaled
    so the mean gradient norm matches SDS's at the recipe weight (:mod:`recon.bench.calibrate`).
    """

    method: str
    weighting: Weighting = "equal"

    @property
    def label(self) -> str:
        return self.method if self.weighting == "equal" else f"{self.method}-cal"

    @classmethod
    def parse(cls, text: str) -> Variant:
        """``dsd`` -> equal weights; ``dsd-cal`` -> calibrated; a method name with dashes of its own works
        the same way (``a-b`` -> method ``a-b``; ``a-b-cal`` -> ``a-b`` calibrated)."""
        text = text.strip().lower()
        if text.endswith("-cal"):
            return cls(text[: -len("-cal")], "calibrated")
        return cls(text, "equal")


@dataclass(frozen=True)
class RunSpec:
    """One reconstruction: the family's input, one method variant, one run seed (K hypotheses).
    floor: the family's floor run (the same, with stage-1/2 streams moved; not counted in any method's
    figures)."""

    family: str
    variant: Variant
    seed: int
    floor: bool = False

    @property
    def key(self) -> str:
        return f"{self.family}__{self.variant.label}__s{self.seed}" + ("__floor" if self.floor else "")


@dataclass
class CaseSet:
    """families: whose members are the cases (None = every family of the library); seeds: run seeds
    (hypothesis k of seed s uses (s, k)); budget: overrides of the recipe that set this set's
    optimisation budget; methods: the variants benchmarked when the caller names none (``default`` =
    the recipe's distill.method)."""

    name: str
    families: list[str] | None
    seeds: list[int]
    budget: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=lambda: [DEFAULT, "sds"])


# Smoke budget: the CPU demo's stage 1 (300 steps: with fewer, DSD's small gradient has not yet left
# the blurred family average — 150 steps gave four identical blobs) and a short stage 2 (10 steps on a
# 32³ tet grid), no export. Measured: 118–123 s per run, 8 min 20 s for the smoke set's 4 method runs
# (DSD and SDS, two families) on the 2-core development machine, one torch thread
# (docs/toy-world-benchmark.md). The full set uses it too: the CPU demo's stage 2 (60 steps on 48³)
# took a run to ≈ 200 s and the full set past 2 hours; the hidden backs are decided in stage 1.
SMOKE_BUDGET = [
    "stage2.steps=10",
    "stage2.tet_resolution=32",
    "checkpoint_every=50",
]

CASE_SETS: dict[str, CaseSet] = {
    "smoke": CaseSet("smoke", families=["crate", "drum"], seeds=[0], budget=SMOKE_BUDGET, methods=[DEFAULT, "sds"]),
    "full": CaseSet("full", families=None, seeds=[0, 1, 2], budget=SMOKE_BUDGET, methods=[DEFAULT, "dsd", "sds"]),
}


def case_set(name: str) -> CaseSet:
    if name not in CASE_SETS:
        raise ValueError(f"unknown case set {name!r}; choose one of {', '.join(CASE_SETS)}")
    s = CASE_SETS[name]
    return CaseSet(s.name, None if s.families is None else list(s.families), list(s.seeds), list(s.budget),
                   list(s.methods))


def resolve_methods(labels: list[str], default: str) -> list[str]:
    """``labels`` with ``default`` (and ``default-cal``) replaced by the recipe's method, duplicates dropped
    (first occurrence kept)."""
    out: list[str] = []
    for label in labels:
        text = label.strip().lower()
        if text == DEFAULT:
            text = default
        elif text == f"{DEFAULT}-cal":
            text = f"{default}-cal"
        if text not in out:
            out.append(text)
    return out


def runs_for(families: list[str], variants: list[Variant], seeds: list[int], floor_seeds: int = 0) -> list[RunSpec]:
    """Every (family, variant, seed), family-major then seed then variant (so a partial bench compares
    methods on the same inputs first); each of a family's first ``floor_seeds`` seeds is followed by its
    floor run (the first variant at that seed)."""
    out = []
    for f in families:
        for i, s in enumerate(seeds):
            out += [RunSpec(f, v, s) for v in variants]
            if i < floor_seeds and variants:
                out.append(RunSpec(f, variants[0], s, floor=True))
    return out
