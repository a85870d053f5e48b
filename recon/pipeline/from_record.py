"""``--from run.json``: the recorded run, checked against its schema before it is trusted.

A run.json is data from outside: it may be old, hand-edited or hostile. Every key of the config must
be present (a missing key is refused, never silently replaced by today's default), every value must
have its type and range, the ``input`` section must be what recon writes, and the input file's
sha256 must match the record unless the user says ``--force``.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path
from typing import Any

from recon.config import ConfigError, check_limits, from_dict, merge_overrides
from recon.io.errors import InputError

_REMEDY = "pass the run.json a recon run wrote, unedited"


def missing_keys(cls: type, data: Any, where: str = "") -> list[str]:
    """Dotted keys of dataclass ``cls`` (recursively) that ``data`` lacks."""
    out: list[str] = []
    if not isinstance(data, dict):
        return out
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        key = f"{where}.{f.name}" if where else f.name
        if f.name not in data:
            out.append(key)
        elif dataclasses.is_dataclass(hints[f.name]):
            out.extend(missing_keys(hints[f.name], data[f.name], key))
    return out


def recorded_config(path: Path, cls: type, config: Any, overrides: list[str] = ()) -> Any:
    """``cls`` built from a run.json's ``config`` (with ``overrides`` on top), refusing missing keys,
    wrong types and out-of-range values with one line naming ``path`` and the key."""
    if not isinstance(config, dict):
        raise InputError(path, "its 'config' is not a mapping", _REMEDY)
    missing = missing_keys(cls, config)
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise InputError(path, f"config key {missing[0]} is missing{more}; recon will not guess it from "
                         "today's defaults", _REMEDY)
    try:
        built = from_dict(cls, config)
        check_limits(built)
    except ConfigError as exc:
        raise InputError(path, f"its config is refused: {exc}", _REMEDY) from exc
    if not overrides:
        return built
    from recon.config import to_dict

    out = from_dict(cls, merge_overrides(to_dict(built), list(overrides)))  # ConfigError names the --set
    check_limits(out)
    return out


def recorded_input(path: Path, record_input: Any) -> tuple[Path, str | None]:
    """(input image path, recorded sha256) of an image run's ``input`` section, type-checked."""
    if not isinstance(record_input, dict):
        raise InputError(path, "its 'input' is not a mapping", _REMEDY)
    image = record_input.get("path")
    if not isinstance(image, str) or not image:
        raise InputError(path, f"input.path must be a file path (a string), got {image!r}", _REMEDY)
    sha = record_input.get("sha256")
    if sha is not None and not (isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha)):
        raise InputError(path, f"input.sha256 must be 64 hex digits, got {sha!r}", _REMEDY)
    return Path(image), sha


def check_input_hash(run_json: Path, image: Path, recorded: str | None, force: bool) -> None:
    """Refuse an input whose sha256 differs from the record (``force`` reconstructs it anyway)."""
    if recorded is None or force:
        return
    from recon.io.images import file_sha256

    if not image.is_file():
        return  # load_image names the missing file
    actual = file_sha256(image)
    if actual != recorded:
        raise InputError(image, f"its sha256 {actual[:12]}… differs from {recorded[:12]}… that {run_json} "
                         "records (another or an edited image)",
                         "pass the recorded image, or add --force to reconstruct this one anyway")
