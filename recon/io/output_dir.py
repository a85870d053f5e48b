"""Check an output folder before any work starts, so a run never fails at its last step."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from recon.io.errors import OutputError


def ensure_writable_dir(path: str | Path) -> Path:
    """Create ``path`` (and parents) if missing and prove a file can be written in it.

    The probe is a real temporary file, created and removed, so the answer holds for root, read-only
    mounts, full disks and ACLs alike. Raises :class:`OutputError` (one line) otherwise.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(path, "exists and is not a folder", "choose another output folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(path, f"cannot create the output folder ({exc.strerror or exc})",
                          "choose an output folder you can write to") from exc
    try:
        fd, probe = tempfile.mkstemp(prefix=".recon-write-test-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(path, f"cannot write in the output folder ({exc.strerror or exc})",
                          "choose an output folder you can write to, or fix its permissions") from exc
    return path
