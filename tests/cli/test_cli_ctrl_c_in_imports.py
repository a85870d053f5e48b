"""Ctrl-C while the pipeline's libraries import: trimesh wraps its own optional imports in ``except
BaseException``, so a KeyboardInterrupt raised inside them used to be swallowed — the run went on and
finished with status 0, or a half-imported scipy.ndimage failed later with a NameError. The Ctrl-C here
arrives at a fixed point instead of after a guessed delay: a ``sitecustomize`` on PYTHONPATH sends SIGINT
to the process the moment trimesh starts importing networkx (inside one of those blocks)."""

from __future__ import annotations

import os

from cli_helpers import CRATE, TINIEST, one_error_line, recon

HOOK = '''
import os, signal, sys

class _SigintOnImport:
    def find_spec(self, name, path=None, target=None):
        if name == "networkx" and "trimesh" in sys.modules:
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, _SigintOnImport())
'''


def test_ctrl_c_inside_trimesh_imports_stops_the_run(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(HOOK)
    out = tmp_path / "out"
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    proc = recon("run", CRATE, "--out", out, *TINIEST, env=env)
    assert proc.returncode == 130, proc.stderr[-2000:]
    assert "interrupted" in one_error_line(proc)
    assert not out.exists()  # stopped while starting: nothing written
