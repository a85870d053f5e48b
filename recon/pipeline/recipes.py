"""Which YAML recipe a run starts from, and how flags, files and ``--set`` overrides combine.

Precedence, lowest first: the recipe for the chosen prior (``configs/cpu-demo.yaml`` for the embedded
LibraryPrior, ``configs/image-to-3d.yaml`` for Zero-1-to-3), then ``--config FILE``, then every
``--set key=value``, then the explicit flags (``--hypotheses``, ``--seed``, ``--device``, ``--prior``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from recon.config import from_dict, merge, merge_overrides, read_yaml
from recon.pipeline.image_to_3d import ImageTo3DConfig

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
PRIOR_KINDS = ("library", "zero123", "stable-zero123")


def recipe_for(kind: str) -> Path:
    return CONFIG_DIR / ("cpu-demo.yaml" if kind == "library" else "image-to-3d.yaml")


def prior_flag(value: str) -> dict[str, Any]:
    """``--prior``: a kind (library, zero123, stable-zero123), a zoo name or a folder."""
    if value in PRIOR_KINDS:
        return {"kind": value}
    if "stable" in value.lower():
        return {"kind": "stable-zero123", "path": value}
    return {"kind": "zero123", "path": value} if not Path(value, "library.yaml").exists() else \
        {"kind": "library", "path": value}


def image_config(
    config_file: str | Path | None = None,
    overrides: Sequence[str] = (),
    prior: str | None = None,
    **flags: Any,
) -> ImageTo3DConfig:
    """The resolved config of ``recon run`` (see the module docstring for the order)."""
    prior_data = prior_flag(prior) if prior else {}
    data: dict[str, Any] = {}
    if config_file is not None:
        data = read_yaml(config_file)
    data = merge_overrides(data, overrides)
    kind = prior_data.get("kind") or (data.get("prior") or {}).get("kind") or "library"
    base = read_yaml(recipe_for(kind))
    merged = merge(base, data)
    if prior_data:
        merged = merge(merged, {"prior": prior_data})
    merged = merge(merged, {k: v for k, v in flags.items() if v is not None})
    return from_dict(ImageTo3DConfig, merged)
