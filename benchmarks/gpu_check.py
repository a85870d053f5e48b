"""One GPU check: the CUDA extra, nvdiffrast against the CPU rasteriser, prior throughput, and the real
image-to-3D recipe at its full schedule with K = 4 on random full-size weights — within 8 minutes, with a
JSON and a Markdown report.

    python benchmarks/gpu_check.py --out gpu-report                     # on a CUDA machine (H100 / H200)
    python benchmarks/gpu_check.py --out gpu-report --find-links wheels # the cuda extra from local wheels
    python benchmarks/gpu_check.py --dry-run --out /tmp/gpu-check       # the same code paths, tiny, on the CPU

Sections, in order, each with its own time limit (``--budget-s`` is the whole run's, default 480 s):

1. ``environment`` — torch, CUDA device, driver, recon commit, nvdiffrast.
2. ``install`` — ``pip install`` of the ``cuda`` extra of pyproject.toml (nvdiffrast JIT-builds its
   plugin on first use, inside the raster section), torch pinned to the installed build.
3. ``raster`` — the CPU rasteriser against nvdiffrast on the rasteriser tests' scenes (tests/render):
   mask IoU, colour error on pixels both give the same triangle, antialiased colours within 2/255,
   cosine of the vertex gradients; the criteria of ``tests/render/test_render_backends.py``.
4. ``models`` — random-weight Zero-1-to-3 XL at the published size in the published layout
   (``recon.priors.random_models``), parameter count checked against the published config.
5. ``throughput`` — noise predictions per second of Zero-1-to-3 and SD 2.1-base at batch 1/4/8/16 in
   fp16, bf16 and fp32, with PyTorch SDPA on (``base``), channels-last on, SDPA off, and torch.compile on
   (``benchmarks/prior_throughput.py`` does the measuring); groups in priority order until the section's
   time is spent, the rest listed as skipped.
6. ``pipeline`` — ``configs/image-to-3d.yaml`` (600 + 200 steps, 64→128→256 renders, tet grid 128, 1024²
   textures), K = 4, on the Zero-1-to-3 XL folder, stage by stage through recon's staged-run API: wall time,
   s/step, prior rows (network evaluations) per step and peak GPU memory per stage. A stage that would
   run past its share of the budget stops at a step boundary; the report then gives the steps run, and
   the full schedule's time projected from them (marked as projected).

Every section runs inside try/except: a failure is recorded in the report (error and traceback tail) and
the next section runs. The reports (``report.json``, ``report.md``) are rewritten after every section,
so a run killed from outside still leaves the sections done.

``--dry-run`` runs the same sections on the CPU at tiny sizes (tiny networks of the same layouts, a
32² recipe, K = 2, few steps, one torch thread, torch.compile through dynamo's ``eager`` backend) in
well under two minutes: nothing is installed, and without CUDA the CPU rasteriser is compared against
itself (the report says so). CI runs it so this script cannot rot.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import itertools
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # prior_throughput
IMAGE = ROOT / "data" / "examples" / "crate.png"
SECTIONS = ("environment", "install", "raster", "models", "throughput", "pipeline")
# Seconds per section on a GPU (the pipeline gets what is left, less a reserve for the reports).
# The first nvdiffrast call JIT-builds its CUDA plugin (about a minute), inside the raster section.
BUDGETS = {"install": 60.0, "raster": 100.0, "models": 40.0, "throughput": 100.0}
# --dry-run: ~40 s on a quiet 2-core CPU (throughput stops at its limit, the rest finish early); the other
# limits are wide so that a busy machine still completes every section.
DRY_BUDGETS = {"install": 10.0, "raster": 90.0, "models": 90.0, "throughput": 25.0}
RESERVE_S = 30.0  # the pipeline's last export and report may run past its limit
# The tiny recipe of --dry-run: configs/image-to-3d.yaml with every size cut.
DRY_PIPELINE = ["stage1.steps=4", "stage2.steps=2", "stage1.resolutions=[32,32,32]", "stage1.batch_sizes=[2,2,2]",
                "stage1.milestones=[2,3]", "stage2.resolution=32", "stage2.tet_resolution=24",
                "stage2.guidance_views_per_step=2", "export.texture_size=64", "export.target_faces=500",
                "report.turntable_frames=2", "report.render_size=32", "checkpoint_every=2"]


class SectionTimeout(BaseException):
    """Raised by the alarm when a section runs past its limit (a BaseException, so library code that
    catches Exception does not swallow it)."""


class Skip(Exception):
    """A section that does not apply here; its message is the reason."""


# ----------------------------------------------------------------------------------------- report
class Report:
    """Sections' status, reason, seconds and figures; written as JSON and Markdown after each section."""

    def __init__(self, out: Path, dry_run: bool, budget_s: float) -> None:
        self.out = out
        self.start = time.monotonic()
        self.budget_s = budget_s
        self.data: dict[str, Any] = {
            "schema": "recon.gpu_check/1", "dry_run": dry_run, "budget_s": budget_s,
            "started": datetime.now().astimezone().isoformat(timespec="seconds"), "sections": {}}

    def remaining(self) -> float:
        return self.budget_s - (time.monotonic() - self.start)

    def write(self) -> None:
        self.data["elapsed_s"] = round(time.monotonic() - self.start, 1)
        self.out.mkdir(parents=True, exist_ok=True)
        tmp = self.out / "report.json.tmp"
        tmp.write_text(json.dumps(self.data, indent=2, default=str))
        tmp.replace(self.out / "report.json")
        (self.out / "report.md").write_text(markdown(self.data))


@contextlib.contextmanager
def alarm(seconds: float):
    """Raise :class:`SectionTimeout` after ``seconds`` (main thread only; a no-op elsewhere)."""
    if seconds <= 0 or not hasattr(signal, "setitimer"):
        yield
        return

    def handler(signum, frame):
        raise SectionTimeout(f"stopped at its time limit ({seconds:.0f} s)")

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_section(report: Report, name: str, fn: Callable[[dict, float], None], limit_s: float | None,
                inject: set[str], grace_s: float = 15.0) -> None:
    """``fn(figures, limit_s)`` fills ``figures``; errors and time-outs are recorded, figures kept. The
    section stops itself at ``limit_s`` where it can; an alarm ``grace_s`` later stops it regardless."""
    figures: dict[str, Any] = {}
    entry: dict[str, Any] = {"status": "running", "figures": figures}
    report.data["sections"][name] = entry
    left = report.remaining()
    limit = left if limit_s is None else min(limit_s, left)
    start = time.monotonic()
    print(f"[gpu_check] {name}: limit {limit:.0f} s", flush=True)
    try:
        if limit <= 0:
            raise Skip(f"over budget: {left:.0f} s of the {report.budget_s:.0f} s budget left")
        with alarm(limit + grace_s):  # the section's own checks stop it first; the alarm is a backstop
            if name in inject:
                raise RuntimeError(f"error injected into {name} (--inject-error)")
            fn(figures, limit)
        entry["status"] = "partial" if figures.get("partial") else "ok"
    except Skip as exc:
        entry.update(status="skipped", reason=str(exc))
    except SectionTimeout as exc:
        entry.update(status="timeout", reason=str(exc))
    except Exception as exc:
        entry.update(status="error", reason=f"{type(exc).__name__}: {exc}",
                     traceback=traceback.format_exc()[-3000:])
    entry["seconds"] = round(time.monotonic() - start, 1)
    print(f"[gpu_check] {name}: {entry['status']} in {entry['seconds']} s"
          + (f" — {entry['reason']}" if entry.get("reason") else ""), flush=True)
    report.write()


# ------------------------------------------------------------------------------------ environment
def section_environment(args, figures: dict, limit_s: float) -> None:
    figures.update(python=platform.python_version(), torch=torch.__version__, platform=platform.platform(),
                   cpus=os.cpu_count(), cuda_available=torch.cuda.is_available(), torch_cuda=torch.version.cuda)
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        figures.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                       capability=f"{props.major}.{props.minor}", gpus=torch.cuda.device_count())
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=20)
            figures["driver"] = smi.stdout.strip()
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             timeout=10)
        figures["recon_commit"] = git.stdout.strip()
    figures["nvdiffrast"] = nvdiffrast_version()


def nvdiffrast_version() -> str | None:
    try:
        importlib.invalidate_caches()
        nv = importlib.import_module("nvdiffrast")
        importlib.import_module("nvdiffrast.torch")
    except ImportError:
        return None
    return str(getattr(nv, "__version__", "installed"))


# ---------------------------------------------------------------------------------------- install
def cuda_extra() -> list[str]:
    """The ``cuda`` extra's requirements, as pyproject.toml lists them."""
    text = (ROOT / "pyproject.toml").read_text()
    try:
        import tomllib

        return list(tomllib.loads(text)["project"]["optional-dependencies"]["cuda"])
    except ModuleNotFoundError:  # Python 3.10
        m = re.search(r"^cuda\s*=\s*\[(.*?)\]", text, re.M | re.S)
        return re.findall(r'"([^"]+)"', m.group(1)) if m else []


def section_install(args, figures: dict, limit_s: float) -> None:
    specs = cuda_extra()
    figures["requirements"] = specs
    if args.dry_run:
        raise Skip("--dry-run: nothing is installed")
    if not torch.cuda.is_available():
        raise Skip("no CUDA device: the cuda extra is of no use here")
    found = nvdiffrast_version()
    if found:
        figures["nvdiffrast"] = found
        raise Skip(f"nvdiffrast {found} is already installed")
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as pins:
        pins.write(f"torch=={torch.__version__}\n")  # keep the installed (CUDA) torch
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--retries", "0", "--timeout", "15",
           "-c", pins.name, *specs]
    if args.find_links:
        cmd += ["--no-index", "--find-links", str(args.find_links)]
    figures["command"] = " ".join(cmd[1:])
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=max(5.0, limit_s - 5))
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"pip did not finish within {limit_s:.0f} s") from exc
    finally:
        os.unlink(pins.name)
    figures["pip_exit"] = proc.returncode
    figures["pip_tail"] = (proc.stdout + proc.stderr)[-1500:]
    if proc.returncode != 0:
        last = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or [""]
        raise RuntimeError(f"pip exited {proc.returncode}: {last[0]}")
    figures["nvdiffrast"] = nvdiffrast_version()
    if not figures["nvdiffrast"]:
        raise RuntimeError("pip succeeded but nvdiffrast.torch does not import")


# ----------------------------------------------------------------------------------------- raster
def _rotation(angles: tuple[float, float, float]) -> torch.Tensor:
    """Rotation matrix from Euler angles (x, y, z), radians."""
    ax, ay, az = (torch.tensor(a, dtype=torch.float64) for a in angles)
    rx = torch.tensor([[1, 0, 0], [0, ax.cos(), -ax.sin()], [0, ax.sin(), ax.cos()]], dtype=torch.float64)
    ry = torch.tensor([[ay.cos(), 0, ay.sin()], [0, 1, 0], [-ay.sin(), 0, ay.cos()]], dtype=torch.float64)
    rz = torch.tensor([[az.cos(), -az.sin(), 0], [az.sin(), az.cos(), 0], [0, 0, 1]], dtype=torch.float64)
    return rz @ ry @ rx


def raster_scenes() -> list[dict]:
    """The rasteriser tests' scenes: (name, vertices, faces, colours, cameras, resolution)."""
    import numpy as np
    import trimesh

    from recon.render.cameras import camera_batch

    def colours(v: torch.Tensor) -> torch.Tensor:
        return (v - v.min(0).values) / (v.max(0).values - v.min(0).values).clamp_min(1e-9)

    scenes = []
    # tests/render/test_render_backends.py: a sphere and a box, 4 views, 128².
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.45)
    box = trimesh.creation.box(extents=(0.5, 0.4, 0.3))
    box.apply_translation((0.35, -0.2, 0.25))
    v = torch.tensor(np.concatenate([sphere.vertices, box.vertices]), dtype=torch.float32)
    f = torch.tensor(np.concatenate([sphere.faces, box.faces + len(sphere.vertices)]))
    scenes.append({"name": "sphere + box (test_render_backends)", "verts": v, "faces": f, "colors": colours(v),
                   "cams": camera_batch([0, 30, -15, 60], [0, 70, 200, 310], 3.0, 30, 128), "res": (128, 128)})
    # tests/render/test_raster_cpu.py: a rotated box, non-square 72 x 96, 3 views.
    box = trimesh.creation.box(extents=(1.0, 0.6, 0.8))
    v = (torch.tensor(box.vertices, dtype=torch.float64) @ _rotation((0.3, 0.7, -0.2)).T).float()
    scenes.append({"name": "rotated box, 72x96 (test_raster_cpu)", "verts": v, "faces": torch.tensor(box.faces),
                   "colors": colours(v), "res": (72, 96),
                   "cams": camera_batch([0, 35, -20], [0, 50, 200], [3.0, 3.5, 2.8], [30, 25, 35], (72, 96))})
    # tests/render/test_raster_cpu.py: a floor running through the near plane (the homogeneous path).
    n = 9
    xs, zs = torch.linspace(-3, 3, n), torch.linspace(-4, 4, n)
    gx, gz = torch.meshgrid(xs, zs, indexing="ij")
    v = torch.stack([gx, torch.full_like(gx, -0.5), gz], -1).reshape(-1, 3)
    quads = [(i * n + j, (i + 1) * n + j, (i + 1) * n + j + 1, i * n + j + 1) for i in range(n - 1) for j in range(n - 1)]
    f = torch.tensor([t for k, (a, b, c, d) in enumerate(quads)
                      for t in ([(a, b, c), (a, c, d)] if k % 2 else [(a, b, d), (b, c, d)])])
    scenes.append({"name": "floor through the near plane, 32² (test_raster_cpu)", "verts": v, "faces": f,
                   "colors": colours(v), "cams": camera_batch(5, 10, 2.0, 70, 32), "res": (32, 32)})
    # tests/render/test_raster_cpu.py: an icosphere, 2 views, 48².
    ico = trimesh.creation.icosphere(subdivisions=3, radius=0.6)
    v = torch.tensor(ico.vertices, dtype=torch.float32)
    scenes.append({"name": "icosphere, 48² (test_raster_cpu)", "verts": v, "faces": torch.tensor(ico.faces),
                   "colors": colours(v), "cams": camera_batch([0, 40], [0, 130], 3.0, 30, 48), "res": (48, 48)})
    return scenes


def _render(backend, device: str, scene: dict) -> tuple:
    from recon.render.cameras import to_clip

    v = scene["verts"].to(device).requires_grad_(True)
    clip = to_clip(v, scene["cams"].mvp.to(device))
    f = scene["faces"].to(device).int()
    rast, _ = backend.rasterize(clip, f, scene["res"])
    col, _ = backend.interpolate(scene["colors"].to(device), rast, f)
    aa = backend.antialias(col, rast, clip, f)
    (aa * torch.linspace(0, 1, 3, device=device)).sum().backward()
    return rast.detach().cpu(), col.detach().cpu(), aa.detach().cpu(), v.grad.detach().cpu()


def compare_renders(a: tuple, b: tuple) -> dict:
    """The agreement figures of tests/render/test_render_backends.py between two backends' outputs."""
    ra, ca, aa, ga = a
    rb, cb, ab, gb = b
    ma, mb = ra[..., 3] > 0, rb[..., 3] > 0
    union = (ma | mb).sum()
    iou = float((ma & mb).sum() / union) if union else 1.0
    same = (ra[..., 3] == rb[..., 3]) & ma
    col_err = float((ca - cb)[same].abs().max()) if same.any() else 0.0
    aa_close = float(((aa - ab).abs().amax(-1) <= 2 / 255).double().mean())
    cos = float(torch.nn.functional.cosine_similarity(ga.reshape(1, -1).double(), gb.reshape(1, -1).double()))
    ok = iou > 0.99 and col_err <= 2 / 255 and aa_close > 0.99 and cos > 0.9
    return {"mask_iou": iou, "colour_max_err_255": col_err * 255, "aa_within_2_255": aa_close,
            "grad_cosine": cos, "pass": ok}


def section_raster(args, figures: dict, limit_s: float) -> None:
    from recon.render.cpu import CpuRasterizer
    from recon.render.select import nvdiffrast_available

    cpu = CpuRasterizer()
    if torch.cuda.is_available() and nvdiffrast_available():
        from recon.render.select import select_backend

        t0 = time.perf_counter()
        other, device, label = select_backend("cuda"), "cuda", "nvdiffrast (CUDA)"
        figures["backend_init_s"] = time.perf_counter() - t0  # includes the plugin's JIT build, once
        figures["compared"] = "CPU rasteriser vs nvdiffrast"
    else:
        other, device, label = CpuRasterizer(), "cpu", "CPU rasteriser (again)"
        why = "no CUDA device" if not torch.cuda.is_available() else "nvdiffrast is not installed"
        figures["compared"] = (f"CPU rasteriser vs itself ({why}): this checks the comparison code, not "
                               "nvdiffrast")
    figures["other_backend"] = label
    scenes = []
    for scene in raster_scenes():
        t0 = time.perf_counter()
        ref = _render(cpu, "cpu", scene)
        t_cpu = time.perf_counter() - t0
        t0 = time.perf_counter()
        got = _render(other, device, scene)  # the first nvdiffrast call JIT-builds its plugin
        if device == "cuda":
            torch.cuda.synchronize()
        t_other = time.perf_counter() - t0
        scenes.append({"scene": scene["name"], "views": int(scene["cams"].mvp.shape[0]),
                       "resolution": list(scene["res"]), **compare_renders(ref, got),
                       "cpu_s": t_cpu, "other_s": t_other})
        figures["scenes"] = scenes
    figures["all_pass"] = all(s["pass"] for s in scenes)
    if not figures["all_pass"]:
        raise RuntimeError("the backends disagree on " + ", ".join(s["scene"] for s in scenes if not s["pass"]))


# ----------------------------------------------------------------------------------------- models
def section_models(args, figures: dict, limit_s: float) -> None:
    from recon.priors.random_models import folder_parameters, published_parameters, write_model
    from recon.priors.verify_folder import verify_folder
    from recon.priors.weight_files import WeightsError

    size = "tiny" if args.dry_run else "full"
    folder = args.models_dir / ("zero123-xl" if size == "full" else "zero123-xl-tiny")
    t0 = time.perf_counter()
    reused = False
    if folder.is_dir():
        try:
            verify_folder(folder)
            reused = True
        except WeightsError:
            shutil.rmtree(folder)
    if not reused:
        device = "cuda" if torch.cuda.is_available() and not args.dry_run else "cpu"
        write_model("zero123-xl", folder, size, device=device)
        verify_folder(folder)
    found, published = folder_parameters(folder), published_parameters("zero123-xl", size)
    figures.update(folder=str(folder), size=size, reused=reused, write_s=time.perf_counter() - t0,
                   parameters=found, published=published, match=found == published,
                   gigabytes=sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e9)
    if found != published:
        raise RuntimeError(f"parameter counts {found} differ from the published configs' {published}")
    args.zero123_folder = folder


# ------------------------------------------------------------------------------------- throughput
VARIANTS = {  # name -> (channels_last, sdpa, compile)
    "base": (False, True, False), "channels_last": (True, True, False), "no_sdpa": (False, False, False),
    "compile": (False, True, True),
}


def throughput_groups() -> list[tuple[str, str, str]]:
    """(variant, dtype, model) in priority order: the dtypes first, then each knob at fp16, bf16, fp32."""
    groups = []
    for variant, dtypes in (("base", ("float16", "bfloat16", "float32")), ("channels_last", ("float16",)),
                            ("no_sdpa", ("float16",)), ("compile", ("float16",)), ("channels_last", ("bfloat16",)),
                            ("compile", ("bfloat16",)), ("no_sdpa", ("bfloat16",)), ("channels_last", ("float32",)),
                            ("no_sdpa", ("float32",)), ("compile", ("float32",))):
        for dtype in dtypes:
            for model in ("zero123", "sd21"):
                groups.append((variant, dtype, model))
    return groups


def section_throughput(args, figures: dict, limit_s: float) -> None:
    from prior_throughput import measure

    deadline = time.monotonic() + limit_s
    gpu = torch.cuda.is_available() and not args.dry_run
    rows, skipped = [], []
    figures.update(rows=rows, skipped=skipped, batches=[1, 4, 8, 16], latent="real (Zero-1-to-3 32², SD 64²)"
                   if gpu else "tiny networks, 8² latents", compile_backend="eager" if args.dry_run else "inductor")
    # Seconds a group is expected to take: a first guess, then 1.2 x the last group of its kind.
    need = {"compile": 90.0, "eager": 12.0} if gpu else {"compile": 10.0, "eager": 2.0}
    for variant, dtype, model in throughput_groups():
        kind = "compile" if variant == "compile" else "eager"
        left = deadline - time.monotonic()
        if left < need[kind]:
            skipped.append({"variant": variant, "dtype": dtype, "model": model,
                            "reason": f"over the section's budget ({left:.0f} s left, ~{need[kind]:.0f} s needed)"})
            continue
        started = time.monotonic()
        cl, sdpa, comp = VARIANTS[variant]
        ns = argparse.Namespace(device="cuda" if gpu else "cpu", channels_last=cl, no_sdpa=not sdpa, compile=comp,
                                compile_backend="inductor" if gpu else "eager", latent=0,
                                size="full" if gpu else "tiny", batches=[1, 4, 8, 16],
                                warmup=2 if gpu else 1, repeats=5 if gpu else 1)
        try:
            if comp:
                torch._dynamo.reset()
            for r in measure(model, dtype, ns):
                rows.append({**r, "variant": variant})
        except Exception as exc:
            skipped.append({"variant": variant, "dtype": dtype, "model": model,
                            "reason": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"})
        finally:
            if gpu:
                torch.cuda.empty_cache()
            need[kind] = max(need[kind], 1.2 * (time.monotonic() - started))
    figures["partial"] = bool(skipped)


# --------------------------------------------------------------------------------------- pipeline
class DeadlineStop:
    """A :class:`recon.pipeline.interrupt.StopRequest` that asks to stop once ``deadline`` has passed."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    @property
    def requested(self) -> bool:
        return time.monotonic() >= self.deadline

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt


class StepClock:
    """The progress callback: a timestamp at every step of every label."""

    def __init__(self) -> None:
        self.stamps: dict[str, list[float]] = {}

    def __call__(self, label: str, done: int, total: int) -> None:
        self.stamps.setdefault(label, []).append(time.monotonic())

    def deltas(self, label: str) -> list[float]:
        s = self.stamps.get(label, [])
        return [b - a for a, b in itertools.pairwise(s)]


def _gpu_peak_gib(reset: bool = False) -> float | None:
    if not torch.cuda.is_available():
        return None
    peak = torch.cuda.max_memory_allocated() / 2**30
    if reset:
        torch.cuda.reset_peak_memory_stats()
    return round(peak, 2)


def _stage_figures(label: str, clock: StepClock, seconds: float, steps_run: int, planned: int,
                   calls: int, evals: int) -> dict:
    later = clock.deltas(label)
    per_step = statistics.median(later) if later else None
    first = seconds - sum(later)
    fig = {"steps_run": steps_run, "steps_planned": planned, "seconds": seconds, "first_step_s": first,
           "s_per_step": per_step, "rows_per_step": evals / max(1, steps_run),
           "calls_per_step": calls / max(1, steps_run)}
    if steps_run < planned:
        fig["projected_full_s"] = first + (per_step or first) * (planned - 1)
    return fig


def section_pipeline(args, figures: dict, limit_s: float) -> None:
    from recon.pipeline.image_to_3d import ImageTo3D
    from recon.pipeline.recipes import image_config

    folder = getattr(args, "zero123_folder", None)
    if folder is None:
        raise Skip("no Zero-1-to-3 folder (the models section did not finish)")
    deadline = time.monotonic() + limit_s
    gpu = torch.cuda.is_available() and not args.dry_run
    k = 4 if gpu else 2
    overrides = [] if gpu else list(DRY_PIPELINE)
    config = image_config(ROOT / "configs" / "image-to-3d.yaml", overrides, str(folder), hypotheses=k,
                          device="cuda" if gpu else "cpu")
    figures.update(recipe="configs/image-to-3d.yaml" + (" (full schedule)" if gpu else " cut to tiny sizes"),
                   overrides=overrides, hypotheses=k, device=config.device, prior=str(folder),
                   stage1_resolutions=config.stage1.resolutions, stage1_batch_sizes=config.stage1.batch_sizes,
                   stage2_resolution=config.stage2.resolution, tet_resolution=config.stage2.tet_resolution)
    out = args.out / "pipeline-run"
    shutil.rmtree(out, ignore_errors=True)
    clock = StepClock()
    run = ImageTo3D(IMAGE, config, out, clock)
    stages: dict[str, Any] = {}
    figures["stages"] = stages
    t0 = time.monotonic()
    _gpu_peak_gib(reset=True)
    run.prepare()
    run.check_folder()
    stages["load"] = {"seconds": time.monotonic() - t0, "peak_gpu_gib": _gpu_peak_gib(reset=True)}
    prior = run.prior

    def timed(name: str, label: str, planned: int, share: float, call: Callable[[Any], Any],
              shorten: Callable[[int], None], steps_now: Callable[[], int]):
        """Run a stage until done or until its share of the time left; then finish at the step reached."""
        stop = DeadlineStop(time.monotonic() + share * (deadline - time.monotonic()))
        c0, e0 = prior.counter.snapshot()
        t = time.monotonic()
        try:
            result = call(stop)
            truncated = False
        except KeyboardInterrupt:  # stopped at a step boundary, after a checkpoint
            truncated = True
        seconds = time.monotonic() - t
        c1, e1 = prior.counter.snapshot()
        reached = steps_now() if truncated else planned
        stages[name] = _stage_figures(label, clock, seconds, reached, planned, c1 - c0, e1 - e0)
        stages[name]["peak_gpu_gib"] = _gpu_peak_gib(reset=True)
        if truncated:
            figures["partial"] = True
            shorten(reached)
            t = time.monotonic()
            result = call(DeadlineStop(float("inf")))  # resumes from the checkpoint with steps = reached
            stages[name]["resume_s"] = time.monotonic() - t
        return result

    def shorten1(n: int) -> None:
        run.config = dataclasses.replace(run.config, stage1=dataclasses.replace(run.config.stage1, steps=max(1, n)))

    def shorten2(n: int) -> None:
        run.config = dataclasses.replace(run.config, stage2=dataclasses.replace(run.config.stage2, steps=max(1, n)))

    def steps_of(label: str) -> Callable[[], int]:
        return lambda: len(clock.stamps.get(label, []))

    stage1 = timed("stage1", "stage 1 NeRF", config.stage1.steps, 0.5, run.stage1, shorten1,
                   steps_of("stage 1 NeRF"))
    stage2 = timed("stage2", "stage 2 DMTet", config.stage2.steps, 0.6, lambda stop: run.stage2(stage1, stop),
                   shorten2, steps_of("stage 2 DMTet"))
    meshes = getattr(stage2, "meshes", stage2)  # StagedRun.stage2 returns its meshes with its guidance.meshes
    # Export one hypothesis at a time (xatlas and the texture bake are CPU-bound): the first always, the
    # others while the time left allows another of the same duration.
    kept, results, each = list(run.kept), [], []
    for k, mesh in zip(kept, meshes):
        if each and time.monotonic() + max(each) > deadline:
            break
        run.kept = [k]
        t = time.monotonic()
        results += run.export([mesh])
        each.append(time.monotonic() - t)
    run.kept = kept[:len(results)]
    stages["export"] = {"seconds": sum(each), "hypotheses": len(results), "per_hypothesis_s": each}
    if len(results) < len(kept):
        figures["partial"] = True
        stages["export"]["projected_full_s"] = sum(each) / len(each) * len(kept)
        stages["export"]["skipped"] = f"{len(kept) - len(results)} hypotheses not exported: over the time limit"
    t = time.monotonic()
    run.report(results)
    stages["report"] = {"seconds": time.monotonic() - t, "hypotheses": len(results),
                        "peak_gpu_gib": _gpu_peak_gib(reset=True)}
    figures["wall_s"] = sum(s.get("seconds", 0) + s.get("resume_s", 0) for s in stages.values())
    figures["meshes"] = sorted(str(p.relative_to(out)) for p in (out / "meshes").glob("*"))
    projected = sum(s.get("projected_full_s", s["seconds"]) for s in stages.values())
    figures["full_schedule_s"] = projected
    figures["full_schedule_measured"] = not figures.get("partial")


# --------------------------------------------------------------------------------------- markdown
def _f(value: Any, fmt: str = ".2f", none: str = "—") -> str:
    return none if value is None else format(value, fmt)


def speedups(rows: list[dict]) -> list[str]:
    """Predictions/s of each (dtype, variant) over fp32 base, per model, at the largest common batch."""
    index = {(r["model"], r["dtype"], r["variant"], r["batch"]): r["predictions_per_s"] for r in rows}
    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        batches = sorted({b for (m, d, v, b) in index if m == model and d == "float32" and v == "base"})
        if not batches:
            continue
        b = batches[-1]
        ref = index[(model, "float32", "base", b)]
        parts = [f"{d} {v} {index[(model, d, v, b)] / ref:.2f}x" for (m, d, v, bb) in index
                 if m == model and bb == b and (d, v) != ("float32", "base")]
        out.append(f"{model}, batch {b}: " + (", ".join(parts) or "nothing else measured"))
    return out


def markdown(data: dict) -> str:
    sec = data["sections"]
    env = sec.get("environment", {}).get("figures", {})
    mode = ("DRY RUN (tiny networks, CPU): checks this script, not a GPU measurement" if data["dry_run"]
            else f"GPU: {env.get('gpu', 'no CUDA device')}")
    lines = [f"# recon GPU check — {data['started']}", "", f"- mode: {mode}",
             f"- torch {env.get('torch')}, CUDA {env.get('torch_cuda')}, driver {env.get('driver', '—')}, "
             f"recon {env.get('recon_commit', '?')}, nvdiffrast {env.get('nvdiffrast') or 'not installed'}",
             f"- budget {data['budget_s']:.0f} s, elapsed {data.get('elapsed_s', 0):.0f} s", "",
             "| section | status | seconds | note |", "|---|---|---:|---|"]
    for name in SECTIONS:
        s = sec.get(name)
        if s:
            lines.append(f"| {name} | {s['status']} | {s.get('seconds', 0)} | {s.get('reason', '')} |")
    r = sec.get("raster", {}).get("figures", {})
    if r.get("scenes"):
        lines += ["", f"## Rasteriser agreement: {r.get('compared')}", "",
                  "| scene | views | mask IoU | colour max err (/255) | AA within 2/255 | gradient cosine | pass | "
                  "CPU s | other s |", "|---|---:|---:|---:|---:|---:|---|---:|---:|"]
        for s in r["scenes"]:
            lines.append(f"| {s['scene']} | {s['views']} | {s['mask_iou']:.5f} | {s['colour_max_err_255']:.3f} | "
                         f"{s['aa_within_2_255']:.4f} | {s['grad_cosine']:.4f} | {'yes' if s['pass'] else 'NO'} | "
                         f"{s['cpu_s']:.2f} | {s['other_s']:.2f} |")
    m = sec.get("models", {}).get("figures", {})
    if m.get("parameters"):
        lines += ["", f"## Models: {m['size']} Zero-1-to-3 XL, {m.get('gigabytes', 0):.2f} GB, "
                  f"parameters = published: {m.get('match')}", "", f"`{m['parameters']}`"]
    t = sec.get("throughput", {}).get("figures", {})
    if t.get("rows"):
        lines += ["", f"## Prior throughput ({t.get('latent')}; predictions = CFG-guided samples)", "",
                  "| model | dtype | variant | batch | ms / call | predictions / s | rows / call | peak GiB |",
                  "|---|---|---|---:|---:|---:|---:|---:|"]
        for row in t["rows"]:
            lines.append(f"| {row['model']} | {row['dtype']} | {row['variant']} | {row['batch']} | "
                         f"{row['ms_per_call']:.1f} | {row['predictions_per_s']:.2f} | {row['rows_per_call']:.0f} | "
                         f"{_f(row.get('peak_gib'))} |")
        for s in t.get("skipped", []):
            lines.append(f"| {s['model']} | {s['dtype']} | {s['variant']} | — | skipped: {s['reason']} | | | |")
        lines += ["", "Speed-up over fp32 (SDPA on, eager) at the largest batch measured:", ""]
        lines += [f"- {line}" for line in speedups(t["rows"])]
    p = sec.get("pipeline", {}).get("figures", {})
    if p.get("stages"):
        lines += ["", f"## Image-to-3D: {p.get('recipe')}, K = {p.get('hypotheses')}, device {p.get('device')}", "",
                  "| stage | steps run / planned | s / step | first step s | rows / step | peak GPU GiB | wall s | "
                  "full schedule s |", "|---|---|---:|---:|---:|---:|---:|---:|"]
        for name, s in p["stages"].items():
            steps = f"{s['steps_run']} / {s['steps_planned']}" if "steps_run" in s else ""
            full = s.get("projected_full_s")
            lines.append(f"| {name} | {steps} | {_f(s.get('s_per_step'), '.3f')} | {_f(s.get('first_step_s'), '.1f')} | "
                         f"{_f(s.get('rows_per_step'), '.0f')} | {_f(s.get('peak_gpu_gib'))} | {s['seconds']:.1f} | "
                         + (f"{full:.0f} (projected)" if full is not None else f"{s['seconds']:.1f}") + " |")
        if "full_schedule_s" in p:
            kind = "measured" if p.get("full_schedule_measured") else "projected from the steps run"
            lines += ["", f"Full schedule, K = {p.get('hypotheses')}: {p['full_schedule_s']:.0f} s ({kind})."]
            if not p.get("full_schedule_measured"):
                lines.append("A projection repeats the median step of the steps run; stage 1's later phases "
                             f"(renders {p.get('stage1_resolutions')}, views {p.get('stage1_batch_sizes')} per "
                             "hypothesis) cost differently, so it is an estimate, not a measurement.")
    failed = [(n, s) for n, s in sec.items() if s.get("traceback")]
    for name, s in failed:
        lines += ["", f"## {name}: traceback", "", "```", s["traceback"].strip(), "```"]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for report.json and report.md")
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU, nothing installed")
    parser.add_argument("--budget-s", type=float, default=None, help="whole-run limit (default 480; dry run 300)")
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated subset, in order")
    parser.add_argument("--find-links", type=Path, default=None, help="install the cuda extra from these wheels")
    parser.add_argument("--models-dir", type=Path, default=None,
                        help="where the random-weight models go (default OUT/models, removed after unless --keep)")
    parser.add_argument("--keep", action="store_true", help="keep the models and the pipeline run folder")
    parser.add_argument("--pipeline-limit-s", type=float, default=None,
                        help="the pipeline section's limit (default: what the budget leaves); a small value "
                             "stops each stage after its first step and projects the full schedule")
    parser.add_argument("--inject-error", default="", help="comma-separated sections to fail on purpose (tests)")
    args = parser.parse_args(argv)
    args.budget_s = args.budget_s or (300.0 if args.dry_run else 480.0)
    args.models_dir = args.models_dir or args.out / "models"
    chosen = [s for s in args.sections.split(",") if s]
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section {unknown[0]!r}; choose from {', '.join(SECTIONS)}")
    inject = {s for s in args.inject_error.split(",") if s}
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.set_verbosity_error()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    if args.dry_run:
        torch.set_num_threads(1)  # tiny networks gain nothing from threads; on a busy CPU they spin-wait
    if not args.dry_run and not torch.cuda.is_available():
        print("[gpu_check] no CUDA device: the sections that need one are skipped (use --dry-run on a CPU)")
    report = Report(args.out, args.dry_run, args.budget_s)
    budgets = DRY_BUDGETS if args.dry_run else BUDGETS
    functions = {"environment": section_environment, "install": section_install, "raster": section_raster,
                 "models": section_models, "throughput": section_throughput, "pipeline": section_pipeline}
    try:
        for name in chosen:
            limit = budgets.get(name)
            if name == "pipeline":
                limit = args.pipeline_limit_s or report.remaining() - RESERVE_S
            # A stage or an export under way finishes after the pipeline's limit; a busy CPU is slow.
            grace = 120.0 if args.dry_run else (30.0 if name == "pipeline" else 15.0)
            run_section(report, name, lambda fig, lim, fn=functions[name]: fn(args, fig, lim), limit, inject, grace)
    finally:
        report.write()
        if not args.keep:
            shutil.rmtree(args.out / "pipeline-run", ignore_errors=True)
            if args.models_dir == args.out / "models":
                shutil.rmtree(args.models_dir, ignore_errors=True)
    print(f"[gpu_check] reports: {args.out / 'report.json'}, {args.out / 'report.md'}")
    bad = [n for n, s in report.data["sections"].items() if s["status"] in ("error", "timeout")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
