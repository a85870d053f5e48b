"""Issue 10, item 3: `recon run --prior NAME` / `recon text --prior NAME` fetch missing weights on demand.

The hub is tests/priors/fake_hub.py on the loopback address (HF_ENDPOINT points huggingface_hub at it), serving
tiny random-weight models in the real folder layouts; recon's own code path runs unchanged: the zoo lookup, the
question (a real pseudo-terminal), --yes, the no-terminal and offline refusals, huggingface_hub's
snapshot_download into the Hugging Face cache, and the run that then finds the weights there. Only the
reconstruction itself is replaced by a stub that loads the prior from where the run resolves it.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from click.testing import CliRunner

from recon.cli import main
from recon.priors.zoo import load_zoo
from tests.priors.fake_hub import FakeHub, Repo

ROOT = Path(__file__).resolve().parents[2]
CRATE = ROOT / "data" / "examples" / "crate.png"  # RGBA: no segmentation, so only the weights are fetched
Z123_COMMIT = "a" * 40
SD_COMMIT = "b" * 40
PROXIES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def _zoo(path: Path) -> Path:
    real = {e.name: e for e in load_zoo().entries}
    models = [
        {"name": "tiny-z123", "kind": "zero123", "variant": "zero123", "hub_id": "tester/tiny-zero123",
         "revision": Z123_COMMIT, "licence": "MIT (test licence line)", "size": "1.1 MB (test)",
         "files": list(real["zero123-xl"].files)},
        {"name": "tiny-sd", "kind": "stable-diffusion", "hub_id": "tester/tiny-sd", "revision": "main",
         "licence": "CreativeML OpenRAIL++-M (test)", "size": "1.2 MB (test)",
         "files": list(real["sd-2.1-base"].files)},
    ]
    path.write_text(yaml.safe_dump({"models": models}))
    return path


@pytest.fixture
def hub(tmp_path, monkeypatch, zero123_folder, sd_folder):
    """The fake hub serving tiny-z123 (plus a README the zoo does not list) and tiny-sd; the environment
    of a user with network, no $RECON_MODELS and an empty Hugging Face cache."""
    from huggingface_hub import constants

    repo = Repo.from_folder(zero123_folder, Z123_COMMIT)
    repo.files["README.md"] = b"not listed in the zoo: never fetched"
    server = FakeHub({"tester/tiny-zero123": repo, "tester/tiny-sd": Repo.from_folder(sd_folder, SD_COMMIT)}).start()
    monkeypatch.setenv("RECON_ZOO", str(_zoo(tmp_path / "zoo.yaml")))
    monkeypatch.delenv("RECON_MODELS", raising=False)
    monkeypatch.delenv("RECON_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    for var in PROXIES:
        monkeypatch.delenv(var, raising=False)
    # huggingface_hub read HF_ENDPOINT / HF_HUB_OFFLINE when it was imported; set what it derived from them.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", server.url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", server.url + "/{repo_id}/resolve/{revision}/{filename}")
    yield server
    server.stop()


@pytest.fixture
def stub_runs(monkeypatch):
    """The reconstruction replaced by: resolve the prior the way the run does and load it."""
    seen: list = []

    def fake_result(out_dir):
        return SimpleNamespace(hypotheses=[], out_dir=Path(out_dir), seconds=0.0, resumed=False,
                               run_json=Path(out_dir) / "run.json")

    def reconstruct(image, config, out_dir, progress=None):
        from recon.pipeline.prior_setup import build_image_prior, image_prior_model
        from recon.priors.zoo import resolve

        seen.append((resolve(image_prior_model(config.prior)), build_image_prior(config.prior, None, "cpu")))
        return fake_result(out_dir)

    def text_to_3d(prompt, config, out_dir, progress=None):
        from recon.pipeline.text_prior import build_text_prior, text_prior_model
        from recon.priors.zoo import resolve

        seen.append((resolve(text_prior_model(config.prior)), build_text_prior(config.prior)))
        return fake_result(out_dir)

    monkeypatch.setattr("recon.pipeline.image_to_3d.reconstruct", reconstruct)
    monkeypatch.setattr("recon.pipeline.text_to_3d.text_to_3d", text_to_3d)
    return seen


def _invoke(*args: str):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def _one_error(stderr: str) -> str:
    """The failure's single line: the only one on stderr."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def _last_error(stderr: str) -> str:
    """After the size and licence lines, the failure is one ``error:`` line, the last."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and sum(line.startswith("error:") for line in lines) == 1, stderr
    assert "Traceback" not in stderr, stderr
    return lines[-1]


def _snapshot(tmp_path: Path, repo: str, commit: str) -> Path:
    return tmp_path / "hf-cache" / f"models--{repo.replace('/', '--')}" / "snapshots" / commit


def test_run_with_yes_downloads_into_the_hf_cache_and_the_run_loads_it(hub, stub_runs, tmp_path):
    zoo_files = set(load_zoo().get("tiny-z123").files)
    code, _out, err = _invoke("run", CRATE, "--prior", "tiny-z123", "--yes", "--out", tmp_path / "out")
    assert code == 0, err
    size = hub.repos["tester/tiny-zero123"].size(zoo_files)
    assert f"{size / 1e6:.1f} MB to download (11 files of tester/tiny-zero123@aaaaaaaaaaaa)" in err
    assert "licence: MIT (test licence line)" in err
    assert str(tmp_path / "hf-cache") in err
    # Exactly the zoo's files were fetched, each once, through huggingface_hub's cache layout.
    assert sorted(hub.gets()) == sorted(zoo_files)
    snapshot = _snapshot(tmp_path, "tester/tiny-zero123", Z123_COMMIT)
    for name in zoo_files:
        assert (snapshot / name).read_bytes() == hub.repos["tester/tiny-zero123"].files[name]
    assert not (snapshot / "README.md").exists()
    resolved, prior = stub_runs[0]
    assert resolved.source == "hf_cache" and resolved.path == snapshot
    assert type(prior).__name__ == "Zero123Prior"
    # Run again: the weights are found, nothing is asked or fetched.
    before = len(hub.log)
    code, _out, err = _invoke("run", CRATE, "--prior", "tiny-z123", "--out", tmp_path / "out2")
    assert code == 0, err
    assert len(hub.log) == before and "to download" not in err


def test_text_with_yes_downloads_and_loads(hub, stub_runs, tmp_path):
    code, out, err = _invoke("text", "a chair", "--prior", "tiny-sd", "--yes", "--json", "--out", tmp_path / "out")
    assert code == 0, err
    assert json.loads(out)["out"] == str(tmp_path / "out")  # stdout stays the JSON summary
    assert "licence: CreativeML OpenRAIL++-M (test)" in err
    resolved, prior = stub_runs[0]
    # revision "main": huggingface_hub asked the hub which commit that is, and cached it under that commit.
    assert resolved.source == "hf_cache" and resolved.path == _snapshot(tmp_path, "tester/tiny-sd", SD_COMMIT)
    assert ("GET", "/api/models/tester/tiny-sd/revision/main", "") in hub.log
    assert type(prior).__name__ == "StableDiffusionPrior"


def test_without_a_terminal_and_without_yes_one_line_and_nothing_fetched(hub, stub_runs, tmp_path):
    # CliRunner's standard input is not a terminal, like a job's or a pipe's.
    code, _out, err = _invoke("run", CRATE, "--prior", "tiny-z123", "--out", tmp_path / "out")
    assert code == 1
    line = _one_error(err)
    assert "no terminal" in line and "--yes" in line and "recon models pull tiny-z123" in line
    assert "tester/tiny-zero123" in line and "1.1 MB (test)" in line and "MIT (test licence line)" in line
    assert hub.log == [] and not (tmp_path / "hf-cache").exists() and not stub_runs
    code, _out, err = _invoke("text", "a chair", "--prior", "tiny-sd", "--out", tmp_path / "out")
    assert code == 1 and "--yes" in _one_error(err) and hub.log == []


@pytest.mark.parametrize("switch", ["HF_HUB_OFFLINE", "RECON_OFFLINE"])
def test_offline_says_what_to_fetch_and_how(hub, stub_runs, tmp_path, monkeypatch, switch):
    monkeypatch.setenv(switch, "1")
    code, _out, err = _invoke("run", CRATE, "--prior", "tiny-z123", "--yes", "--out", tmp_path / "out")
    assert code == 1
    line = _one_error(err)
    assert f"{switch}=1 forbids downloading" in line
    assert f"tester/tiny-zero123 at revision {Z123_COMMIT} (1.1 MB (test)" in line
    assert "recon models pull tiny-z123" in line and str(tmp_path / "hf-cache") in line
    assert hub.log == [] and not stub_runs


def test_unreachable_hub_is_one_line(hub, stub_runs, tmp_path, monkeypatch):
    from huggingface_hub import constants

    dead = "http://127.0.0.1:9"  # the discard port: nothing listens
    monkeypatch.setattr(constants, "ENDPOINT", dead)
    code, _out, err = _invoke("run", CRATE, "--prior", "tiny-z123", "--yes", "--out", tmp_path / "out")
    assert code == 1
    line = _one_error(err)
    assert "unreachable" in line and "127.0.0.1:9" in line and "https://huggingface.co/tester/tiny-zero123" in line
    assert not stub_runs


def test_a_connection_dropped_mid_file_is_resumed_with_a_range_request(hub, stub_runs, tmp_path, monkeypatch):
    # huggingface_hub writes what it receives in 10 MiB chunks and resumes from the last whole chunk, so the
    # file that drops must be larger than that: a 12 MiB file joins the model (the zoo lists it).
    big, size, cut = "assets/big.dat", 12 * 2**20, 11 * 2**20
    data = bytes(range(256)) * (size // 256)
    hub.repos["tester/tiny-zero123"].files[big] = data
    zoo = yaml.safe_load(Path(os.environ["RECON_ZOO"]).read_text())
    zoo["models"][0]["files"].append(big)
    Path(os.environ["RECON_ZOO"]).write_text(yaml.safe_dump(zoo))
    hub.cut_after[big] = cut
    code, _out, err = _invoke("run", CRATE, "--prior", "tiny-z123", "--yes", "--out", tmp_path / "out")
    assert code == 0, err
    ranges = [rng for method, path, rng in hub.log if method == "GET" and path == big]
    assert len(ranges) == 2 and ranges[0] == "", ranges
    start = int(ranges[1].removeprefix("bytes=").removesuffix("-"))
    assert 0 < start <= cut  # the second request continues from what the first one delivered
    assert (_snapshot(tmp_path, "tester/tiny-zero123", Z123_COMMIT) / big).read_bytes() == data


@pytest.mark.parametrize("listing", ["kept", "absent"])
def test_a_failed_download_keeps_its_files_and_the_next_run_fetches_only_the_rest(hub, stub_runs, tmp_path, listing,
                                                                                  monkeypatch):
    """``listing``: huggingface_hub 2.4 caches the repository's file listing and so knows the snapshot is
    incomplete; a snapshot without one (older huggingface_hub, a copied cache) looks complete to it, and
    recon's own check of the zoo's file list must catch it."""
    unet = "unet/diffusion_pytorch_model.safetensors"
    hub.fail_get.add(unet)
    code, _out, err = _invoke("run", CRATE, "--prior", "tiny-z123", "--yes", "--out", tmp_path / "out")
    assert code == 1
    line = _last_error(err)
    assert "cannot download 'tiny-z123'" in line and "500" in line and unet in line
    first = set(hub.gets()) - {unet}
    assert "model_index.json" in first and not stub_runs
    trees = _snapshot(tmp_path, "tester/tiny-zero123", Z123_COMMIT).parents[1] / "trees"
    assert trees.is_dir()
    if listing == "absent":  # as a new process would find it: no listing on disk, none in memory
        from huggingface_hub import _tree_cache

        for f in trees.iterdir():
            f.unlink()
        monkeypatch.setattr(_tree_cache, "_IN_MEMORY_TREE_CACHE", {})
    hub.fail_get.clear()
    hub.log.clear()
    code, _out, err = _invoke("run", CRATE, "--prior", "tiny-z123", "--yes", "--out", tmp_path / "out")
    assert code == 0, err
    second = set(hub.gets())
    assert unet in second and not (second & first)  # what the failed run finished is not fetched again
    assert stub_runs[0][0].source == "hf_cache"


def _in_a_terminal(args: list[str], answer: bytes, env: dict[str, str], timeout: float = 120) -> tuple[int, str]:
    """``python -m recon ARGS`` with a pseudo-terminal as its stdin, stdout and stderr (a user at a terminal),
    the reconstruction stubbed as in ``stub_runs``; types ``answer`` at the question."""
    code = ("import recon.pipeline.image_to_3d as m, types, pathlib\n"
            "def stub(image, config, out_dir, progress=None):\n"
            "    return types.SimpleNamespace(hypotheses=[], out_dir=pathlib.Path(out_dir), seconds=0.0,\n"
            "                                 resumed=False, run_json=pathlib.Path(out_dir) / 'run.json')\n"
            "m.reconstruct = stub\n"
            "import sys; sys.argv[0] = 'recon'\n"
            "from recon.cli import main; main()\n")
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 0x0 terminal hides tqdm's bars
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdin=slave, stdout=slave, stderr=slave,
                            env=env, cwd=ROOT, close_fds=True)
    os.close(slave)
    seen, sent = b"", False
    while True:
        ready, _, _ = select.select([master], [], [], timeout)
        if not ready:
            proc.kill()
            raise AssertionError(f"no output for {timeout} s: {seen.decode(errors='replace')}")
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the terminal closed: the process ended
            break
        if not chunk:
            break
        seen += chunk
        if not sent and b"Download it now?" in seen:
            os.write(master, answer)
            sent = True
    os.close(master)
    return proc.wait(timeout=60), seen.decode(errors="replace").replace("\r\n", "\n")


def test_at_a_terminal_the_question_is_asked_and_the_answer_obeyed(hub, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}  # HF_ENDPOINT etc. from `hub`
    args = ["run", str(CRATE), "--prior", "tiny-z123", "--out", str(tmp_path / "out")]
    code, text = _in_a_terminal(args, b"n\n", env)
    assert code == 1, text
    assert "Download it now? [y/N]" in text and "licence: MIT (test licence line)" in text
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "was not downloaded" in errors[0] and "--yes" in errors[0]
    assert hub.gets() == []
    code, text = _in_a_terminal(args, b"y\n", env)
    assert code == 0, text
    assert "Fetching 11 files" in text  # huggingface_hub's own progress bars, shown on a terminal
    assert "tiny-z123: downloaded and verified at" in text
    assert (_snapshot(tmp_path, "tester/tiny-zero123", Z123_COMMIT) / "model_index.json").is_file()
