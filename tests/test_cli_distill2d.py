"""``recon distill2d`` end to end on the built-in mixture, and its error paths."""

import json

from click.testing import CliRunner
from PIL import Image

from recon.cli import main


def test_distill2d_writes_grid_and_metrics(tmp_path):
    out = tmp_path / "d2d"
    result = CliRunner().invoke(main, ["distill2d", "--method", "dsd,sds", "--seeds", "0-3", "--steps", "40",
                                       "--size", "8", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["methods"]) == {"ddim", "dsd", "sds"}
    assert len(metrics["methods"]["dsd"]["nearest_mode"]) == 4
    grid = Image.open(out / "grid.png")
    assert grid.size[0] > 4 * 64 and grid.size[1] > 3 * 64  # 4 seed columns, 3 rows
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left behind


def test_distill2d_bad_method_is_one_clear_line(tmp_path):
    result = CliRunner().invoke(main, ["distill2d", "--method", "dsd,nope", "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert "unknown method 'nope'" in result.output


def test_distill2d_missing_prior_folder(tmp_path):
    result = CliRunner().invoke(main, ["distill2d", "--prior", str(tmp_path / "none"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "no such prior folder" in result.output
    assert not (tmp_path / "o" / "grid.png").exists()
