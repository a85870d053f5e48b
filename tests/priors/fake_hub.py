"""A Hugging Face hub on the loopback address, serving folders as model repositories.

It answers the four requests huggingface_hub 2.4's ``snapshot_download`` makes (read from its source):
``GET /api/models/<repo>/revision/<rev>`` (only for a branch name), ``GET /api/models/<repo>/tree/<commit>``
(the file listing), ``HEAD /<repo>/resolve/<commit>/<file>`` (etag, commit, size) and
``GET /<repo>/resolve/<commit>/<file>`` with ``Range`` support. Every request is logged, so a test can
see what was fetched; ``cut_after`` drops the connection of a file's first GET after that many bytes of
body (a network drop mid-file), ``fail_get`` answers a file's GETs with HTTP 500 until cleared.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse


@dataclass
class Repo:
    commit: str
    files: dict[str, bytes]

    @classmethod
    def from_folder(cls, folder: Path, commit: str) -> Repo:
        return cls(commit, {p.relative_to(folder).as_posix(): p.read_bytes()
                            for p in sorted(folder.rglob("*")) if p.is_file()})

    def size(self, names) -> int:
        return sum(len(self.files[n]) for n in names)


@dataclass
class FakeHub:
    repos: dict[str, Repo] = field(default_factory=dict)
    log: list[tuple[str, str, str]] = field(default_factory=list)  # (method, file or api path, Range header)
    cut_after: dict[str, int] = field(default_factory=dict)
    fail_get: set[str] = field(default_factory=set)
    url: str = ""

    def gets(self) -> list[str]:
        """Files fetched with GET, in order (API calls left out)."""
        return [path for method, path, _ in self.log if method == "GET" and not path.startswith("/api/")]

    def start(self) -> FakeHub:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_HEAD(self):
                self._answer(body=False)

            def do_GET(self):
                self._answer(body=True)

            def _send(self, code: int, headers: dict[str, str], payload: bytes = b"", body: bool = True):
                self.send_response(code)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                if body and payload:
                    self.wfile.write(payload)

            def _json(self, data) -> None:
                payload = json.dumps(data).encode()
                self._send(200, {"Content-Type": "application/json", "Content-Length": str(len(payload))}, payload)

            def _answer(self, body: bool) -> None:
                path = unquote(urlparse(self.path).path)
                rng = self.headers.get("Range", "")
                api = re.fullmatch(r"/api/models/(.+?)/(revision|tree)/([^/]+)(/.*)?", path)
                hub.log.append((self.command, path if api else "", rng))
                if api:
                    repo = hub.repos.get(api.group(1))
                    if repo is None:
                        return self._send(404, {"X-Error-Code": "RepoNotFound", "Content-Length": "0"})
                    if api.group(2) == "revision":
                        return self._json({"id": api.group(1), "sha": repo.commit,
                                           "siblings": [{"rfilename": f} for f in repo.files]})
                    return self._json([{"type": "file", "path": f, "size": len(data),
                                        "oid": hashlib.sha1(data).hexdigest()} for f, data in repo.files.items()])
                m = re.fullmatch(r"/(.+?/.+?)/resolve/([^/]+)/(.+)", path)
                repo = hub.repos.get(m.group(1)) if m else None
                name = m.group(3) if m else ""
                if repo is None or name not in repo.files:
                    return self._send(404, {"X-Error-Code": "EntryNotFound", "Content-Length": "0"})
                hub.log[-1] = (self.command, name, rng)
                data = repo.files[name]
                etag = hashlib.sha256(data).hexdigest()
                headers = {"X-Repo-Commit": repo.commit, "ETag": f'"{etag}"', "Accept-Ranges": "bytes",
                           "Content-Type": "application/octet-stream"}
                if not body:
                    return self._send(200, {**headers, "Content-Length": str(len(data))}, body=False)
                if name in hub.fail_get:
                    return self._send(500, {"Content-Length": "0"})
                start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1)) if rng else 0
                part = data[start:]
                code = 206 if rng else 200
                if rng:
                    headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                self.send_response(code)
                for k, v in {**headers, "Content-Length": str(len(part))}.items():
                    self.send_header(k, v)
                self.end_headers()
                cut = hub.cut_after.pop(name, None)
                if cut is not None:  # a dropped connection: part of the body, then the socket closes
                    self.wfile.write(part[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(part)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
