"""Typed dataclass configs, YAML recipes and ``key=value`` overrides.

Every stage of recon is configured by a frozen-free dataclass. A recipe is a YAML file whose keys
mirror the dataclass fields; ``--set a.b=value`` overrides one nested field, the value parsed as
YAML (so ``3``, ``0.5``, ``true``, ``[64, 128]`` and ``null`` all work). Unknown keys and values of
the wrong type are refused with the dotted path of the offending key, never silently ignored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar, Union

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A recipe or override that does not fit the config's fields or types."""


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{where}: {value!r} fits none of {tp}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(_coerce(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        out = [_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):
            # PyYAML follows YAML 1.1, which reads exponents without a dot ("1e-3") as strings.
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if tp is Path:
        if not isinstance(value, (str, Path)):
            raise ConfigError(f"{where}: expected a path, got {value!r}")
        return Path(value)
    return value


# Keys that changed their spelling (one spelling per idea across stages): old key -> new key. An old key is
# refused with one line naming the new one, never silently ignored or mapped.
RENAMED: dict[str, str] = {
    "stage2.w_rgb": "stage2.weights.rgb",
    "stage2.w_mask": "stage2.weights.mask",
    "stage2.w_guidance": "stage2.weights.guidance",
    "stage2.w_normal_consistency": "stage2.weights.normal_consistency",
    "stage2.w_laplacian": "stage2.weights.laplacian",
    "stage2.camera_group": "stage2.cameras.group",
    "stage2.elevation_range": "stage2.cameras.elevation_range",
    "stage2.azimuth_range": "stage2.cameras.azimuth_range",
    "stage2.distance": "stage2.cameras.distance_range",
    "stage2.fovy": "stage2.cameras.fovy_range",
    "stage2.checkpoint_every": "checkpoint_every",  # one checkpoint interval for the whole run
}


def from_dict(cls: type[T], data: Mapping[str, Any], where: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, checking every key and type.

    Missing keys keep the dataclass defaults; unknown keys raise :class:`ConfigError`.
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        prefix = f"{where}." if where else ""
        for name in unknown:
            if f"{prefix}{name}" in RENAMED:
                raise ConfigError(f"config key {prefix}{name} is now spelled {RENAMED[prefix + name]}: "
                                  "rename it in the recipe or --set")
        raise ConfigError(
            f"unknown config key {prefix}{unknown[0]} (known: {', '.join(sorted(fields))})"
        )
    kwargs = {}
    for name, value in data.items():
        key = f"{where}.{name}" if where else name
        kwargs[name] = _coerce(hints[name], value, key)
    obj = cls(**kwargs)
    return obj


def to_dict(obj: Any) -> Any:
    """Plain YAML/JSON-safe data of a config (paths as strings, tuples as lists)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Mapping):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b.c=value"`` -> (["a", "b", "c"], parsed value)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({exc})") from exc
    return key.split("."), value


def merge_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of nested ``data`` with each ``key=value`` override applied."""
    out = _deepcopy(data)
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[path[-1]] = value
    return out


def _deepcopy(data: Any) -> Any:
    if isinstance(data, Mapping):
        return {k: _deepcopy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deepcopy(v) for v in data]
    return data


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a recipe file; a clear :class:`ConfigError` names the file when it is not a mapping."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror or exc})") from exc
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must hold a mapping of keys to values")
    return data


def load(
    cls: type[T],
    path: str | Path | None = None,
    overrides: Iterable[str] = (),
    base: T | None = None,
) -> T:
    """Config ``cls`` from optional ``base`` defaults, then a YAML file, then overrides."""
    data: dict[str, Any] = to_dict(base) if base is not None else {}
    if path is not None:
        data = merge(data, read_yaml(path))
    data = merge_overrides(data, overrides)
    return from_dict(cls, data)


def merge(a: dict[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge: mappings merge key by key, everything else in ``b`` replaces ``a``'s."""
    out = _deepcopy(a)
    for key, value in b.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = _deepcopy(value)
    return out


def dump_yaml(obj: Any) -> str:
    return yaml.safe_dump(to_dict(obj), sort_keys=False)


# ------------------------------------------------------------------------------------------ limits
# Ranges of the values that size a run. A value outside its range is refused up front, with the key,
# the value, the range and why, before any input is read or any stage starts: a typo such as
# stage1.steps=10000000000 would otherwise run until killed, and texture_size=0 would fail deep inside
# the export. Patterns are dotted keys with ``*`` for one or more levels; a key that a config class
# does not have is skipped (the same table serves the image, text and bench configs).
@dataclasses.dataclass(frozen=True)
class Limit:
    pattern: str
    lo: float
    hi: float
    why: str


_STEPS_WHY = "optimisation steps: at least 1, and 10⁶ steps is weeks of a fast GPU"
LIMITS: tuple[Limit, ...] = (
    Limit("hypotheses", 1, 64, "each hypothesis is its own field and mesh; 64 is recon's largest batch"),
    Limit("seed", 0, 2**32 - 1, "seeds are non-negative 32-bit integers"),
    Limit("*.seed", 0, 2**32 - 1, "seeds are non-negative 32-bit integers"),
    Limit("stage1.steps", 1, 1_000_000, _STEPS_WHY),
    Limit("stage2.steps", 1, 1_000_000, _STEPS_WHY),
    Limit("*.total_steps", 1, 1_000_000, _STEPS_WHY),
    Limit("*.anneal_steps", 0, 1_000_000, _STEPS_WHY),
    Limit("checkpoint_every", 0, 1_000_000, "steps between checkpoints (0 = at stage ends only)"),
    Limit("stage2.checkpoint_every", 0, 1_000_000, "steps between checkpoints (0 = at stage ends only)"),
    Limit("stage1.resolutions", 8, 2048, "guidance renders are resolution² pixels per view; 2048 is far beyond "
          "any prior's input"),
    Limit("stage1.batch_sizes", 1, 64, "views rendered per hypothesis and step"),
    Limit("stage1.milestones", 0, 1_000_000, _STEPS_WHY),
    Limit("stage1.reference_rays", 0, 1_000_000, "input-view rays per hypothesis and step (0 = every pixel)"),
    Limit("stage1.volume.samples_per_ray", 1, 1024, "samples along each ray"),
    Limit("stage1.occupancy.resolution", 4, 512, "the occupancy grid holds resolution³ cells"),
    Limit("stage1.occupancy.update_every", 1, 1_000_000, "steps between occupancy-grid updates"),
    Limit("stage1.field.resolutions", 2, 1024, "feature grids hold resolution³ cells"),
    Limit("stage1.field.features", 1, 64, "features per grid cell"),
    Limit("stage1.field.density_hidden", 1, 1024, "width of the density network"),
    Limit("stage1.field.color_hidden", 1, 1024, "width of the colour network"),
    Limit("stage1.cameras.group", 1, 64, "views per camera group"),
    Limit("stage1.lr", 1e-12, 10.0, "a learning rate must be positive"),
    Limit("stage2.lr_*", 0.0, 10.0, "a learning rate must be positive (0 freezes the parameter)"),
    Limit("stage2.target_resolution", 0, 4096, "0 = the prepared input's size; the target renders every step"),
    Limit("stage2.parallel_hypotheses", 0, 64, "threads stepping hypotheses side by side; 0 = one per core"),
    Limit("export.parallel_hypotheses", 0, 64, "threads exporting hypotheses side by side; 0 = one per core"),
    Limit("stage2.tet_resolution", 4, 512, "the tet grid holds about 6 × resolution³ tetrahedra"),
    Limit("stage2.resolution", 8, 4096, "stage-2 renders are resolution² pixels per view"),
    Limit("stage2.target_views_per_step", 0, 64, "input views rendered per hypothesis and step"),
    Limit("stage2.guidance_views_per_step", 0, 64, "guidance views rendered per hypothesis and step"),
    Limit("stage2.cameras.group", 1, 64, "views per camera group"),
    Limit("stage2.grid_radius", 1e-3, 1e3, "half the side of the tet grid's cube"),
    Limit("stage2.deform_fraction", 0.0, 1.0, "a fraction of the tet grid's spacing"),
    Limit("export.texture_size", 16, 8192, "the baked texture is texture_size² pixels; 8192 is the largest most "
          "GPUs and engines load"),
    Limit("export.target_faces", 4, 10_000_000, "faces of each exported mesh"),
    Limit("export.uv_padding", 0, 256, "pixels of padding around each UV chart"),
    Limit("export.gutter", 0, 256, "pixels bled outside each UV chart"),
    Limit("report.turntable_frames", 1, 720, "frames of each turntable GIF"),
    Limit("report.render_size", 16, 4096, "turntable and contact-sheet images are render_size² pixels"),
    Limit("input.max_pixels", 1024, 1_000_000_000, "the largest photo (in pixels) recon decodes"),
    Limit("input.min_side", 1, 4096, "the smallest photo side recon accepts"),
    Limit("input.recentre.size", 32, 4096, "the recentred input is size² pixels"),
    Limit("*.image_size", 8, 1024, "the prior's image side in pixels"),
    Limit("prior.library.max_cached_views", 1, 1_000_000, "library renders kept in memory"),
    Limit("*.ode_steps", 1, 1000, "DDIM steps of the ODE trajectory"),
    Limit("*.t_min", 0.0, 1.0, "t is a fraction of the diffusion schedule"),
    Limit("*.t_max", 0.0, 1.0, "t is a fraction of the diffusion schedule"),
    Limit("*.t_min_end", 0.0, 1.0, "t is a fraction of the diffusion schedule"),
    Limit("*.t_max_end", 0.0, 1.0, "t is a fraction of the diffusion schedule"),
    Limit("*.commit_fraction", 0.0, 1.0, "a fraction of stage 1's steps"),
    Limit("*.commit_every", 1, 1_000_000, "every n-th step of the commit phase commits"),
    Limit("*.commit_interleave_from", 0.0, 1.0, "a fraction of stage 1's steps"),
    Limit("*.delta_ratio", 0.0, 1.0, "a fraction of t"),
    Limit("*.guidance_scale", 0.0, 1000.0, "classifier-free guidance scale"),
    Limit("distance", 1e-3, 1e3, "camera distance in object units"),
    Limit("elevation", -89.0, 89.0, "the input photo's camera elevation in degrees (±90 would look along the up axis)"),
    Limit("fovy", 0.1, 179.0, "a field of view in degrees"),
    Limit("*.fovy", 0.1, 179.0, "a field of view in degrees"),
    Limit("*.views", 1, 64, "views per hypothesis"),
    Limit("*.resolution", 4, 4096, "images and grids of resolution² (or ³) cells"),
)


def _match(pattern: str, key: str) -> bool:
    import fnmatch

    return fnmatch.fnmatchcase(key, pattern)


def _leaves(obj: Any, where: str = "") -> Iterable[tuple[str, Any]]:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            yield from _leaves(getattr(obj, f.name), f"{where}.{f.name}" if where else f.name)
    else:
        yield where, obj


def _show(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1e6:
        return f"{value:.0e}"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**7:
        return f"{value} (~{float(value):.0e})"
    return repr(value)


def _range(limit: Limit) -> str:
    def num(v: float) -> str:
        return str(int(v)) if float(v).is_integer() and abs(v) < 1e7 else f"{v:g}"
    return f"{num(limit.lo)}..{num(limit.hi)}"


def check_limits(config: Any) -> None:
    """Refuse (:class:`ConfigError`, one line: key, value, allowed range, why) a config value that is
    out of range, not finite, or inconsistent with its neighbours. Run before any stage work."""
    import math

    for key, value in _leaves(config):
        items = value if isinstance(value, (list, tuple)) else [value]
        for item in items:
            if isinstance(item, bool) or not isinstance(item, (int, float)):
                continue
            if isinstance(item, float) and not math.isfinite(item):
                raise ConfigError(f"{key}: {item!r} is not a finite number; give a number")
            for limit in LIMITS:
                if _match(limit.pattern, key):
                    if not limit.lo <= item <= limit.hi:
                        raise ConfigError(f"{key}: {_show(item)} is outside the allowed range {_range(limit)} "
                                          f"({limit.why})")
                    break
    _check_consistency(config)


def _check_consistency(config: Any) -> None:
    for key, value in _leaves(config):
        if key.endswith("t_min") and isinstance(value, float):
            t_max = _get(config, key[:-len("t_min")] + "t_max")
            if isinstance(t_max, float) and value > t_max:
                raise ConfigError(f"{key}: {value!r} is above {key[:-len('t_min')]}t_max = {t_max!r}; t_min "
                                  "must not exceed t_max")
    stage1 = getattr(config, "stage1", None)
    if stage1 is not None and all(hasattr(stage1, a) for a in ("resolutions", "batch_sizes", "milestones")):
        r, b, m = list(stage1.resolutions), list(stage1.batch_sizes), list(stage1.milestones)
        if not len(r) == len(b) == len(m) + 1:
            raise ConfigError(f"stage1.resolutions / batch_sizes / milestones: {r} / {b} / {m} need one more "
                              "resolution and batch size than milestones (one per schedule phase)")
        if m != sorted(m):
            raise ConfigError(f"stage1.milestones: {m} must be increasing steps")


def _get(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part, None)
    return obj
