"""Cases of the toy-world benchmark and the runs that serve them.

A **case** is one ground truth: a library member whose front view is the input. Every member of a
family has the same front view (the parts that differ sit behind the body), so all cases of a family
share one input image and therefore one reconstruction per (method, seed): a **run**. Each run is
scored against every member of its family; the member the input was rendered from is the case's
ground truth, and the others are the equally plausible alternatives that coverage counts.

Two case sets: ``smoke`` (two families, one seed, DSD and SDS, a short stage 2: within 15 minutes on
a 2-core CPU) and ``full`` (every family, three seeds, all four methods, the CPU demo's budget).
Budgets are ``key=value`` overrides on top of the recipe (``configs/cpu-demo.yaml`` by default).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

CaseSetName = Literal["smoke", "full"]
Weighting = Literal["equal", "calibrated"]


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
        """``dsd`` -> equal weights; ``dsd-cal`` -> calibrated."""
        text = text.strip().lower()
        if text.endswith("-cal"):
            return cls(text[: -len("-cal")], "calibrated")
        return cls(text, "equal")


@dataclass(frozen=True)
class RunSpec:
    """One reconstruction: the family's input, one method variant, one run seed (K hypotheses)."""

    family: str
    variant: Variant
    seed: int

    @property
    def key(self) -> str:
        return f"{self.family}__{self.variant.label}__s{self.seed}"


@dataclass
class CaseSet:
    """families: whose members are the cases; seeds: run seeds (hypothesis k of seed s uses (s, k));
    budget: overrides of the recipe that set this set's optimisation budget; methods: the variants
    benchmarked when the caller names none."""

    name: str
    families: list[str]
    seeds: list[int]
    budget: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=lambda: ["dsd", "sds", "asd", "sdi"])


# Smoke budget: the CPU demo's stage 1 (300 steps: with fewer, DSD's small gradient has not yet left
# the blurred family average — 150 steps gave four identical blobs) and a short stage 2 (10 steps on a
# 32³ tet grid), no export. Measured: 118–123 s per run, 8 min 20 s for the whole smoke set (DSD and SDS,
# two families) on the 2-core development machine, one torch thread (docs/toy-world-benchmark.md).
SMOKE_BUDGET = [
    "stage2.steps=10",
    "stage2.tet_resolution=32",
    "checkpoint_every=50",
]

CASE_SETS: dict[str, CaseSet] = {
    "smoke": CaseSet("smoke", families=["crate", "drum"], seeds=[0], budget=SMOKE_BUDGET, methods=["dsd", "sds"]),
    # The CPU demo's own budget (300 stage-1 steps, 60 stage-2 steps on a 48³ grid), every method.
    "full": CaseSet("full", families=["crate", "drum", "panel"], seeds=[0, 1, 2], budget=[],
                    methods=["dsd", "sds", "asd", "sdi"]),
}


def case_set(name: str) -> CaseSet:
    if name not in CASE_SETS:
        raise ValueError(f"unknown case set {name!r}; choose one of {', '.join(CASE_SETS)}")
    s = CASE_SETS[name]
    return CaseSet(s.name, list(s.families), list(s.seeds), list(s.budget), list(s.methods))


def runs_for(families: list[str], variants: list[Variant], seeds: list[int]) -> list[RunSpec]:
    """Every (family, variant, seed), family-major then seed then variant (so a partial bench compares
    methods on the same inputs first)."""
    return [RunSpec(f, v, s) for f in families for s in seeds for v in variants]
