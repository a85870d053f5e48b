"""Case sets, method lists (the recipe's default method, the Method Literal, ``-cal``) and run order."""

from __future__ import annotations

import typing

import pytest

import recon.bench.bench as bench_module
from recon.bench.bench import _variants, known_methods
from recon.bench.cases import DEFAULT, SMOKE_BUDGET, RunSpec, Variant, case_set, resolve_methods, runs_for
from recon.config import ConfigError
from recon.distill.base import Method


def test_case_sets():
    smoke, full = case_set("smoke"), case_set("full")
    assert smoke.families == ["crate", "drum"] and smoke.seeds == [0] and smoke.methods == [DEFAULT, "sds"]
    assert full.families is None  # every family of the library
    assert full.seeds == [0, 1, 2] and full.methods == [DEFAULT, "dsd", "sds"]
    assert full.budget == smoke.budget == SMOKE_BUDGET
    assert "stage2.steps=10" in SMOKE_BUDGET and "stage2.tet_resolution=32" in SMOKE_BUDGET
    with pytest.raises(ValueError, match="unknown case set"):
        case_set("huge")


def test_default_resolves_to_the_recipe_method_without_duplicates():
    assert resolve_methods([DEFAULT, "sds"], "dsd") == ["dsd", "sds"]
    assert resolve_methods([DEFAULT, "dsd", "sds"], "dsd") == ["dsd", "sds"]
    assert resolve_methods([DEFAULT, "dsd", "sds"], "new-dsd") == ["new-dsd", "dsd", "sds"]
    assert resolve_methods([DEFAULT, "sds"], "sds") == ["sds"]
    assert resolve_methods(["Default-cal", "sds"], "asd") == ["asd-cal", "sds"]


def test_known_methods_are_the_method_literal():
    assert known_methods() == typing.get_args(Method)
    assert [v.label for v in _variants(["dsd", "sds", "asd-cal", "dsd"])] == ["dsd", "sds", "asd-cal"]
    with pytest.raises(ConfigError, match="unknown method 'magic'"):
        _variants(["magic"])


def test_a_new_distiller_appears_without_a_list_and_dashed_names_keep_cal(monkeypatch):
    monkeypatch.setattr(bench_module, "Method", typing.Literal["sds", "dsd-x"])
    assert [(v.method, v.weighting) for v in _variants(["dsd-x", "dsd-x-cal", "sds-cal"])] == [
        ("dsd-x", "equal"), ("dsd-x", "calibrated"), ("sds", "equal")]
    with pytest.raises(ConfigError):
        _variants(["dsd"])  # no longer in the Literal


def test_variant_parse():
    assert Variant.parse(" DSD ") == Variant("dsd")
    assert Variant.parse("a-b-c-cal") == Variant("a-b-c", "calibrated") and Variant("a-b-c", "calibrated").label == "a-b-c-cal"


def test_floor_runs_follow_each_familys_first_floor_seeds():
    v = [Variant("dsd"), Variant("sds")]
    specs = runs_for(["crate", "drum"], v, [0, 1], floor_seeds=1)
    keys = [s.key for s in specs]
    assert keys[:3] == ["crate__dsd__s0", "crate__sds__s0", "crate__dsd__s0__floor"]
    assert [s for s in specs if s.floor] == [RunSpec("crate", v[0], 0, True), RunSpec("drum", v[0], 0, True)]
    assert len(specs) == 2 * 2 * 2 + 2
    assert not any(s.floor for s in runs_for(["crate"], v, [0]))
    three = runs_for(["crate"], v, [4, 5, 6, 7], floor_seeds=3)
    assert [s.seed for s in three if s.floor] == [4, 5, 6] and all(s.variant == v[0] for s in three if s.floor)
    assert [s.key for s in three][:6] == ["crate__dsd__s4", "crate__sds__s4", "crate__dsd__s4__floor",
                                          "crate__dsd__s5", "crate__sds__s5", "crate__dsd__s5__floor"]
    assert len(runs_for(["crate"], v, [0, 1], floor_seeds=5)) == 2 * 2 + 2  # no more pairs than seeds
