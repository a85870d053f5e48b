"""`benchmarks/gpu_check.py --dry-run` (issue 10, item 2): every section runs at tiny sizes on the CPU, a
failing section is recorded while the others still report their figures, and a pipeline that runs out
of time stops at a step boundary and projects the full schedule."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_dry_run_reports_every_section(tmp_path):
    out = tmp_path / "report"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run", "--out", str(out),
                           "--inject-error", "install", "--pipeline-limit-s", "0.01"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]  # the injected error is reported
    data = json.loads((out / "report.json").read_text())
    sec = data["sections"]
    assert data["dry_run"] and list(sec) == ["environment", "install", "raster", "models", "throughput", "pipeline"]
    assert sec["install"]["status"] == "error" and "injected" in sec["install"]["reason"]
    assert "Traceback" in sec["install"]["traceback"]
    # The sections after the failing one still ran.
    assert sec["environment"]["status"] == "ok" and sec["environment"]["figures"]["torch"] == __import__("torch").__version__
    raster = sec["raster"]["figures"]
    assert sec["raster"]["status"] == "ok" and "vs itself" in raster["compared"]
    assert len(raster["scenes"]) == 4 and all(s["pass"] and s["mask_iou"] == 1.0 for s in raster["scenes"])
    assert sec["models"]["status"] == "ok" and sec["models"]["figures"]["match"]
    # Every (variant, dtype, model) group is measured at batch 1/4/8/16 or skipped with its reason (the
    # section's time limit decides how far the list gets); fp16 comes first.
    tput = sec["throughput"]["figures"]
    measured = {(r["variant"], r["dtype"], r["model"]) for r in tput["rows"]}
    skipped = {(r["variant"], r["dtype"], r["model"]) for r in tput["skipped"] if r["reason"]}
    groups = {(v, d, m) for v in ("base", "channels_last", "no_sdpa", "compile")
              for d in ("float16", "bfloat16", "float32") for m in ("zero123", "sd21")}
    assert measured | skipped == groups and not measured & skipped
    assert {("base", "float16", "zero123"), ("base", "float16", "sd21")} <= measured
    for group in measured:
        rows = [r for r in tput["rows"] if (r["variant"], r["dtype"], r["model"]) == group]
        assert [r["batch"] for r in rows] == [1, 4, 8, 16], group
        assert all(r["predictions_per_s"] > 0 and r["rows_per_call"] == 2 * r["batch"] for r in rows)
    pipe = sec["pipeline"]["figures"]
    assert sec["pipeline"]["status"] == "partial" and pipe["hypotheses"] == 2, sec["pipeline"]
    s1 = pipe["stages"]["stage1"]
    assert s1["steps_run"] < s1["steps_planned"] and s1["projected_full_s"] > s1["seconds"] and s1["rows_per_step"] > 0
    # Out of time: the first hypothesis is still exported and reported, the export of the rest projected.
    assert {f"hypothesis_0.{ext}" for ext in ("glb", "obj", "mtl", "png", "ply")} <= {Path(m).name for m in pipe["meshes"]}
    assert pipe["stages"]["report"]["hypotheses"] >= 1 and pipe["full_schedule_s"] > 0
    md = (out / "report.md").read_text()
    assert "DRY RUN" in md and "not a GPU measurement" in md and "projected" in md
    assert not (out / "models").exists() and not (out / "pipeline-run").exists()  # cleaned up
