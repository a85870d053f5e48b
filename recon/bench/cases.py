"""Cases of the toy-world benchmark and the runs that serve them.

A **case** is one ground truth: a library member whose front view is the input. Every member of a
family has the same front view (the parts that differ sit behind the body), so all cases of a family
share one input image and therefore one reconstruction per (method, seed): a **run**. Each run is
scored against every member of its family; the member the input was rendered from is the case's
ground truth, and the others are the equally plausible alternatives that coverage counts.

Two case sets: ``smoke`` (small budget, finishes on a 2-core CPU within 15 minutes for DSD and SDS) and
``full`` (every family, more seeds, the CPU demo's budget). Their budgets are ``key=value`` overrides
on top of the recipe (``configs/cpu-demo.yaml`` by default).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

CaseSetName = Literal["smoke", "full"]
Weighting = Literal["equal", "calibrated"]


@dataclass(frozen=True)
class Case:
    """One ground truth: ``family/member``."""

    family: str
    member: str

    @property
    def name(self) -> str:
        return f"{self.family}/{self.member}"


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
    budget: overrides of the recipe that set this set's optimisation budget."""

    name: str
    families: list[str]
    seeds: list[int]
    budget: list[str] = field(default_factory=list)


# Smoke budget (measured on the 2-core development machine, one torch thread, see docs/toy-world-benchmark.md):
# 150 stage-1 steps and a 10-step stage 2 on a 32³ tet grid, no export; about 75 s per run.
SMOKE_BUDGET = [
    "stage1.steps=150",
    "stage2.steps=10",
    "stage2.tet_resolution=32",
    "checkpoint_every=50",
]

CASE_SETS: dict[str, CaseSet] = {
    "smoke": CaseSet("smoke", families=["crate", "drum"], seeds=[0, 1], budget=SMOKE_BUDGET),
    # The CPU demo's own budget (300 stage-1 steps, 60 stage-2 steps on a 48³ grid).
    "full": CaseSet("full", families=["crate", "drum", "panel"], seeds=[0, 1, 2], budget=[]),
}


def case_set(name: str) -> CaseSet:
    if name not in CASE_SETS:
        raise ValueError(f"unknown case set {name!r}; choose one of {', '.join(CASE_SETS)}")
    s = CASE_SETS[name]
    return CaseSet(s.name, list(s.families), list(s.seeds), list(s.budget))


def runs_for(families: list[str], variants: list[Variant], seeds: list[int]) -> list[RunSpec]:
    """Every (family, variant, seed), family-major then seed then variant (so a partial bench compares
    methods on the same inputs first)."""
    return [RunSpec(f, v, s) for f in families for s in seeds for v in variants]
