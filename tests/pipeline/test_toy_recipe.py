"""The recipe a run starts from follows the model: toy-zero123's zoo entry names configs/toy-zero123.yaml (the CPU
budget sized for its 32² images); zero123-xl and any other Zero-1-to-3 keep configs/image-to-3d.yaml; the
LibraryPrior keeps configs/cpu-demo.yaml; --config, --set and flags still go on top."""

from __future__ import annotations

from pathlib import Path

import pytest

from recon.config import ConfigError, read_yaml
from recon.pipeline.recipes import CONFIG_DIR, image_config, recipe_for
from recon.priors.zoo import ENV_ZOO, ZOO_FILE, load_zoo

TOY = CONFIG_DIR / "toy-zero123.yaml"


def test_zoo_entry_names_the_toy_recipe():
    entry = load_zoo().get("toy-zero123")
    assert entry.recipe_path == TOY and TOY.is_file()
    assert load_zoo().get("zero123-xl").recipe_path is None


@pytest.mark.parametrize("path", ["toy-zero123", str(ZOO_FILE.parent / "toy-zero123")])
def test_recipe_for_the_toy_model(path):
    assert recipe_for("zero123", path) == TOY


@pytest.mark.parametrize("path", [None, "zero123-xl", "stable-zero123"])
def test_recipe_for_other_zero123_models(path):
    assert recipe_for("zero123", path) == CONFIG_DIR / "image-to-3d.yaml"
    assert recipe_for("library", path) == CONFIG_DIR / "cpu-demo.yaml"


def test_prior_flag_resolves_to_the_toy_recipe():
    c = image_config(None, [], "toy-zero123")
    raw = read_yaml(TOY)
    assert (c.prior.kind, c.prior.path, c.prior.guidance_scale) == ("zero123", "toy-zero123", 3.0)
    assert c.prior.camera_bin == raw["prior"]["camera_bin"]
    # the CPU demo's budget ...
    assert c.stage1.steps == 300 and c.stage1.resolutions == [64] and c.stage1.batch_sizes == [1]
    assert c.stage2.steps == 60 and c.stage2.tet_resolution == 48 and c.stage2.resolution == 64
    assert c.stage1.guidance_background == "white" and c.distill.method == "dsd-commit"
    # ... with the toy model's guidance weights
    assert c.stage1.weights.guidance == raw["stage1"]["weights"]["guidance"] == 1.0
    assert c.stage2.weights.guidance == raw["stage2"]["weights"]["guidance"]
    assert (c.stage1_timesteps.t_max, c.stage1_timesteps.t_min) == (0.85, 0.2)


def test_config_file_naming_the_toy_model_gets_the_same():
    assert image_config(TOY) == image_config(None, [], "toy-zero123")


def test_config_file_naming_only_the_prior_starts_from_its_recipe(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text("prior:\n  kind: zero123\n  path: toy-zero123\nstage2:\n  steps: 5\n")
    c = image_config(mine)
    assert (c.stage1.steps, c.stage1.resolutions, c.stage2.tet_resolution, c.stage2.steps) == (300, [64], 48, 5)


def test_full_zero123_keeps_the_gpu_recipe():
    for prior in ("zero123", "zero123-xl"):
        c = image_config(None, [], prior)
        assert c.stage1.steps == 600 and c.stage1.resolutions == [64, 128, 256] and c.stage2.tet_resolution == 128
    demo = image_config(None, [])
    assert demo.prior.kind == "library" and demo.stage1.weights.guidance == 3.0


def test_overrides_and_flags_go_on_top_of_the_toy_recipe(tmp_path):
    extra = tmp_path / "extra.yaml"
    extra.write_text("stage2:\n  steps: 5\n")
    c = image_config(extra, ["stage1.steps=7"], "toy-zero123", hypotheses=2)
    assert (c.stage1.steps, c.stage2.steps, c.hypotheses, c.stage2.tet_resolution) == (7, 5, 2, 48)


def test_entry_without_recipe_or_with_a_missing_one(tmp_path, monkeypatch):
    zoo = tmp_path / "zoo.yaml"
    common = 'kind: zero123\n    hub_id: ""\n    revision: ""\n    licence: x\n    size: x\n    files: []\n'
    zoo.write_text("models:\n"
                   f"  - name: plain\n    {common}"
                   f"  - name: broken\n    recipe: no-such-recipe.yaml\n    {common}"
                   f"  - name: demo\n    recipe: {Path('configs', 'cpu-demo.yaml')}\n    {common}")
    monkeypatch.setenv(ENV_ZOO, str(zoo))
    assert recipe_for("zero123", "plain") == CONFIG_DIR / "image-to-3d.yaml"
    assert recipe_for("zero123", "demo") == CONFIG_DIR / "cpu-demo.yaml"  # a path relative to the repository
    with pytest.raises(ConfigError, match=r"no-such-recipe\.yaml"):
        recipe_for("zero123", "broken")
