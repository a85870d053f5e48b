"""Check a weight folder before loading it: files present, safetensors only, shapes match the architecture.

A weight folder is a diffusers pipeline folder (``unet/``, ``vae/``, ``scheduler/`` ... each with its
``config.json``). Verification never loads tensor data: it reads each safetensors header with
safetensors' own ``safe_open`` (names, dtypes, shapes; it checks that the byte ranges exactly cover the
file, so a truncated download is caught), builds the architecture named by the config on PyTorch's meta
device and compares every parameter name and shape. Pickle checkpoints (``.bin``, ``.ckpt``, ``.pt``)
are refused: unpickling runs arbitrary code.

Every problem is one :class:`WeightsError` whose message starts with the offending file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors import SafetensorError, safe_open

ModelKind = Literal["stable-diffusion", "zero123", "mvdream"]

PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth", ".pkl")
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
                "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
# Zero-1-to-3 conversions name the pose projection folder one of these (file keys differ).
PROJECTION_FOLDERS = {"clip_camera_projection": "proj", "cc_projection": "projection"}


class WeightsError(ValueError):
    """One problem with a weight folder. ``path`` is the file or folder at fault."""

    def __init__(self, path: str | Path, problem: str, fix: str = "") -> None:
        self.path = Path(path)
        self.problem = problem
        self.fix = fix
        super().__init__(f"{self.path}: {problem}" + (f"; {fix}" if fix else ""))


@dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: tuple[int, ...]


@dataclass
class ComponentReport:
    """What was checked in one sub-folder."""

    name: str
    files: list[Path]
    tensors: int = 0
    bytes: int = 0
    dtypes: tuple[str, ...] = ()
    variant: str | None = None


@dataclass
class VerifyReport:
    kind: ModelKind
    root: Path
    components: list[ComponentReport] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(c.bytes for c in self.components)


# --------------------------------------------------------------------------------------------- files
def _refuse_pickle(path: Path) -> WeightsError:
    return WeightsError(
        path, "pickle checkpoint refused — recon loads safetensors only (unpickling can run arbitrary code)",
        "download the .safetensors version of this file, or convert it on a trusted machine",
    )


def read_safetensors_header(path: str | Path) -> dict[str, TensorInfo]:
    """Tensor names -> dtype and shape, after checking the file is a complete safetensors file.

    safetensors' own ``safe_open`` parses the header and checks that the tensors' byte ranges exactly
    cover the file (a truncated download fails there); before it, the first bytes are looked at only to
    name a Git LFS pointer or a pickle for what it is.
    """
    path = Path(path)
    if path.suffix in PICKLE_SUFFIXES:
        raise _refuse_pickle(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(9)
    except OSError as exc:
        raise WeightsError(path, f"cannot be read ({exc.strerror or exc})") from exc
    if head.startswith(b"version "):
        raise WeightsError(path, "is a Git LFS pointer, not the weights", "fetch the real file (git lfs pull)")
    # A safetensors file is an 8-byte header length, then a JSON header; torch.save writes a zip
    # ("PK\x03\x04"), older pickles start with the protocol opcode 0x80.
    if head[:4] == b"PK\x03\x04" or (head[:1] == b"\x80" and head[8:9] != b"{"):
        raise _refuse_pickle(path)
    if len(head) < 9:
        raise WeightsError(path, f"only {size} bytes: not a safetensors file (truncated?)", "download it again")
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors: dict[str, TensorInfo] = {}
            for name in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
                part = f.get_slice(name)
                tensors[name] = TensorInfo(part.get_dtype(), tuple(int(s) for s in part.get_shape()))
    except OSError as exc:
        raise WeightsError(path, f"cannot be read ({exc.strerror or exc})") from exc
    except SafetensorError as exc:
        raise WeightsError(path, _header_problem(str(exc), size), "download it again") from exc
    for name, info in tensors.items():
        if info.dtype not in _DTYPE_BYTES:
            raise WeightsError(path, f"tensor {name} has dtype {info.dtype}, which recon does not load",
                               "download it again")
    return tensors


def _header_problem(message: str, size: int) -> str:
    """safetensors' header error, in the words recon's messages use."""
    if "not fully covered" in message:
        return f"is {size} bytes but its header describes another size: truncated or corrupt"
    if "header too small" in message or "header too large" in message:
        return "not a safetensors file (bad header length) or truncated"
    if "JSON" in message:
        return "not a safetensors file (header is not JSON)"
    if "invalid shape, data type, or offset" in message:
        return "a tensor has inconsistent size in the header"
    return f"not a safetensors file or corrupt ({message})"


def _stem_candidates(stem: str) -> list[tuple[str, str | None]]:
    return [(f"{stem}.safetensors", None), (f"{stem}.fp16.safetensors", "fp16")]


def weight_files(folder: Path, stem: str) -> tuple[list[Path], str | None]:
    """The safetensors file(s) of one component and its diffusers/transformers variant (None or 'fp16').

    Handles single files and sharded ``*.safetensors.index.json``. Refuses folders holding only pickles.
    """
    if not folder.is_dir():
        raise WeightsError(folder, "folder missing", "the weight folder is incomplete: pull or copy it again")
    for name, variant in _stem_candidates(stem):
        single = folder / name
        if single.is_file():
            return [single], variant
        index = folder / (name + ".index.json")
        if index.is_file():
            try:
                shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise WeightsError(index, "unreadable shard index", "download it again") from exc
            paths = [folder / s for s in shards]
            for p in paths:
                if not p.is_file():
                    raise WeightsError(p, "shard listed in the index is missing", "download it again")
            return paths, variant
    pickles = sorted(p for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise _refuse_pickle(pickles[0])
    raise WeightsError(folder / f"{stem}.safetensors", "weights file missing",
                       "the weight folder is incomplete: pull or copy it again")


def read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise WeightsError(path, "missing", "the weight folder is incomplete: pull or copy it again")
    try:
        value = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WeightsError(path, f"not valid JSON ({exc})", "download it again") from exc
    if not isinstance(value, dict):
        raise WeightsError(path, "not a JSON object", "download it again")
    return value


# ------------------------------------------------------------------------------------- architectures
def _meta_shapes(build: Callable[[], torch.nn.Module]) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        model = build()
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _diffusers_shapes(cls_name: str, config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    import diffusers

    cls = getattr(diffusers, cls_name)
    return _meta_shapes(lambda: cls.from_config(config))


def _clip_shapes(cls_name: str, folder: Path) -> dict[str, tuple[int, ...]]:
    import transformers

    cls = getattr(transformers, cls_name)
    config_cls = transformers.CLIPTextConfig if cls_name == "CLIPTextModel" else transformers.CLIPVisionConfig
    config = config_cls.from_pretrained(folder)
    return _meta_shapes(lambda: cls(config))


def _normalise_key(key: str) -> str | None:
    """Published names -> names current libraries use; None for tensors the libraries ignore."""
    if key.endswith("position_ids"):
        return None  # buffer saved by older transformers, recomputed on load
    if key.startswith("text_model."):
        key = key[len("text_model."):]  # transformers >= 5 drops the prefix; it renames on load
    for old, new in ((".query.", ".to_q."), (".key.", ".to_k."), (".value.", ".to_v."), (".proj_attn.", ".to_out.0.")):
        if ".attentions." in key and old in key:  # diffusers' pre-0.14 VAE attention names
            key = key.replace(old, new)
    return key


def compare_shapes(files: list[Path], expected: Mapping[str, tuple[int, ...]], what: str,
                   report: ComponentReport) -> dict[str, TensorInfo]:
    """Check the union of ``files`` holds exactly ``expected`` (names normalised), shapes included."""
    found: dict[str, tuple[TensorInfo, Path]] = {}
    for path in files:
        for name, info in read_safetensors_header(path).items():
            key = _normalise_key(name)
            if key is not None:
                found[key] = (info, path)
            report.tensors += 1
            report.bytes += math.prod(info.shape) * _DTYPE_BYTES[info.dtype]
    want = {k2: v for k, v in expected.items() if (k2 := _normalise_key(k)) is not None}
    missing = [k for k in want if k not in found]
    if missing:
        raise WeightsError(files[0], f"{len(missing)} tensors of the {what} are missing (first: {missing[0]})",
                           "the file belongs to another model or is incomplete: download it again")
    extra = sorted(set(found) - set(want))
    if extra:
        raise WeightsError(found[extra[0]][1], f"{len(extra)} tensors not in the {what} described by config.json "
                           f"(first: {extra[0]})", "the weights and config.json belong to different models")
    for key, shape in want.items():
        info, path = found[key]
        if info.shape != tuple(shape):
            raise WeightsError(path, f"tensor {key} has shape {list(info.shape)}, the {what} in config.json needs "
                               f"{list(shape)}", "the weights and config.json belong to different models")
    report.dtypes = tuple(sorted({info.dtype for info, _ in found.values()}))
    return {k: v[0] for k, v in found.items()}


# ---------------------------------------------------------------------------------------- components
def _check_component(root: Path, sub: str, cls_name: str, stem: str,
                     shapes: Callable[[Path, dict[str, Any]], dict[str, tuple[int, ...]]],
                     ) -> tuple[ComponentReport, dict[str, Any]]:
    """One model component's folder: its ``config.json``, the ``stem`` weight files, and their shapes
    against ``shapes(folder, config)`` — the architecture the config describes."""
    folder = root / sub
    config = read_json(folder / "config.json")
    files, variant = weight_files(folder, stem)
    report = ComponentReport(sub, files, variant=variant)
    try:
        expected = shapes(folder, config)
    except Exception as exc:  # a config the library cannot build is a bad file, said once
        raise WeightsError(folder / "config.json", f"does not describe a valid {cls_name} ({exc})") from exc
    compare_shapes(files, expected, cls_name, report)
    return report, config


def _check_diffusers_model(root: Path, sub: str, cls_name: str) -> tuple[ComponentReport, dict[str, Any]]:
    return _check_component(root, sub, cls_name, "diffusion_pytorch_model",
                            lambda folder, config: _diffusers_shapes(cls_name, config))


def _check_clip(root: Path, sub: str, cls_name: str) -> tuple[ComponentReport, dict[str, Any]]:
    return _check_component(root, sub, cls_name, "model", lambda folder, config: _clip_shapes(cls_name, folder))


def _check_tokenizer(root: Path, vocab_limit: int) -> ComponentReport:
    folder = root / "tokenizer"
    if (folder / "tokenizer.json").is_file():
        files = [folder / "tokenizer.json"]
        vocab = read_json(files[0]).get("model", {}).get("vocab", {})
    else:
        files = [folder / "vocab.json", folder / "merges.txt"]
        vocab = read_json(files[0])
        if not files[1].is_file():
            raise WeightsError(files[1], "missing", "the weight folder is incomplete: pull or copy it again")
    if vocab and max(vocab.values()) >= vocab_limit:
        raise WeightsError(files[0], f"token ids reach {max(vocab.values())} but the text encoder has "
                           f"{vocab_limit} embeddings", "tokenizer and text encoder belong to different models")
    return ComponentReport("tokenizer", files)


def _check_scheduler(root: Path) -> ComponentReport:
    from recon.diffusion.schedule import NoiseSchedule

    path = root / "scheduler" / "scheduler_config.json"
    try:
        NoiseSchedule.from_config(read_json(path))
    except ValueError as exc:
        if isinstance(exc, WeightsError):
            raise
        raise WeightsError(path, str(exc)) from exc
    return ComponentReport("scheduler", [path])


def projection_folder(root: Path) -> tuple[Path, str]:
    """Zero-1-to-3's pose projection: (folder, parameter prefix), whichever layout the conversion used."""
    for name, prefix in PROJECTION_FOLDERS.items():
        if (root / name).is_dir():
            return root / name, prefix
    raise WeightsError(root / "clip_camera_projection", "folder missing (also looked for cc_projection/)",
                       "this is not a Zero-1-to-3 diffusers folder, or it is incomplete")


def projection_dims(root: Path) -> tuple[int, int]:
    """(input dim, output dim) of the pose projection, from its config (CCProjection's defaults: 772 -> 768)."""
    folder, _ = projection_folder(root)
    config = read_json(folder / "config.json")
    if "embedding_dim" in config:
        dim = int(config["embedding_dim"])
        return dim + int(config.get("additional_embeddings", 4)), dim
    return int(config.get("in_channel", 772)), int(config.get("out_channel", 768))


def _check_projection(root: Path) -> ComponentReport:
    folder, prefix = projection_folder(root)
    files, variant = weight_files(folder, "diffusion_pytorch_model")
    report = ComponentReport(folder.name, files, variant=variant)
    d_in, d_out = projection_dims(root)
    compare_shapes(files, {f"{prefix}.weight": (d_out, d_in), f"{prefix}.bias": (d_out,)}, "pose projection", report)
    return report


def _check_mvdream_unet(root: Path) -> tuple[ComponentReport, Any]:
    from recon.priors.mvdream_unet import MultiViewUNetConfig, expected_ldm_shapes

    folder = root / "unet"
    raw = read_json(folder / "config.json")
    try:
        config = MultiViewUNetConfig.from_dict(raw, str(folder / "config.json"))
    except ValueError as exc:
        raise WeightsError(folder / "config.json", str(exc).split(": ", 1)[-1]) from exc
    files, variant = weight_files(folder, "diffusion_pytorch_model")
    report = ComponentReport("unet", files, variant=variant)
    compare_shapes(files, expected_ldm_shapes(config), "MVDream UNet", report)
    return report, config


def _require(condition: bool, path: Path, problem: str) -> None:
    if not condition:
        raise WeightsError(path, problem, "the components come from different models")


# ------------------------------------------------------------------------------------------ entry
def detect_kind(root: str | Path) -> ModelKind:
    """Which prior a diffusers folder holds, from its layout."""
    root = Path(root)
    if root.is_file():
        if root.suffix in PICKLE_SUFFIXES:
            raise _refuse_pickle(root)
        raise WeightsError(root, "is a single file; recon loads diffusers folders (unet/, vae/, scheduler/ ...)",
                           "download the model's diffusers layout (see `recon models list`)")
    if not root.is_dir():
        raise WeightsError(root, "no such folder")
    unet_cfg = root / "unet" / "config.json"
    if unet_cfg.is_file() and read_json(unet_cfg).get("_class_name") == "MultiViewUNetModel":
        return "mvdream"
    if any((root / name).is_dir() for name in PROJECTION_FOLDERS) or (root / "image_encoder").is_dir():
        return "zero123"
    if (root / "text_encoder").is_dir() or (root / "unet").is_dir():
        return "stable-diffusion"
    raise WeightsError(root, "not a diffusers model folder (no unet/ inside)",
                       "point at the folder that holds unet/, vae/ and scheduler/")


def verify_folder(root: str | Path, kind: ModelKind | None = None) -> VerifyReport:
    """Check every file a prior of ``kind`` (detected when None) needs, without loading tensor data."""
    root = Path(root)
    kind = kind or detect_kind(root)
    report = VerifyReport(kind, root)
    comps = report.components
    comps.append(_check_scheduler(root))
    vae, vae_cfg = _check_diffusers_model(root, "vae", "AutoencoderKL")
    comps.append(vae)
    latent_channels = int(vae_cfg.get("latent_channels", 4))
    if kind == "mvdream":
        unet, mv_cfg = _check_mvdream_unet(root)
        comps.append(unet)
        text, text_cfg = _check_clip(root, "text_encoder", "CLIPTextModel")
        comps.append(text)
        comps.append(_check_tokenizer(root, int(text_cfg.get("vocab_size", 49408))))
        _require(mv_cfg.context_dim == int(text_cfg["hidden_size"]), root / "unet" / "config.json",
                 f"context_dim {mv_cfg.context_dim} differs from the text encoder's width {text_cfg['hidden_size']}")
        _require(mv_cfg.in_channels == latent_channels, root / "unet" / "config.json",
                 f"in_channels {mv_cfg.in_channels} differs from the VAE's {latent_channels} latent channels")
        _require(mv_cfg.camera_dim == 16, root / "unet" / "config.json",
                 f"camera_dim is {mv_cfg.camera_dim}; MVDream conditions on a flattened 4x4 camera (16)")
        return report
    unet, unet_cfg = _check_diffusers_model(root, "unet", "UNet2DConditionModel")
    comps.append(unet)
    unet_path = root / "unet" / "config.json"
    cross = int(unet_cfg.get("cross_attention_dim", 1280))
    if kind == "stable-diffusion":
        text, text_cfg = _check_clip(root, "text_encoder", "CLIPTextModel")
        comps.append(text)
        comps.append(_check_tokenizer(root, int(text_cfg.get("vocab_size", 49408))))
        _require(cross == int(text_cfg["hidden_size"]), unet_path,
                 f"cross_attention_dim {cross} differs from the text encoder's width {text_cfg['hidden_size']}")
        _require(int(unet_cfg.get("in_channels", 4)) == latent_channels, unet_path,
                 f"in_channels {unet_cfg.get('in_channels')} differs from the VAE's {latent_channels} latent channels")
        return report
    image, image_cfg = _check_clip(root, "image_encoder", "CLIPVisionModelWithProjection")
    comps.append(image)
    read_json(root / "feature_extractor" / "preprocessor_config.json")
    comps.append(ComponentReport("feature_extractor", [root / "feature_extractor" / "preprocessor_config.json"]))
    comps.append(_check_projection(root))
    d_in, d_out = projection_dims(root)
    proj_dim = int(image_cfg.get("projection_dim", 512))
    _require(int(unet_cfg.get("in_channels", 4)) == 2 * latent_channels, unet_path,
             f"in_channels {unet_cfg.get('in_channels')}: Zero-1-to-3 concatenates the input view's latent "
             f"({2 * latent_channels} channels)")
    _require(d_in == proj_dim + 4 and d_out == cross, projection_folder(root)[0] / "config.json",
             f"projection {d_in}->{d_out} does not map CLIP ({proj_dim}) + pose (4) to the UNet's context ({cross})")
    return report
