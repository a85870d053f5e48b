"""The model zoo: which weights recon knows, where they are on this machine, and how to fetch them.

``models/zoo.yaml`` lists each model (name, kind, hub id, pinned revision, licence, size, files).
A model is looked for, in order:

1. an explicit folder (``--model-path``, or a name that is itself a folder);
2. ``$RECON_MODELS/<name>/``;
3. the Hugging Face cache (``$HF_HOME`` / ``$HF_HUB_CACHE``), at the pinned revision, without network;
4. for a model shipped with recon (``local:`` in the zoo, e.g. ``toy-zero123``), its folder in the
   source tree (``models/<name>/``).

``pull`` downloads the listed files with ``huggingface_hub``'s ``snapshot_download`` (progress bars)
into ``$RECON_MODELS/<name>/`` when that variable is set, else into the Hugging Face cache. What
"resumable" means with the pinned ``huggingface_hub`` 2.4: a connection dropped mid-file is resumed
within the same call with an HTTP ``Range`` request; across runs (Ctrl-C, a failed run), the files
already downloaded are kept and only the missing ones are fetched again, but a half-downloaded file
starts over (the library deletes its unique temporary file). Where the hub cannot be reached it
raises one :class:`ZooError` that says what to download and where to put it.

``recon run`` / ``recon text`` fetch a missing zoo model on demand (:func:`download_needed`,
:func:`download_plan`, :func:`offline_reason`; the question and ``--yes`` live in
``recon.cli.common.ensure_weights``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from recon.config import ConfigError, from_dict, read_yaml
from recon.priors.folder_layout import ModelKind
from recon.priors.verify_folder import verify_folder
from recon.priors.weight_files import WeightsError

ZOO_FILE = Path(__file__).resolve().parents[2] / "models" / "zoo.yaml"
ENV_MODELS = "RECON_MODELS"
ENV_ZOO = "RECON_ZOO"

Source = Literal["path", "recon_models", "hf_cache", "shipped"]


class ZooError(RuntimeError):
    """A model that cannot be found, fetched or is unknown; the message says what to do."""


@dataclass(frozen=True)
class ZooEntry:
    """One known model.

    Attributes:
        name: recon's name for it (``zero123-xl``).
        kind: which prior loads it.
        hub_id: Hugging Face repository.
        revision: pinned commit (or a branch where no commit could be pinned).
        licence: the weights' licence, as the model card states it.
        size: approximate download size.
        files: the repository files recon needs (exact paths or glob patterns).
        variant: ``zero123`` or ``stable-zero123`` (pose vector); empty for other kinds.
        description: one line for ``recon models list``.
        local: for weights shipped in this repository, their folder relative to the repository root
            (``hub_id`` and ``revision`` are then empty: there is nothing to download).
        recipe: the ``configs/`` recipe ``recon run --prior NAME`` starts from (a file name such as
            ``toy-zero123.yaml``, or a path); empty = the recipe of the model's kind
            (:func:`recon.pipeline.recipes.recipe_for`).
    """

    name: str
    kind: ModelKind
    hub_id: str
    revision: str
    licence: str
    size: str
    files: tuple[str, ...]
    variant: str = ""
    description: str = ""
    local: str = ""
    recipe: str = ""

    @property
    def local_path(self) -> Path | None:
        """The shipped folder of a ``local`` model (None for hub models)."""
        return ZOO_FILE.parents[1] / self.local if self.local else None

    @property
    def recipe_path(self) -> Path | None:
        """The entry's own recipe (``recipe:``; a bare name is looked up in ``configs/``), or None."""
        if not self.recipe:
            return None
        path = Path(self.recipe)
        root = ZOO_FILE.parents[1]
        return path if path.is_absolute() else root / path if len(path.parts) > 1 else root / "configs" / path


@dataclass(frozen=True)
class Zoo:
    entries: tuple[ZooEntry, ...] = field(default_factory=tuple)

    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    def get(self, name: str) -> ZooEntry:
        for entry in self.entries:
            if entry.name == name:
                return entry
        raise ZooError(f"unknown model {name!r}; known models: {', '.join(self.names())} "
                       "(or pass the path of a diffusers model folder)")


def load_zoo(path: str | Path | None = None) -> Zoo:
    """Read ``models/zoo.yaml`` (or ``$RECON_ZOO``, or ``path``)."""
    path = Path(path or os.environ.get(ENV_ZOO) or ZOO_FILE)
    try:
        data = read_yaml(path)
        raw = data.get("models")
        if not isinstance(raw, list):
            raise ConfigError(f"{path}: expected a 'models:' list")
        entries = tuple(from_dict(ZooEntry, item, f"models[{i}]") for i, item in enumerate(raw))
    except ConfigError as exc:
        raise ZooError(f"{path}: {exc}" if str(path) not in str(exc) else str(exc)) from exc
    names = [e.name for e in entries]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ZooError(f"{path}: model {sorted(dupes)[0]!r} is listed twice")
    return Zoo(entries)


def models_dir() -> Path | None:
    value = os.environ.get(ENV_MODELS)
    return Path(value).expanduser() if value else None


@dataclass(frozen=True)
class Resolved:
    """Where a model's folder is and how it was found."""

    path: Path
    source: Source
    entry: ZooEntry | None


def hf_cache_dir() -> str | None:
    """The Hugging Face hub cache named by the environment now (None: the library's default)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return str(Path(os.environ["HF_HOME"]) / "hub")
    return None


def _hf_cache_path(entry: ZooEntry) -> Path | None:
    """The cached snapshot folder at the pinned revision, if one exists (never touches the network)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        path = snapshot_download(entry.hub_id, revision=entry.revision, allow_patterns=list(entry.files),
                                 local_files_only=True, cache_dir=hf_cache_dir())
    except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError):
        return None
    return Path(path)


def locate(entry: ZooEntry) -> list[Resolved]:
    """Every place on this machine that holds a folder for ``entry`` (RECON_MODELS first)."""
    found = []
    root = models_dir()
    if root is not None and (root / entry.name).is_dir():
        found.append(Resolved(root / entry.name, "recon_models", entry))
    cached = _hf_cache_path(entry) if entry.hub_id else None
    if cached is not None and cached.is_dir():
        found.append(Resolved(cached, "hf_cache", entry))
    shipped = entry.local_path
    if shipped is not None and shipped.is_dir():
        found.append(Resolved(shipped, "shipped", entry))
    return found


def resolve(name_or_path: str | Path, zoo: Zoo | None = None, path: str | Path | None = None) -> Resolved:
    """The folder to load: explicit path -> ``$RECON_MODELS/<name>`` -> Hugging Face cache."""
    if path is not None:
        folder = Path(path).expanduser()
        if not folder.exists():
            raise ZooError(f"{folder}: no such model folder")
        try:  # a zoo name with an explicit folder keeps its entry (kind, variant)
            entry: ZooEntry | None = (zoo or load_zoo()).get(str(name_or_path))
        except ZooError:
            entry = None
        return Resolved(folder, "path", entry)
    zoo = zoo or load_zoo()
    candidate = Path(str(name_or_path)).expanduser()
    if str(name_or_path) not in zoo.names() and candidate.exists():
        return Resolved(candidate, "path", None)  # a folder (zoo names take precedence over ./name)
    entry = zoo.get(str(name_or_path))
    places = locate(entry)
    if places:
        return places[0]
    raise ZooError(missing_message(entry))


def target_dir(entry: ZooEntry) -> Path | None:
    """Where ``pull`` puts the files: ``$RECON_MODELS/<name>`` or None for the Hugging Face cache."""
    root = models_dir()
    return None if root is None else root / entry.name


def missing_message(entry: ZooEntry) -> str:
    if entry.local:
        return (f"model {entry.name!r} ships with recon in {entry.local_path}, but that folder is missing: restore it "
                f"from the repository (git checkout -- {entry.local}) or retrain it as {entry.local}/README.md says")
    where = target_dir(entry)
    place = str(where) if where is not None else f"${ENV_MODELS}/{entry.name}/ (set {ENV_MODELS} first)"
    return (f"model {entry.name!r} is not on this machine: run `recon models pull {entry.name}`, or download "
            f"{', '.join(entry.files)} from https://huggingface.co/{entry.hub_id} (revision {entry.revision}) "
            f"and put them, keeping their sub-folders, in {place}")


def hf_cache_root() -> Path:
    """The Hugging Face hub cache folder that downloads go to (the library's default when unset)."""
    from huggingface_hub import constants

    return Path(hf_cache_dir() or constants.HF_HUB_CACHE)


def download_place(entry: ZooEntry) -> str:
    """Where ``pull`` puts ``entry``: its ``$RECON_MODELS`` folder or the Hugging Face cache, in words."""
    where = target_dir(entry)
    return str(where) if where is not None else f"the Hugging Face cache ({hf_cache_root()})"


_TRUE = {"1", "ON", "YES", "TRUE"}  # huggingface_hub's own reading of boolean variables


def offline_reason() -> str:
    """'' when downloads are allowed, else which switch forbids them (``RECON_OFFLINE=1`` or
    ``HF_HUB_OFFLINE=1``; recon.io.segment reads the same two for rembg's model)."""
    from huggingface_hub import constants

    if os.environ.get("RECON_OFFLINE", "").upper() in _TRUE:
        return "RECON_OFFLINE=1"
    if os.environ.get("HF_HUB_OFFLINE", "").upper() in _TRUE or constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE=1"
    return ""


def missing_files(entry: ZooEntry, folder: Path) -> list[str]:
    """The entry's files (a glob pattern counts when it matches one file) that ``folder`` lacks."""
    return [f for f in entry.files if not (any(p.is_file() for p in folder.glob(f)) if any(c in f for c in "*?[")
                                           else (folder / f).is_file())]


def download_needed(name_or_path: str | Path, zoo: Zoo | None = None) -> ZooEntry | None:
    """The zoo entry to download before ``name_or_path`` can load, or None.

    None for a folder, a name the zoo does not know (loading reports it), weights shipped with recon,
    and a model that is found (``$RECON_MODELS`` first: a broken copy there is reported by loading, never
    downloaded over). A Hugging Face cache snapshot that lacks some of the entry's files (an interrupted
    download) needs the download: it fetches only what is missing.
    """
    zoo = zoo or load_zoo()
    if str(name_or_path) not in zoo.names():
        return None
    entry = zoo.get(str(name_or_path))
    if entry.local or not entry.hub_id:
        return None
    places = locate(entry)
    if not places:
        return entry
    first = places[0]
    return entry if first.source == "hf_cache" and missing_files(entry, first.path) else None


@dataclass(frozen=True)
class DownloadPlan:
    """What a download of ``entry`` fetches: ``files`` not yet on this machine, ``bytes`` in all (as the hub
    reports them)."""

    entry: ZooEntry
    files: tuple[str, ...]
    bytes: int


def download_plan(entry: ZooEntry) -> DownloadPlan:
    """Ask the hub what a download of ``entry`` would fetch (huggingface_hub's dry run: a file listing and
    one HEAD request per file, nothing written). Raises :class:`ZooError` (one line) when the hub cannot
    be asked."""
    from huggingface_hub import snapshot_download

    dest = target_dir(entry)
    kwargs = {"local_dir": str(dest)} if dest is not None else {"cache_dir": hf_cache_dir()}
    try:
        unreachable = _probe_hub()
        if unreachable:
            raise OSError(unreachable)
        infos = snapshot_download(entry.hub_id, revision=entry.revision, allow_patterns=list(entry.files),
                                  dry_run=True, **kwargs)
    except _hub_errors() as exc:
        raise _download_error(entry, exc, dest) from exc
    todo = [i for i in infos if i.will_download]
    return DownloadPlan(entry, tuple(sorted(i.filename for i in todo)), sum(i.file_size or 0 for i in todo))


def _hub_errors() -> tuple[type[BaseException], ...]:
    """What a hub download raises for network, HTTP and cache problems (huggingface_hub's errors are
    OSErrors or ValueErrors; httpx2's transport errors can escape after its retries)."""
    import httpx2

    return (OSError, ValueError, httpx2.HTTPError)


def _download_error(entry: ZooEntry, exc: BaseException, dest: Path | None) -> ZooError:
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    if isinstance(exc, (GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError)):
        return ZooError(f"{entry.hub_id}@{entry.revision}: the hub refused the download ({type(exc).__name__}); "
                        f"accept the model's licence on https://huggingface.co/{entry.hub_id} and log in with "
                        "`hf auth login`, or download the files by hand")
    reason = " ".join(str(exc).split())[:200] or type(exc).__name__
    return ZooError(f"cannot download {entry.name!r} ({reason}); on a machine with network, download "
                    f"{', '.join(entry.files)} from https://huggingface.co/{entry.hub_id} (revision "
                    f"{entry.revision}) and copy them, keeping their sub-folders, to "
                    f"{dest or f'${ENV_MODELS}/{entry.name}/ on this machine'}")


def _probe_hub(timeout: float = 5.0) -> str:
    """'' when the hub's host accepts a connection, else why not. Fails in seconds where
    ``huggingface_hub`` would retry for ~25 s; skipped (assumed reachable) behind a proxy."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")):
        return ""
    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname or "", port), timeout=timeout).close()
    except OSError as exc:
        return f"the hub at {url.hostname}:{port} is unreachable: {exc.strerror or exc}"
    return ""


def pull(entry: ZooEntry, dest: Path | None = None, progress: bool = True) -> Path:
    """Download ``entry``'s files and verify them. Returns the model folder.

    ``progress``: huggingface_hub's own progress bars (shown on a terminal). Files already downloaded are
    not fetched again; a dropped connection is resumed within the call (see the module docstring).
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    if entry.local:
        raise ZooError(missing_message(entry) if not (entry.local_path and entry.local_path.is_dir()) else
                       f"model {entry.name!r} ships with recon ({entry.local_path}); there is nothing to download")
    dest = dest or target_dir(entry)
    kwargs = {"local_dir": str(dest)} if dest is not None else {"cache_dir": hf_cache_dir()}
    bars_were_off = are_progress_bars_disabled()
    if not progress:
        disable_progress_bars()
    try:
        unreachable = _probe_hub()
        if unreachable:
            raise OSError(unreachable)
        path = Path(snapshot_download(entry.hub_id, revision=entry.revision, allow_patterns=list(entry.files),
                                      **kwargs))
    except _hub_errors() as exc:
        raise _download_error(entry, exc, dest) from exc
    finally:
        if not progress and not bars_were_off:
            enable_progress_bars()
    try:
        verify_folder(path, entry.kind)
    except WeightsError as exc:
        raise ZooError(f"downloaded {entry.name!r} but it does not verify: {exc}") from exc
    return path
