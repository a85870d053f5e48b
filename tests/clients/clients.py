"""The real clients that recon's files are checked with: the Khronos glTF Validator (npm package
``gltf-validator``, run by node) and Blender (the ``bpy`` wheel, 5.0.1 for CPython 3.11, headless).

Where to find them (``.ci/run`` installs both here; ``docs/meshes.md`` says how to do it by hand):

- validator: ``$RECON_GLTF_VALIDATOR`` — a ``node_modules`` folder holding ``gltf-validator`` —
  default ``build/clients/node_modules``;
- Blender: ``$RECON_BLENDER_PYTHON`` — a Python with ``bpy`` importable — default
  ``build/clients/blender-venv/bin/python``. bpy 5.0.1 needs numpy < 2 and recon pins numpy 2, so
  Blender lives in its own virtual environment and is driven as a subprocess.

A test skips with the reason when a client is absent, except under ``RECON_REQUIRE_CLIENTS=1`` (set by
``.ci/run``), where a missing client fails the test: CI must run these checks, not skip them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
VALIDATOR_DIR = Path(os.environ.get("RECON_GLTF_VALIDATOR", ROOT / "build" / "clients" / "node_modules"))
BLENDER_PYTHON = Path(os.environ.get("RECON_BLENDER_PYTHON",
                                     ROOT / "build" / "clients" / "blender-venv" / "bin" / "python"))
INSTALL = "bash .ci/run installs it (see docs/meshes.md, 'Checked in real clients')"


def _absent(reason: str):
    if os.environ.get("RECON_REQUIRE_CLIENTS") == "1":
        pytest.fail(f"{reason} (RECON_REQUIRE_CLIENTS=1: CI must run this check)")
    pytest.skip(reason)


def need_validator() -> tuple[str, Path]:
    """(node executable, node_modules folder) or skip / fail with the reason."""
    node = shutil.which("node")
    if node is None:
        _absent("node is not on PATH; the glTF Validator runs on node")
    if not (VALIDATOR_DIR / "gltf-validator" / "package.json").is_file():
        _absent(f"the npm package gltf-validator is not in {VALIDATOR_DIR} (set RECON_GLTF_VALIDATOR); {INSTALL}")
    return node, VALIDATOR_DIR


def need_blender() -> Path:
    """A Python that imports bpy, or skip / fail with the reason."""
    if not BLENDER_PYTHON.is_file():
        _absent(f"no Blender Python (bpy 5.0.1) at {BLENDER_PYTHON} (set RECON_BLENDER_PYTHON); {INSTALL}")
    return BLENDER_PYTHON


def _lines(out: str, prefix: str) -> list[dict]:
    return [json.loads(line[len(prefix):]) for line in out.splitlines() if line.startswith(prefix)]


def validate(paths: list[Path]) -> list[dict]:
    """The validator's report (its own JSON) for each file."""
    node, modules = need_validator()
    env = {**os.environ, "NODE_PATH": str(modules)}
    proc = subprocess.run([node, str(HERE / "gltf_validate.js"), *map(str, paths)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    reports = _lines(proc.stdout, "RECON_GLTF_JSON ")
    assert len(reports) == len(paths), proc.stdout + proc.stderr
    return [r["report"] for r in reports]


def blender_import(paths: list[Path]) -> tuple[list[dict], str]:
    """What Blender's default importers make of each file (tests/clients/blender_import.py), and the log."""
    python = need_blender()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    proc = subprocess.run([str(python), str(HERE / "blender_import.py"), *map(str, paths)],
                          capture_output=True, text=True, env=env, timeout=600, cwd=str(ROOT))
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log
    found = _lines(proc.stdout, "RECON_BLENDER_JSON ")
    assert len(found) == len(paths), log
    return found, log


def log_errors(log: str) -> list[str]:
    """Lines of a Blender log that report an error or a warning from an importer."""
    bad = ("error", "warning: ", "traceback")
    return [line for line in log.splitlines()
            if any(b in line.lower() for b in bad) and "DeprecationWarning" not in line]


def blender_frame(points):
    """recon's +Y-up points (N, 3) as Blender's glTF importer places them: (x, y, z) -> (x, -z, y)."""
    import numpy as np

    p = np.asarray(points, dtype=float)
    return np.stack([p[:, 0], -p[:, 2], p[:, 1]], axis=1)


__all__ = ["blender_frame", "blender_import", "log_errors", "need_blender", "need_validator", "validate",
]
