"""Issue 10, item 4: an opaque photo after `pip install "recon[segment]"`: rembg fetches its model on first
use, with its own code, and caches it; offline or unreachable, one line says which file to fetch from
where and where to put it.

rembg's download URLs are fixed in its session classes, so the test points pooch (the library rembg
downloads with) at a server on the loopback address: ``pooch.retrieve`` is wrapped to swap the host of
rembg's URL, and everything else (rembg's lookup, pooch's streaming download into a temporary file, its
progress bar, rembg's md5 check, the move into ``$REMBG_HOME/models/<model>/``) is the real code. The served
file is a tiny ONNX model (tests/io/test_rembg_local_model.py), not the 176 MB u2net, so the checksum is
switched off the way rembg provides (``MODEL_CHECKSUM_DISABLED``), except where the test is the checksum.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import get_args

import numpy as np
import pytest
from click.testing import CliRunner

from recon.io.errors import InputError
from recon.io.segment import REMBG_DOWNLOADS, SegmenterModel, rembg_installed, rembg_model_url
from tests.io.test_rembg_local_model import photo, save_darkness_model

pytestmark = pytest.mark.skipif(not rembg_installed(), reason='needs the optional "segment" extra (rembg, '
                                "onnxruntime); without it the not-installed line is tested in test_segment_recentre.py")


class Files:
    """A static file server on 127.0.0.1 logging each GET."""

    def __init__(self, files: dict[str, bytes]):
        self.files, self.log = files, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.log.append(self.path)
                data = outer.files.get(self.path.removeprefix("/rembg/"))
                self.send_response(200 if data is not None else 404)
                self.send_header("Content-Length", str(len(data or b"")))
                self.end_headers()
                self.wfile.write(data or b"")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/rembg"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def model_bytes(tmp_path) -> bytes:
    save_darkness_model(tmp_path / "built" / "m.onnx")
    return (tmp_path / "built" / "m.onnx").read_bytes()


@pytest.fixture
def online(tmp_path, monkeypatch):
    """A user with network and an empty rembg home; pooch's downloads of rembg's URLs go to ``server``."""
    import pooch

    home = tmp_path / "rembg-home"
    monkeypatch.setenv("REMBG_HOME", str(home))
    for var in ("U2NET_HOME", "XDG_DATA_HOME", "HF_HUB_OFFLINE", "RECON_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MODEL_CHECKSUM_DISABLED", "1")
    server = Files({})
    asked: list[str] = []
    real_retrieve = pooch.retrieve

    def retrieve(url, *args, **kwargs):
        asked.append(url)
        return real_retrieve(url.replace(REMBG_DOWNLOADS, server.url), *args, **kwargs)

    monkeypatch.setattr(pooch, "retrieve", retrieve)
    yield SimpleNamespace(home=home, server=server, asked=asked)
    server.stop()


def _config(model="u2net"):
    from recon.io.prepare import InputConfig
    from recon.io.segment import SegmentConfig

    return InputConfig(segment=SegmentConfig(model=model))


def test_first_use_downloads_with_rembgs_own_code_then_segments_and_caches(online, model_bytes, tmp_path):
    from recon.io.prepare import prepare_input

    online.server.files["u2net.onnx"] = model_bytes
    path, disk = photo(tmp_path)
    out = prepare_input(path, _config())
    assert online.asked == [rembg_model_url("u2net")]  # rembg asked pooch for the URL recon names
    assert online.server.log == ["/rembg/u2net.onnx"]
    cached = online.home / "models" / "u2net" / "u2net.onnx"
    assert cached.read_bytes() == model_bytes
    assert out.segmented.source == "rembg:u2net"
    mask = out.segmented.alpha > 0.5
    assert (mask & disk).sum() / (mask | disk).sum() > 0.9
    # Second use: found in rembg's home, nothing fetched.
    prepare_input(path, _config())
    assert online.server.log == ["/rembg/u2net.onnx"] and len(online.asked) == 1


def test_recon_run_fetches_the_model_before_the_run_with_a_progress_bar(online, model_bytes, tmp_path, monkeypatch):
    from recon.cli import main

    online.server.files["u2net.onnx"] = model_bytes
    path, _ = photo(tmp_path)
    runs = []
    monkeypatch.setattr("recon.pipeline.image_to_3d.reconstruct", lambda image, config, out_dir, progress=None: (
        runs.append(config), SimpleNamespace(hypotheses=[], out_dir=Path(out_dir), seconds=0.0, resumed=False,
                                             run_json=Path(out_dir) / "run.json"))[1])
    result = CliRunner().invoke(main, ["run", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.stderr
    target = online.home / "models" / "u2net"
    assert f"downloading {rembg_model_url('u2net')} into {target}" in result.stderr
    assert "100%" in result.stderr  # pooch's progress bar
    assert (target / "u2net.onnx").read_bytes() == model_bytes and len(runs) == 1


def test_a_download_that_fails_rembgs_checksum_is_refused_and_not_cached(online, model_bytes, tmp_path, monkeypatch):
    from recon.io.prepare import prepare_input

    monkeypatch.delenv("MODEL_CHECKSUM_DISABLED")
    online.server.files["u2net.onnx"] = model_bytes  # not the real u2net: its md5 differs from rembg's
    path, _ = photo(tmp_path)
    with pytest.raises(InputError) as info:
        prepare_input(path, _config())
    text = str(info.value)
    assert "\n" not in text and str(path) in text and "could not be downloaded" in text
    assert rembg_model_url("u2net") in text and str(online.home / "models" / "u2net" / "u2net.onnx") in text
    assert "--segmenter-model" in text and "RGBA" in text
    assert not list(online.home.rglob("*.onnx"))  # pooch removed its temporary file


def test_an_unreachable_network_is_one_line(online, tmp_path, monkeypatch):
    from recon.io.prepare import prepare_input

    online.server.url = "http://127.0.0.1:9"  # the discard port: nothing listens
    path, _ = photo(tmp_path)
    with pytest.raises(InputError) as info:
        prepare_input(path, _config("u2netp"))
    text = str(info.value)
    assert "\n" not in text and "could not be downloaded" in text and "u2netp.onnx" in text
    assert rembg_model_url("u2netp") in text and str(online.home / "models" / "u2netp" / "u2netp.onnx") in text
    assert not list(online.home.rglob("*.onnx"))


@pytest.mark.parametrize("switch", ["HF_HUB_OFFLINE", "RECON_OFFLINE"])
def test_offline_says_what_to_fetch_from_where_and_where_to_put_it(online, tmp_path, monkeypatch, switch):
    from recon.cli import main

    monkeypatch.setenv(switch, "1")
    path, _ = photo(tmp_path)
    result = CliRunner().invoke(main, ["run", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    line = lines[0]
    assert f"{switch}=1 forbids downloading it" in line and str(path) in line
    assert f"download {rembg_model_url('u2net')} and save it as {online.home / 'models' / 'u2net' / 'u2net.onnx'}" in line
    assert "--segmenter-model" in line and "RGBA" in line
    assert online.asked == [] and not online.home.exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("model", get_args(SegmenterModel))
def test_recon_names_the_url_rembg_downloads_each_model_from(model, tmp_path, monkeypatch):
    """The oracle is rembg's own download_models: what it hands pooch.retrieve, and the name it saves as."""
    import pooch
    from rembg.sessions import sessions

    monkeypatch.setenv("REMBG_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("U2NET_HOME", raising=False)
    calls = []

    def record(url, known_hash=None, fname=None, path=None, **kwargs):
        calls.append((url, fname, Path(path)))
        raise ConnectionError("recorded, not downloaded")

    monkeypatch.setattr(pooch, "retrieve", record)
    with pytest.raises(ConnectionError):
        sessions[model].download_models()
    from recon.io.segment import rembg_model_candidates

    assert calls == [(rembg_model_url(model), f"{model}.onnx", rembg_model_candidates(model)[0].parent)]


def test_explicit_model_path_still_wins_and_downloads_nothing(online, tmp_path):
    from recon.io.prepare import InputConfig, prepare_input
    from recon.io.segment import SegmentConfig

    model = tmp_path / "mine" / "u2net.onnx"
    save_darkness_model(model)
    path, disk = photo(tmp_path)
    out = prepare_input(path, InputConfig(segment=SegmentConfig(model="u2net", model_path=model)))
    assert ((out.segmented.alpha > 0.5) == disk).mean() > 0.97
    assert online.asked == [] and not online.home.exists()
    assert np.isfinite(out.segmented.alpha).all()
