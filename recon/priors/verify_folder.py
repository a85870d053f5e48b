"""Check a weight folder before loading it, component by component: files present, safetensors only,
shapes match the architecture, and the components agree with each other.

Verification never loads tensor data: each component's safetensors headers are read
(:mod:`recon.priors.weight_files`) and compared with the architecture its ``config.json`` describes, built
on PyTorch's meta device (:mod:`recon.priors.weight_shapes`). Which prior a folder holds is read from its
layout (:mod:`recon.priors.folder_layout`).

Every problem is one :class:`~recon.priors.weight_files.WeightsError` whose message starts with the
offending file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recon.priors.folder_layout import ModelKind, detect_kind, projection_dims, projection_folder
from recon.priors.weight_files import WeightsError, read_json, weight_files
from recon.priors.weight_shapes import ComponentReport, clip_shapes, compare_shapes, diffusers_shapes


@dataclass
class VerifyReport:
    kind: ModelKind
    root: Path
    components: list[ComponentReport] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(c.bytes for c in self.components)


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
                            lambda folder, config: diffusers_shapes(cls_name, config))


def _check_clip(root: Path, sub: str, cls_name: str) -> tuple[ComponentReport, dict[str, Any]]:
    return _check_component(root, sub, cls_name, "model", lambda folder, config: clip_shapes(cls_name, folder))


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
