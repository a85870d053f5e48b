"""Which YAML recipe a run starts from, and how flags, files and ``--set`` overrides combine.

Precedence, lowest first: the recipe for the chosen prior (``configs/cpu-demo.yaml`` for the embedded
LibraryPrior, ``configs/image-to-3d.yaml`` for Zero-1-to-3; for ``recon text``,
``configs/text-to-3d-sd.yaml`` or ``configs/text-to-3d-mvdream.yaml``), then ``--config FILE``, then every
``--set key=value``, then the explicit flags (``--hypotheses``, ``--seed``, ``--device``, ``--prior``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from recon.config import ConfigError, from_dict, merge, merge_overrides, read_yaml
from recon.pipeline.image_to_3d import ImageTo3DConfig
from recon.pipeline.text_to_3d import TextTo3DConfig

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


# ---------------------------------------------------------------------------------------- text
TEXT_RECIPES = {"sd": "text-to-3d-sd.yaml", "mvdream": "text-to-3d-mvdream.yaml"}


def text_recipe_for(kind: str) -> Path:
    """The full-scale recipe of a text prior kind (``sd`` or ``mvdream``)."""
    return CONFIG_DIR / TEXT_RECIPES[kind]


def text_config(
    config_file: str | Path | None = None,
    overrides: Sequence[str] = (),
    prior: str | None = None,
    **flags: Any,
) -> TextTo3DConfig:
    """The resolved config of ``recon text``: the recipe of the prior's kind, then ``--config FILE``,
    then ``--set``, then the flags. ``prior`` is ``--prior`` (sd, mvdream, a zoo name or a folder;
    see :func:`recon.pipeline.text_prior.text_prior_flag`, whose errors are one line)."""
    from recon.pipeline.text_prior import text_prior_flag

    prior_data = text_prior_flag(prior) if prior else {}
    data: dict[str, Any] = read_yaml(config_file) if config_file is not None else {}
    data = merge_overrides(data, overrides)
    kind = prior_data.get("kind") or (data.get("prior") or {}).get("kind") or "sd"
    if kind not in TEXT_RECIPES:
        raise ConfigError(f"prior.kind: {kind!r} is not one of 'sd', 'mvdream'")
    merged = merge(read_yaml(text_recipe_for(kind)), data)
    if prior_data:
        merged = merge(merged, {"prior": prior_data})
    merged = merge(merged, {k: v for k, v in flags.items() if v is not None})
    return from_dict(TextTo3DConfig, merged)
