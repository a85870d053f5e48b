"""``recon batch --ray`` on a local Ray instance: same outputs and failure report as the local batch."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from recon.cli import main
from tests.pipeline.tiny_run import TINY

ray = pytest.importorskip("ray", reason="Ray is the optional extra recon[ray]; install it to run this test")
ROOT = Path(__file__).resolve().parents[2]


def test_ray_batch_matches_the_local_batch(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(ROOT / "data" / "examples" / "crate.png", folder / "crate.png")
    (folder / "broken.png").write_text("not an image")
    local = tmp_path / "local"
    runner = CliRunner()
    # A Ray task reserving one CPU runs torch on one thread; so does the local reference run.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a = runner.invoke(main, ["batch", str(folder), "--out", str(local), "--json", *TINY])
    finally:
        torch.set_num_threads(threads)
    remote = tmp_path / "ray"
    b = runner.invoke(main, ["batch", str(folder), "--out", str(remote), "--json", "--ray", "local", *TINY])
    assert a.exit_code == b.exit_code == 1, b.output
    sa, sb = json.loads(a.stdout), json.loads(b.stdout)
    assert [(Path(i["image"]).name, i["status"]) for i in sa["items"]] == \
           [(Path(i["image"]).name, i["status"]) for i in sb["items"]] == [("broken.png", "failed"), ("crate.png", "done")]
    assert "broken.png" in sb["items"][0]["error"]
    for path in sorted((local / "crate" / "meshes").iterdir()):
        assert (remote / "crate" / "meshes" / path.name).read_bytes() == path.read_bytes(), path.name
