"""Which YAML recipe a run starts from, and how flags, files and ``--set`` overrides combine.

Precedence, lowest first: the recipe for the chosen prior, then ``--config FILE``, then every
``--set key=value``, then the explicit flags (``--hypotheses``, ``--seed``, ``--device``, ``--prior``).

The recipe for the chosen prior (:func:`recipe_for`) is, first match wins:

1. the model's own recipe: the ``recipe:`` field of its entry in ``models/zoo.yaml``, when the prior's
   path (``--prior NAME`` or ``prior.path`` in ``--config FILE``) is a zoo name with one, or the shipped
   folder of such an entry (``toy-zero123`` -> ``configs/toy-zero123.yaml``, sized for its 32² images);
2. the recipe of the prior's kind: ``configs/cpu-demo.yaml`` for the embedded LibraryPrior,
   ``configs/image-to-3d.yaml`` for Zero-1-to-3 (``zero123-xl``, ``stable-zero123``, any folder).

For ``recon text``: ``configs/text-to-3d-sd.yaml`` or ``configs/text-to-3d-mvdream.yaml`` by kind.
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


def recipe_for(kind: str, path: str | None = None) -> Path:
    """The recipe a run of prior ``kind`` with ``prior.path`` = ``path`` starts from (module docstring)."""
    if kind != "library" and path:
        own = zoo_recipe(path)
        if own is not None:
            return own
    return CONFIG_DIR / ("cpu-demo.yaml" if kind == "library" else "image-to-3d.yaml")


def zoo_recipe(path: str) -> Path | None:
    """The ``recipe:`` of the zoo entry named ``path`` (or whose shipped folder ``path`` is); None if none."""
    from recon.priors.zoo import load_zoo

    zoo = load_zoo()
    entry = next((e for e in zoo.entries if e.name == path), None)
    if entry is None and Path(path).expanduser().is_dir():
        folder = Path(path).expanduser().resolve()
        entry = next((e for e in zoo.entries if e.local_path is not None and e.local_path.resolve() == folder), None)
    if entry is None or entry.recipe_path is None:
        return None
    if not entry.recipe_path.is_file():
        raise ConfigError(f"models/zoo.yaml: recipe {entry.recipe!r} of {entry.name!r}: no such file "
                          f"{entry.recipe_path}")
    return entry.recipe_path


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
    file_prior = data.get("prior") or {}
    kind = prior_data.get("kind") or file_prior.get("kind") or "library"
    path = prior_data.get("path") if prior_data else file_prior.get("path")
    base = read_yaml(recipe_for(kind, path))
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
