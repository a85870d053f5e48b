"""Must show 5: `recon models list|pull|verify` give clear, correct answers offline; a truncated,
mismatched or pickled weight folder gives one clear error naming the bad file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from recon.cli import main
from recon.priors.verify_folder import verify_folder
from recon.priors.weight_files import WeightsError, read_safetensors_header
from recon.priors.zoo import load_zoo, resolve

ZERO123_REV = "10e9e8e75adaa3bf77f5ac9c381419016fed68c7"


@pytest.fixture
def offline_env(tmp_path, monkeypatch):
    """An empty RECON_MODELS folder and an empty Hugging Face cache."""
    models = tmp_path / "recon_models"
    models.mkdir()
    monkeypatch.setenv("RECON_MODELS", str(models))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf_cache"))
    return models


def _run(*args):
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


# ------------------------------------------------------------------------------------------- zoo
def test_zoo_lists_the_supported_models_with_pinned_sources():
    zoo = load_zoo()
    assert {"zero123-xl", "stable-zero123", "sd-1.5", "sd-2.1-base", "mvdream"} <= set(zoo.names())
    kinds = {e.name: (e.kind, e.variant) for e in zoo.entries}
    assert kinds["stable-zero123"] == ("zero123", "stable-zero123")
    assert kinds["zero123-xl"] == ("zero123", "zero123")
    for entry in zoo.entries:  # a hub repository, or weights shipped in this repository (toy-zero123)
        assert (entry.hub_id.count("/") == 1) != bool(entry.local) and entry.licence and entry.size and entry.files
        assert all(not f.endswith((".bin", ".ckpt", ".pt")) for f in entry.files)  # safetensors only


def test_resolution_order_path_then_recon_models_then_hf_cache(offline_env, zero123_folder, tmp_path):
    zoo = load_zoo()
    entry = zoo.get("zero123-xl")
    with pytest.raises(Exception, match=r"not on this machine.*recon models pull zero123-xl"):
        resolve("zero123-xl", zoo)
    # A Hugging Face cache snapshot at the pinned revision is found without network.
    snapshot = tmp_path / "hf_cache" / "models--ashawkey--zero123-xl-diffusers" / "snapshots" / ZERO123_REV
    shutil.copytree(zero123_folder, snapshot)
    found = resolve("zero123-xl", zoo)
    assert found.source == "hf_cache" and found.path == snapshot and found.entry == entry
    # $RECON_MODELS wins over the cache ...
    shutil.copytree(zero123_folder, offline_env / "zero123-xl")
    found = resolve("zero123-xl", zoo)
    assert found.source == "recon_models" and found.path == offline_env / "zero123-xl"
    # ... and an explicit path wins over both, keeping the zoo entry (its variant).
    found = resolve("zero123-xl", zoo, path=zero123_folder)
    assert found.source == "path" and found.path == zero123_folder and found.entry == entry


# ------------------------------------------------------------------------------------------- CLI
def test_models_list_offline(offline_env, zero123_folder):
    shutil.copytree(zero123_folder, offline_env / "stable-zero123")
    code, out = _run("models", "list", "--json")
    assert code == 0, out
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["stable-zero123"]["present"] and rows["stable-zero123"]["path"] == str(offline_env / "stable-zero123")
    assert rows["stable-zero123"]["source"] == "recon_models"
    assert not rows["zero123-xl"]["present"] and rows["zero123-xl"]["path"] is None
    code, out = _run("models", "list")
    assert code == 0 and "stable-zero123" in out and "not on this machine" in out and "licence" in out


def test_models_pull_offline_says_what_to_download_and_where(offline_env):
    code, out = _run("models", "pull", "mvdream")
    assert code == 1
    error = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(error) == 1
    line = error[0]
    assert "HF_HUB_OFFLINE" in line and "ashawkey/mvdream-sd2.1-diffusers" in line
    assert "unet/diffusion_pytorch_model.safetensors" in line and str(offline_env / "mvdream") in line
    assert not (offline_env / "mvdream" / "unet").exists()


def test_models_pull_with_an_unreachable_hub_fails_fast(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9",
           "RECON_MODELS": str(tmp_path), "HF_HUB_CACHE": str(tmp_path / "cache")}
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        env.pop(var, None)
    proc = subprocess.run([sys.executable, "-c", "from recon.cli import main; main()", "models", "pull", "zero123-xl"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "unreachable" in proc.stderr and "127.0.0.1:9" in proc.stderr and str(tmp_path / "zero123-xl") in proc.stderr


def test_models_pull_skips_a_verified_copy(offline_env, zero123_folder):
    shutil.copytree(zero123_folder, offline_env / "zero123-xl")
    code, out = _run("models", "pull", "zero123-xl")
    assert code == 0 and "already present and verified" in out


def test_models_verify_name_and_path(offline_env, zero123_folder, sd_folder, mvdream_folder):
    shutil.copytree(zero123_folder, offline_env / "zero123-xl")
    code, out = _run("models", "verify", "zero123-xl")
    assert code == 0 and out.strip().endswith("OK") and "clip_camera_projection" in out
    for folder, kind in ((sd_folder, "stable-diffusion"), (mvdream_folder, "mvdream")):
        code, out = _run("models", "verify", str(folder))
        assert code == 0 and f": {kind}," in out, out


# ------------------------------------------------------------------------------- broken folders
def _verify_error(folder) -> str:
    code, out = _run("models", "verify", str(folder))
    assert code == 1
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), out
    return lines[0]


def test_truncated_weights_are_named(copy_folder, sd_folder):
    folder = copy_folder(sd_folder)
    bad = folder / "unet" / "diffusion_pytorch_model.safetensors"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) - 1000])
    line = _verify_error(folder)
    assert str(bad) in line and "truncated" in line
    with pytest.raises(WeightsError) as info:
        verify_folder(folder)
    assert info.value.path == bad


def test_mismatched_config_is_named(copy_folder, sd_folder):
    folder = copy_folder(sd_folder)
    cfg = folder / "text_encoder" / "config.json"
    data = json.loads(cfg.read_text())
    data["intermediate_size"] = 40
    cfg.write_text(json.dumps(data))
    line = _verify_error(folder)
    assert str(folder / "text_encoder" / "model.safetensors") in line and "shape" in line


def test_missing_tensor_is_named(copy_folder, mvdream_folder):
    folder = copy_folder(mvdream_folder)
    path = folder / "unet" / "diffusion_pytorch_model.safetensors"
    state = load_file(str(path))
    del state["camera_embed.2.bias"]
    save_file(state, str(path))
    line = _verify_error(folder)
    assert str(path) in line and "camera_embed.2.bias" in line


def test_components_from_different_models_are_named(copy_folder, sd_folder, zero123_folder):
    folder = copy_folder(sd_folder)
    shutil.rmtree(folder / "unet")
    shutil.copytree(zero123_folder / "unet", folder / "unet")  # 8 input channels, 32-d context
    line = _verify_error(folder)
    assert str(folder / "unet" / "config.json") in line


def test_pickle_checkpoints_are_refused(copy_folder, zero123_folder, tmp_path):
    folder = copy_folder(zero123_folder)
    weights = folder / "vae" / "diffusion_pytorch_model.safetensors"
    torch.save(load_file(str(weights)), folder / "vae" / "diffusion_pytorch_model.bin")
    weights.unlink()
    line = _verify_error(folder)
    assert str(folder / "vae" / "diffusion_pytorch_model.bin") in line and "pickle" in line and "safetensors" in line
    ckpt = tmp_path / "stable_zero123.ckpt"
    torch.save({"state_dict": {}}, ckpt)
    line = _verify_error(ckpt)
    assert str(ckpt) in line and "pickle" in line
    # A pickle renamed to .safetensors is caught by its content.
    disguised = tmp_path / "x.safetensors"
    shutil.copy(ckpt, disguised)
    with pytest.raises(WeightsError, match="pickle"):
        read_safetensors_header(disguised)


def test_git_lfs_pointer_is_named(copy_folder, zero123_folder):
    folder = copy_folder(zero123_folder)
    pointer = folder / "image_encoder" / "model.safetensors"
    pointer.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 1234\n")
    line = _verify_error(folder)
    assert str(pointer) in line and "LFS" in line


def test_missing_folder_is_named(copy_folder, zero123_folder):
    folder = copy_folder(zero123_folder)
    shutil.rmtree(folder / "clip_camera_projection")
    line = _verify_error(folder)
    assert "clip_camera_projection" in line and "cc_projection" in line


def test_loading_refuses_broken_folders_with_the_same_error(copy_folder, zero123_folder):
    from recon.priors.zero123 import Zero123Prior

    folder = copy_folder(zero123_folder)
    bad = folder / "unet" / "diffusion_pytorch_model.safetensors"
    bad.write_bytes(bad.read_bytes()[:-8])
    with pytest.raises(WeightsError) as info:
        Zero123Prior.from_pretrained(folder)
    assert info.value.path == bad and Path(str(info.value).split(":")[0]) == bad


def test_legacy_tensor_names_of_published_checkpoints_verify_and_load(copy_folder, sd_folder):
    """Published SD folders predate current library names: the text encoder's tensors carry a
    ``text_model.`` prefix plus a ``position_ids`` buffer, and 2022 VAEs name attention
    ``query/key/value/proj_attn``. Both libraries rename on load; verification must accept them."""
    from recon.priors.stable_diffusion import StableDiffusionPrior

    folder = copy_folder(sd_folder)
    text = folder / "text_encoder" / "model.safetensors"
    state = load_file(str(text))
    legacy = {"text_model." + k: v for k, v in state.items()}
    legacy["text_model.embeddings.position_ids"] = torch.arange(77).unsqueeze(0)
    save_file(legacy, str(text), metadata={"format": "pt"})
    vae = folder / "vae" / "diffusion_pytorch_model.safetensors"
    state = load_file(str(vae))
    renames = {".to_q.": ".query.", ".to_k.": ".key.", ".to_v.": ".value.", ".to_out.0.": ".proj_attn."}
    old = {}
    for key, value in state.items():
        for new, legacy_name in renames.items():
            if ".attentions." in key and new in key:
                key = key.replace(new, legacy_name)
        old[key] = value
    assert any(".query." in k for k in old)
    save_file(old, str(vae), metadata={"format": "pt"})
    verify_folder(folder, "stable-diffusion")
    prior = StableDiffusionPrior.from_pretrained(folder)
    reference = StableDiffusionPrior.from_pretrained(sd_folder)
    images = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(prior.encode(images), reference.encode(images))
    torch.testing.assert_close(prior.encode_prompt(["a cat"]), reference.encode_prompt(["a cat"]))


def _with_header(data: bytes, edit) -> bytes:
    """A safetensors file's bytes with its JSON header changed by ``edit`` (tensor data kept)."""
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    edit(header)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return len(raw).to_bytes(8, "little") + raw + data[8 + n :]


@pytest.mark.parametrize("damage, words", [
    (lambda d: d + b"\0" * 8, "truncated or corrupt"),  # bytes beyond what the header describes
    (lambda d: d[:8] + b"x" * int.from_bytes(d[:8], "little") + d[8 + int.from_bytes(d[:8], "little"):],
     "header is not JSON"),
    (lambda d: (10**12).to_bytes(8, "little") + d[8:], "bad header length"),
    (lambda d: b"\x01\x00\x00", "only 3 bytes"),
    (lambda d: _with_header(d, lambda h: h["a"].update(shape=[3, 5])), "inconsistent size"),
])
def test_damaged_safetensors_headers_are_named(tmp_path, damage, words):
    good = tmp_path / "good.safetensors"
    save_file({"a": torch.zeros(3, 4), "b": torch.ones(2, dtype=torch.float16)}, str(good))
    infos = read_safetensors_header(good)
    assert {k: (v.dtype, v.shape) for k, v in infos.items()} == {"a": ("F32", (3, 4)), "b": ("F16", (2,))}
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(damage(good.read_bytes()))
    with pytest.raises(WeightsError, match=words) as info:
        read_safetensors_header(bad)
    assert info.value.path == bad
