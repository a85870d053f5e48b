"""Check an output folder before any work starts, so a run never fails at its last step."""

from __future__ import annotations

import os
import re
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


# ------------------------------------------------------------------ whose folder is it
# A run folder is recon's when it holds the run's hash (checkpoints/run_hash.txt, written before any
# stage work) or a run.json with one. Anything else that is not empty is the user's: recon refuses it
# rather than write index.html, input.png or meshes/ over files of the same names.
RUN_MARKERS = ("checkpoints/run_hash.txt", "run.json")
# The files a run writes at its end (export and report), moved aside when a finished run is replaced.
RUN_OUTPUTS = ("run.json", "index.html", "contact_sheet.png", "input.png", "turntable_*.gif", "meshes/hypothesis_*")
REPLACED = "replaced"


def is_run_folder(path: Path) -> bool:
    """True when ``path`` holds a recon run (finished or not)."""
    import json

    if (path / RUN_MARKERS[0]).is_file():
        return True
    try:
        record = json.loads((path / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and isinstance(record.get("outputs"), dict) and "run_hash" in record["outputs"]


def check_not_foreign(path: str | Path) -> None:
    """Refuse (:class:`OutputError`) an existing, non-empty folder that is not a recon run folder."""
    path = Path(path)
    if not path.is_dir() or is_run_folder(path):
        return
    try:
        entries = sorted(p.name for p in path.iterdir())
    except OSError:
        return  # ensure_writable_dir says what is wrong with it
    if entries:
        shown = ", ".join(entries[:3]) + (f" and {len(entries) - 3} more" if len(entries) > 3 else "")
        raise OutputError(path, f"holds files recon did not write ({shown}); recon never writes over them",
                          "choose an empty or new --out folder")


def move_aside_outputs(path: str | Path, stamp: str | None = None) -> Path | None:
    """Move a finished run's outputs (``RUN_OUTPUTS``) into ``path/replaced/<stamp>/``, keeping their
    relative paths, so a run that writes the folder again loses none of them. Returns that folder, or
    None when there was nothing to move."""
    import time

    path = Path(path)
    found = sorted({p for pattern in RUN_OUTPUTS for p in path.glob(pattern) if p.is_file()})
    if not found:
        return None
    stamp = stamp or time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    dest = path / REPLACED / stamp
    n = 1
    while dest.exists():
        n += 1
        dest = path / REPLACED / f"{stamp}-{n}"
    for src in found:
        target = dest / src.relative_to(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, target)
    return dest


_TEMP = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]{8}(?P<suffix>\.[A-Za-z0-9]+)$")
_OWN_NAMES = re.compile(r"^(stage\d\.pt|run_hash\.txt|run\.json|index\.html|contact_sheet\.png|input\.png|"
                        r"turntable_\d+\.gif|hypothesis_\d+\.(glb|obj|mtl|png|ply))$")


def remove_stale_temps(*folders: str | Path) -> list[Path]:
    """Delete the temporary files a killed atomic write left (``.stage1.pt.k3j9x0ab.pt``) in a run's
    folders; only names recon writes are touched. Returns what was removed."""
    removed = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            continue
        for p in folder.iterdir():
            m = _TEMP.match(p.name)
            if m and p.is_file() and _OWN_NAMES.match(m.group("name")):
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed
