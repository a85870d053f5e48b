"""Typed configs: YAML recipes, key=value overrides, clear errors."""

from dataclasses import dataclass, field
from typing import Literal

import pytest

from recon.config import ConfigError, dump_yaml, load, merge_overrides
from recon.diffusion import TimestepConfig
from recon.distill import DistillConfig


@dataclass
class Inner:
    steps: int = 10
    sizes: list[int] = field(default_factory=lambda: [64])


@dataclass
class Outer:
    name: str = "x"
    mode: Literal["a", "b"] = "a"
    scale: float | None = None
    inner: Inner = field(default_factory=Inner)


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("name: y\ninner:\n  steps: 20\n")
    cfg = load(Outer, path, ["inner.sizes=[64, 128]", "scale=2", "mode=b"])
    assert cfg == Outer(name="y", mode="b", scale=2.0, inner=Inner(steps=20, sizes=[64, 128]))
    assert load(Outer, None, ["scale=null"]).scale is None


def test_exponents_without_a_dot_are_numbers(tmp_path):
    # PyYAML (YAML 1.1) reads "1e-3" as a string; a float setting must still take it, from --set and from a file.
    assert load(Outer, None, ["scale=1e-3"]).scale == 1e-3
    path = tmp_path / "r.yaml"
    path.write_text("scale: 2E+1\n")
    assert load(Outer, path).scale == 20.0
    with pytest.raises(ConfigError, match="scale"):
        load(Outer, None, ["scale=1e-3x"])


@pytest.mark.parametrize("override,needle", [
    ("inner.stepz=3", "inner.stepz"),
    ("inner.steps=abc", "inner.steps"),
    ("mode=c", "mode"),
    ("noequals", "key=value"),
])
def test_bad_overrides_name_the_key(override, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        load(Outer, None, [override])


def test_distill_config_round_trip(tmp_path):
    cfg = load(DistillConfig, None, ["method=asd", "timesteps.kind=anneal", "timesteps.t_max=0.9"])
    assert cfg.method == "asd" and cfg.timesteps == TimestepConfig(kind="anneal", t_max=0.9)
    path = tmp_path / "distill.yaml"
    path.write_text(dump_yaml(cfg))
    assert load(DistillConfig, path) == cfg
    assert merge_overrides({"a": {"b": 1}}, ["a.c=2"]) == {"a": {"b": 1, "c": 2}}


def test_bad_yaml_file_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml"):
        load(Outer, path)
    with pytest.raises(ConfigError, match=r"missing\.yaml"):
        load(Outer, tmp_path / "missing.yaml")


@pytest.mark.parametrize("old, new", [("stage2.w_guidance=0.5", "stage2.weights.guidance"),
                                      ("stage2.camera_group=4", "stage2.cameras.group"),
                                      ("stage2.elevation_range=[0, 30]", "stage2.cameras.elevation_range")])
def test_old_stage2_spellings_are_refused_naming_the_new_key(tmp_path, old, new):
    from recon.pipeline.image_to_3d import ImageTo3DConfig

    with pytest.raises(ConfigError, match=f"is now spelled {new}") as err:
        load(ImageTo3DConfig, None, [old])
    assert "\n" not in str(err.value)
    recipe = tmp_path / "old.yaml"
    key, value = old.split("=")
    recipe.write_text(f"stage2:\n  {key.split('.')[1]}: {value}\n")
    with pytest.raises(ConfigError, match=f"is now spelled {new}"):
        load(ImageTo3DConfig, recipe, [])


def test_both_stages_draw_cameras_with_one_spelling():
    from recon.pipeline.image_to_3d import ImageTo3DConfig

    cfg = load(ImageTo3DConfig, None, ["stage1.cameras.group=4", "stage2.cameras.group=4",
                                       "stage2.weights.laplacian=0.5", "stage1.weights.guidance=2"])
    assert type(cfg.stage1.cameras) is type(cfg.stage2.cameras)
    assert cfg.stage2.cameras.group == 4 and cfg.stage2.weights.laplacian == 0.5
