"""The real ``recon`` CLI in a subprocess: how the tests of tests/cli run it and read what it printed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CRATE = ROOT / "data" / "examples" / "crate.png"
# The smallest run that goes through every stage (about 25 s on a busy 2-core CPU).
TINIEST = [
    "--hypotheses", "1", "--set", "stage1.steps=4", "--set", "stage2.steps=2", "--set", "stage2.tet_resolution=16",
    "--set", "prior.library.image_size=16", "--set", "stage1.resolutions=[32]", "--set", "stage2.resolution=32",
    "--set", "report.turntable_frames=2", "--set", "report.render_size=32", "--set", "export.texture_size=64",
    "--set", "export.target_faces=500", "--set", "checkpoint_every=2", "--quiet",
]


def recon(*args: str | Path, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m recon ARGS`` as a user runs it; stdout and stderr captured as text."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "recon", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=full_env)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    """The single ``error:`` line a failure must print (nothing else on stderr, no traceback)."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    return lines[0]


def snapshot(folder: Path, times: bool = False) -> dict[str, object]:
    """Every file under ``folder`` (relative path -> bytes, or (bytes, mtime) with ``times``: a file
    rewritten with the same bytes counts as changed)."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns) if times else p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


