"""The CLI asks OpenMP for passive waiting before torch starts it (docs/benchmarks.md, "Threads under load")."""

from __future__ import annotations

import os
import subprocess
import sys

# Imports recon.cli as the `recon` console script does (argv[0] named recon) and reports OMP_WAIT_POLICY as it
# stood at the moment torch was first imported (OpenMP reads it once, when torch loads it).
PROBE = """
import os, sys
seen = []
class Hook:
    def find_spec(self, name, path, target=None):
        if name == "torch" and not seen:
            seen.append(os.environ.get("OMP_WAIT_POLICY"))
sys.meta_path.insert(0, Hook())
sys.argv = ["recon"]
import recon.cli
print(seen[0], "torch" in sys.modules)
"""


def probe(env_extra: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | env_extra
    return subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_the_cli_sets_passive_waiting_unless_the_user_chose():
    assert probe({}) == "PASSIVE True"
    assert probe({"OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE True"


def test_importing_recon_as_a_library_leaves_the_environment_alone():
    out = subprocess.run([sys.executable, "-c", "import recon.cli, os; print(os.environ.get('OMP_WAIT_POLICY'))"],
                         env={k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"},
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == "None"
