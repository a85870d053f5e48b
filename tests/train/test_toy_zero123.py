"""recon train toy-zero123: deterministic per seed, bit-identical resume, a folder recon's Zero-1-to-3 loader
reads with no special case (and conditions exactly as training did), `recon models verify` passes, and the
shipped weights fit in 20 MB and are what `--prior toy-zero123` selects."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from recon.cli import main
from recon.train import ToyZero123Config, TrainError, train_toy_zero123

# A run that takes seconds: one family, 4 views, 16² images, small networks.
TINY = ToyZero123Config(
    steps=6, vae_steps=4, batch_size=4, vae_batch_size=4, families=("drum",), elevations=(0.0,), azimuth_step=90.0,
    image_size=16, render_size=32, checkpoint_every=2, eval_every=3, eval_samples=8, log_every=2,
    unet_channels=(16, 32), unet_attention=(False, True), unet_heads=2, vae_channels=(8, 16), context_dim=16,
    clip_hidden=16, clip_patch=4,
)
WEIGHT_FILES = ("unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors",
                "image_encoder/model.safetensors", "clip_camera_projection/diffusion_pytorch_model.safetensors")
SHIPPED = Path(__file__).resolve().parents[2] / "models" / "toy-zero123"
MAX_BYTES = 20 * 2**20


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    yield


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    out = {}
    for name in WEIGHT_FILES:
        out.update({f"{name}:{k}": v for k, v in load_file(str(folder / name)).items()})
    return out


def _same(a: Path, b: Path) -> bool:
    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def _history(folder: Path) -> list[dict]:
    return json.loads((folder / "training.json").read_text())["history"]


class StopAfter:
    """Asks a run to stop once ``checks`` step boundaries have passed (as Ctrl-C would)."""

    def __init__(self, checks: int) -> None:
        self.checks = checks

    @property
    def requested(self) -> bool:
        self.checks -= 1
        return self.checks < 0


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("toy") / "a"
    train_toy_zero123(out, TINY, command="test")
    return out


def test_same_seed_same_weights_other_seed_other_weights(trained, tmp_path):
    again = tmp_path / "again"
    train_toy_zero123(again, TINY)
    assert _same(trained, again)
    assert _history(trained) == [dict(h, seconds=a["seconds"]) for h, a in zip(_history(again), _history(trained))]
    other = tmp_path / "other"
    train_toy_zero123(other, replace(TINY, seed=1))
    assert not _same(trained, other)


def test_interrupted_and_resumed_run_is_bit_identical(trained, tmp_path):
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):  # stopped inside the autoencoder stage
        train_toy_zero123(out, TINY, stop=StopAfter(2))
    state = json.loads((out / "checkpoints" / "state.json").read_text())
    assert 0 < state["vae_step"] < TINY.vae_steps and state["step"] == 0
    with pytest.raises(KeyboardInterrupt):  # then inside the denoiser stage
        train_toy_zero123(out, TINY, resume=True, stop=StopAfter(3))
    state = json.loads((out / "checkpoints" / "state.json").read_text())
    assert state["vae_step"] == TINY.vae_steps and 0 < state["step"] < TINY.steps
    result = train_toy_zero123(out, TINY, resume=True)
    assert result.resumed and result.steps == TINY.steps
    assert _same(trained, out)
    assert [h["eval_loss"] for h in _history(out)] == [h["eval_loss"] for h in _history(trained)]


def test_a_longer_run_extends_a_finished_one_exactly(tmp_path):
    short, long = tmp_path / "short", tmp_path / "long"
    train_toy_zero123(short, replace(TINY, steps=3))
    train_toy_zero123(short, TINY, resume=True)
    train_toy_zero123(long, TINY)
    assert _same(short, long)


def test_resume_refuses_other_settings_and_a_fresh_run_refuses_a_checkpoint(trained, tmp_path):
    with pytest.raises(TrainError, match=r"other settings.*lr"):
        train_toy_zero123(tmp_path / "x", replace(TINY, lr=1e-3), checkpoints=trained / "checkpoints", resume=True)
    with pytest.raises(TrainError, match="--resume"):
        train_toy_zero123(tmp_path / "x", TINY, checkpoints=trained / "checkpoints")
    code = CliRunner().invoke(main, ["train", "toy-zero123", "--out", str(trained), "--quiet"])
    assert code.exit_code == 1 and code.output.count("error:") == 1 and "--resume" in code.output


def test_folder_loads_through_the_zero123_loader_and_verifies(trained):
    from recon.priors.loading import load_prior
    from recon.priors.zero123 import Zero123Prior, load_zero123_prior

    prior = load_zero123_prior(trained)
    assert isinstance(prior, Zero123Prior) and prior.image_size == TINY.image_size
    assert prior.sample_shape == (4, TINY.latent_size, TINY.latent_size)
    assert isinstance(load_prior(str(trained)), Zero123Prior)  # kind detected from the layout
    record = json.loads((trained / "training.json").read_text())
    assert record["command"] == "test" and record["seed"] == 0 and record["steps"] == TINY.steps
    assert len(record["data_sha256"]) == 64 and math.isfinite(record["final_train_loss"])
    assert math.isclose(prior.vae_scaling_factor, record["vae"]["scaling_factor"])
    result = CliRunner().invoke(main, ["models", "verify", str(trained)])
    assert result.exit_code == 0 and result.output.strip().endswith("OK"), result.output
    assert "clip_camera_projection" in result.output  # zero123-xl's layout


def test_the_loader_conditions_exactly_as_training_did(trained):
    """The loaded prior's conditional and unconditional ε equal the training forward pass on the same rows:
    same CLIP preprocessing, unscaled concat latent, pose vector, and zeros for the unconditional branch."""
    from recon.diffusion.schedule import NoiseSchedule
    from recon.priors.components import ClipImagePreprocess
    from recon.priors.zero123 import load_zero123_prior
    from recon.train.toy_data import render_toy_views
    from recon.train.toy_zero123 import SCHEDULER_CONFIG, Batch, clip_preprocess, encode_views, predict

    prior = load_zero123_prior(trained)
    assert ClipImagePreprocess.from_folder(trained / "feature_extractor") == clip_preprocess(TINY)
    assert prior.schedule.alphas_cumprod.equal(NoiseSchedule.from_config(SCHEDULER_CONFIG).alphas_cumprod)
    views = render_toy_views(TINY.grid(), TINY.image_size, TINY.render_size, families=TINY.families)
    models = type("M", (), {"vae": prior.vae, "image_encoder": prior.image_encoder})()
    enc = encode_views(models, views, TINY, prior.vae_scaling_factor)  # type: ignore[arg-type]
    member, n = 1, views.cameras.shape[0]
    front = views.images[member, views.front][None]
    cond = prior.condition(image=front, camera=views.cameras, reference=views.cameras[views.front])
    g = torch.Generator().manual_seed(0)
    x_t = torch.randn((n, *prior.sample_shape), generator=g)
    t = torch.randint(0, 1000, (n,), generator=g)
    for drop in (False, True):
        uncond = torch.full((n,), drop)
        eps = prior._model_eps(x_t, t, cond, uncond)
        from recon.priors.zero123 import zero123_pose

        batch = Batch(x_t, t, torch.zeros_like(x_t), enc.latents[member, views.front].expand(n, -1, -1, -1),
                      zero123_pose(views.cameras, views.cameras[views.front]).float(),
                      enc.clip[member, views.front].expand(n, -1), uncond)
        ref = predict(prior.unet, prior.projection, prior.image_encoder, batch, train_clip=False)
        torch.testing.assert_close(eps, ref, rtol=1e-5, atol=1e-5)


def test_default_model_fits_in_20_mb():
    from recon.train.toy_zero123 import Models

    with torch.device("meta"):
        models = Models.build(ToyZero123Config())
    params = sum(p.numel() for m in (models.unet, models.vae, models.image_encoder, models.projection)
                 for p in m.parameters())
    assert params * 4 <= MAX_BYTES


@pytest.mark.skipif(not SHIPPED.is_dir(), reason="models/toy-zero123 not trained yet")
def test_shipped_weights_verify_fit_and_are_what_prior_toy_zero123_selects(monkeypatch, tmp_path):
    from recon.pipeline.recipes import prior_flag
    from recon.priors.zoo import resolve

    monkeypatch.setenv("RECON_MODELS", str(tmp_path))  # an empty models folder: the shipped copy is used
    total = sum(p.stat().st_size for p in SHIPPED.rglob("*") if p.is_file())
    assert total <= MAX_BYTES, f"{SHIPPED} holds {total / 2**20:.1f} MiB"
    assert not (SHIPPED / "checkpoints").exists()
    found = resolve("toy-zero123")
    assert found.source == "shipped" and found.path == SHIPPED and found.entry.kind == "zero123"
    assert prior_flag("toy-zero123") == {"kind": "zero123", "path": "toy-zero123"}
    result = CliRunner().invoke(main, ["models", "verify", "toy-zero123"])
    assert result.exit_code == 0 and result.output.strip().endswith("OK"), result.output
    record = json.loads((SHIPPED / "training.json").read_text())
    for key in ("command", "seed", "steps", "final_train_loss", "final_eval_loss", "data_sha256"):
        assert record[key] is not None, key
    assert record["command"].startswith("python -m recon train toy-zero123 --out models/toy-zero123")
