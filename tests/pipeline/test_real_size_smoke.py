"""The real-size smoke (issue 10, item 1): a random-weight Zero-1-to-3 XL at the published size, in the
published layout, through `recon run` with the real recipe for one step of each stage. The figures of all
four priors are in docs/benchmarks.md (benchmarks/real_size_smoke.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_real_size_zero123_runs_the_real_recipe_and_writes_every_output(tmp_path):
    report = tmp_path / "smoke.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "real_size_smoke.py"), "--priors", "zero123-xl",
                           "--steps", "1", "1", "--models", str(tmp_path / "models"), "--out", str(tmp_path / "runs"),
                           "--keep", "--json", str(report)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (row,) = json.loads(report.read_text())
    assert row["exit"] == 0 and row["missing"] == []
    out = tmp_path / "runs" / "zero123-xl"
    for rel in ("run.json", "index.html", "contact_sheet.png", "input.png", "turntable_0.gif",
                *(f"meshes/hypothesis_0.{ext}" for ext in ("glb", "obj", "mtl", "png", "ply"))):
        assert (out / rel).is_file(), rel
    record = json.loads((out / "run.json").read_text())
    assert record["config"]["stage1"]["resolutions"] == [64, 128, 256]  # the recipe's, not cut
    assert record["config"]["stage2"]["tet_resolution"] == 128 and record["config"]["export"]["texture_size"] == 1024
    assert row["stage1"]["rows_per_step"] > 0 and row["stage2"]["rows_per_step"] > 0

    # The folder holds the network the published config describes, counted by diffusers' own class ...
    from diffusers import UNet2DConditionModel

    from recon.priors import architectures as arch
    from recon.priors.loading import load_prior

    with torch.device("meta"):
        published = sum(p.numel() for p in UNet2DConditionModel(**arch.ZERO123_UNET).parameters())
    assert published == 859_532_484  # 3.44 GB in fp32, the published unet/diffusion_pytorch_model.safetensors
    assert row["parameters"]["match"] and row["parameters"]["found"]["unet"] == published
    # ... and that is what recon loads from it.
    prior = load_prior(tmp_path / "models" / "zero123-xl")
    assert sum(p.numel() for p in prior.unet.parameters()) == published
    assert sum(p.numel() for p in prior.image_encoder.parameters()) == 303_966_208
