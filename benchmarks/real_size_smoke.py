"""Real-size smoke on the CPU: the full-size priors, random weights, through the whole pipeline.

For each prior it writes a random-weight folder at the published architecture sizes in the published
layout (``recon.priors.random_models``; nothing downloaded — random weights cost what the real ones
cost), checks that the folder holds the parameter count the published configs imply, then runs the
real command on it in a fresh process:

    recon run PHOTO --prior FOLDER --config configs/image-to-3d.yaml          (zero123-xl, stable-zero123)
    recon text PROMPT --prior FOLDER --config configs/text-to-3d-{sd,mvdream}.yaml   (sd-2.1-base, mvdream)

with the recipe's real resolutions and only the step counts cut (``--set stage1.steps=N --set
stage2.steps=M``), and prints per prior: seconds per step of each stage, prior rows (network
evaluations) per step, export and report seconds, the process's peak RSS, and whether every output
the run lists (``run.json``: meshes of each hypothesis, turntables, contact sheet, index.html and the
files it links) is on disk.

The command runs through recon's own CLI entry point in a child process whose only change is that the
progress callback also records a timestamp after every step, so a stage's first step (which carries the
stage's one-off setup: field init, DMTet grid and level search) is told apart from the steps after it.

    python benchmarks/real_size_smoke.py                                  # all four priors, 1 + 2 steps, K = 1
    python benchmarks/real_size_smoke.py --priors zero123-xl --steps 1 1  # one prior, one step per stage
    python benchmarks/real_size_smoke.py --models ~/.cache/recon-real-size --keep   # reuse the folders

With few steps stage 1 stays in the recipe's first resolution phase (image-to-3D: 64² renders, 12 views
per hypothesis; text: 128² SD / 64² MVDream renders), which the prior sees at its own input size (256²
or 512²). K defaults to 1 on the CPU: the VAE encoder's backward pass at 256² holds ~0.8 GB of
activations per view, so K = 4 × 12 views does not fit in 24 GB.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRIORS = ("zero123-xl", "stable-zero123", "sd-2.1-base", "mvdream")
COMMANDS = {  # prior -> (recon command, recipe)
    "zero123-xl": ("run", "configs/image-to-3d.yaml"),
    "stable-zero123": ("run", "configs/image-to-3d.yaml"),
    "sd-2.1-base": ("text", "configs/text-to-3d-sd.yaml"),
    "sd-1.5": ("text", "configs/text-to-3d-sd.yaml"),
    "mvdream": ("text", "configs/text-to-3d-mvdream.yaml"),
}
IMAGE = ROOT / "data" / "examples" / "crate.png"
PROMPT = "a wooden crate"


def ensure_folder(name: str, models: Path, size: str = "full") -> tuple[Path, float]:
    """The random-weight folder of ``name`` under ``models`` (written unless a verified one is there)."""
    from recon.priors.random_models import write_model
    from recon.priors.verify_folder import verify_folder
    from recon.priors.weight_files import WeightsError

    folder = models / (name if size == "full" else f"{name}-{size}")  # "stable-…" runs as Stable Zero123
    if folder.is_dir():
        try:
            verify_folder(folder)
            return folder, 0.0
        except WeightsError:
            shutil.rmtree(folder)
    start = time.perf_counter()
    write_model(name, folder, size)
    verify_folder(folder)
    return folder, time.perf_counter() - start


def check_parameters(name: str, folder: Path, size: str = "full") -> dict:
    """Parameter counts per component: the folder's (safetensors headers) against the published configs'
    (diffusers' / transformers' classes on the meta device)."""
    from recon.priors.random_models import folder_parameters, published_parameters

    found, published = folder_parameters(folder), published_parameters(name, size)
    return {"found": found, "published": published, "match": found == published}


def command_line(name: str, folder: Path, out: Path, steps: tuple[int, int], hypotheses: int, device: str,
                 image: Path, prompt: str, extra: list[str]) -> list[str]:
    """The ``recon`` arguments of the smoke run (after ``recon``)."""
    command, recipe = COMMANDS[name]
    subject = str(image) if command == "run" else prompt
    args = [command, subject, "--prior", str(folder.resolve()),
            "--config", str(ROOT / recipe), "--hypotheses", str(hypotheses), "--device", device,
            "--set", f"stage1.steps={steps[0]}", "--set", f"stage2.steps={steps[1]}",
            "--out", str(out), "--json", "--quiet"]
    for item in extra:
        args += ["--set", item]
    return args


def child(times_file: str, recon_args: list[str]) -> None:
    """``recon RECON_ARGS`` through recon's CLI entry point, recording (label, done, total, time) at every
    progress call into ``times_file`` (JSON)."""
    import contextlib

    import recon.cli.common as common

    times: list[tuple[str, int, int, float]] = []

    @contextlib.contextmanager
    def recording(quiet: bool = False):
        yield lambda label, done, total: times.append((label, done, total, time.perf_counter()))

    common.progress_bars = recording  # run_and_report looks it up at call time
    from recon.cli import main as recon_main

    try:
        recon_main(recon_args, prog_name="recon")
    finally:
        Path(times_file).write_text(json.dumps(times))


def step_times(times: list, label: str) -> list[float]:
    """Seconds between consecutive progress calls of ``label`` (step 2 onwards)."""
    stamps = [t for lab, _, _, t in times if lab == label]
    return [b - a for a, b in itertools.pairwise(stamps)]


def run_measured(args: list[str], env: dict[str, str]) -> tuple[int, float, float, str, float]:
    """(exit status, wall seconds, peak RSS of the process in GB, its stderr tail, its CPU seconds)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(args, stdout=out, stderr=err, env=env, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        err.seek(0)
        tail = err.read().decode(errors="replace")[-2000:]
    return proc.returncode, wall, usage.ru_maxrss * 1024 / 1e9, tail, usage.ru_utime + usage.ru_stime


def missing_outputs(out: Path, record: dict) -> list[str]:
    """Outputs the run should have written and did not: every mesh file run.json lists, each hypothesis's
    turntable, the contact sheet, index.html (and every file it links), run.json and, for photos, input.png."""
    missing = []
    expected = ["run.json", "contact_sheet.png", "index.html"]
    if record.get("command", "").endswith("run"):
        expected.append("input.png")
    hyps = record.get("outputs", {}).get("hypotheses", [])
    if not hyps:
        missing.append("meshes of any hypothesis")
    for h in hyps:
        expected += [*h["meshes"].values(), f"turntable_{h['index']}.gif"]
        stem = Path(h["meshes"].get("obj", f"meshes/hypothesis_{h['index']}.obj"))
        expected += [str(stem.with_suffix(".mtl")), str(stem.with_suffix(".png"))]
    html = (out / "index.html").read_text() if (out / "index.html").is_file() else ""
    expected += re.findall(r'(?:src|href)="([^"#:]+)"', html)
    for rel in dict.fromkeys(expected):
        if not (out / rel).is_file():
            missing.append(rel)
    for e in record.get("outputs", {}).get("empty_hypotheses", []):
        missing.append(f"hypothesis {e['index']} (no surface: {e['reason']})")
    return missing


def smoke_one(name: str, models: Path, out_root: Path, args) -> dict:
    folder, write_s = ensure_folder(name, models, args.size)
    row: dict = {"prior": name, "command": COMMANDS[name][0], "recipe": COMMANDS[name][1], "folder": str(folder),
                 "write_s": write_s, "hypotheses": args.hypotheses, "steps": list(args.steps)}
    row["parameters"] = check_parameters(name, folder, args.size)
    out = out_root / name
    cmd = command_line(name, folder, out, tuple(args.steps), args.hypotheses, args.device, Path(args.image),
                       args.prompt, args.set)
    row["argv"] = "recon " + " ".join(cmd)
    times_file = out_root / f"{name}.times.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    load = os.getloadavg()[0]
    status, wall, peak_gb, err, cpu_s = run_measured([sys.executable, __file__, "--child", str(times_file), *cmd], env)
    times = json.loads(times_file.read_text()) if times_file.is_file() else []
    # Wall time on a shared machine depends on the other jobs: the load average and the CPU seconds say how much.
    row.update(exit=status, wall_s=wall, cpu_s=cpu_s, peak_rss_gb=peak_gb, load_before=load, load_after=os.getloadavg()[0])
    if status != 0:
        row["error"] = err.strip().splitlines()[-1] if err.strip() else f"exit {status}"
        row["missing"] = ["(run failed)"]
        return row
    record = json.loads((out / "run.json").read_text())
    stages = {s["name"]: s for s in record["stages"]}
    steps = {"stage1_nerf": record["config"]["stage1"]["steps"], "stage2_dmtet": record["config"]["stage2"]["steps"]}
    for key, label, bar in (("stage1_nerf", "stage1", "stage 1 NeRF"), ("stage2_dmtet", "stage2", "stage 2 DMTet")):
        s, n = stages[key], max(1, steps[key])
        later = step_times(times, bar)
        first = s["seconds"] - sum(later)  # the first step and the stage's setup
        row[label] = {"steps": steps[key], "seconds": s["seconds"], "first_step_s": first,
                      "s_per_step": sum(later) / len(later) if later else None,
                      "rows_per_step": s["prior_evals"] / n, "calls_per_step": s["prior_calls"] / n}
    for key in ("export", "report"):
        row[f"{key}_s"] = stages[key]["seconds"]
    row["resolutions"] = {"stage1": record["config"]["stage1"]["resolutions"][0],
                          "stage1_views": record["config"]["stage1"]["batch_sizes"][0],
                          "stage2": record["config"]["stage2"]["resolution"]}
    row["missing"] = missing_outputs(out, record)
    row["outputs"] = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()
                            and "checkpoints" not in p.parts)
    return row


def table(rows: list[dict]) -> str:
    lines = ["| prior | command | K | stage 1: renders, s/step (first step incl. setup), rows/step | "
             "stage 2: s/step (first step incl. setup), rows/step | export s | report s | wall s (CPU s) | "
             "peak RSS GB | UNet params (= published) | outputs |",
             "|---|---|---:|---|---|---:|---:|---:|---:|---|---|"]

    def per_step(stage: dict) -> str:
        later = f"{stage['s_per_step']:.0f}" if stage["s_per_step"] is not None else "—"
        return f"{later} ({stage['first_step_s']:.0f}), {stage['rows_per_step']:.0f}"

    for r in rows:
        p = r["parameters"]
        params = f"{p['found'].get('unet', 0):,} ({'yes' if p['match'] else 'NO'})"
        if r.get("exit"):
            lines.append(f"| {r['prior']} | {r['command']} | {r['hypotheses']} | failed: {r.get('error', '')} | | | | "
                         f"{r['wall_s']:.0f} | {r['peak_rss_gb']:.1f} | {params} | — |")
            continue
        s1, s2, res = r["stage1"], r["stage2"], r["resolutions"]
        outputs = "all present" if not r["missing"] else "missing: " + ", ".join(r["missing"])
        lines.append(
            f"| {r['prior']} | {r['command']} | {r['hypotheses']} | {res['stage1']}² × {res['stage1_views']}, "
            f"{per_step(s1)} | {res['stage2']}², {per_step(s2)} | "
            f"{r['export_s']:.0f} | {r['report_s']:.0f} | {r['wall_s']:.0f} ({r.get('cpu_s', 0):.0f}) | "
            f"{r['peak_rss_gb']:.1f} | {params} | "
            f"{outputs} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--priors", default=",".join(PRIORS), help=f"comma-separated from {', '.join(COMMANDS)}")
    parser.add_argument("--steps", type=int, nargs=2, default=[1, 2], metavar=("STAGE1", "STAGE2"))
    parser.add_argument("--hypotheses", "-k", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--image", default=str(IMAGE))
    parser.add_argument("--prompt", default=PROMPT)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra --set for every run (keep the recipe's resolutions: this is a smoke)")
    parser.add_argument("--models", type=Path, default=None,
                        help="folder for the random-weight models (default: a temporary folder, removed after)")
    parser.add_argument("--out", type=Path, default=None, help="run folders (default: temporary, removed after)")
    parser.add_argument("--keep", action="store_true", help="keep the models and run folders")
    parser.add_argument("--size", choices=("full", "tiny"), default="full",
                        help="tiny: the tiny stand-ins, to check this script's plumbing in seconds")
    parser.add_argument("--threads", type=int, default=0, help="OMP threads of the runs (0 = torch's default)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    names = [n for n in args.priors.split(",") if n]
    unknown = [n for n in names if n not in COMMANDS]
    if unknown:
        parser.error(f"unknown prior {unknown[0]!r}; choose from {', '.join(COMMANDS)}")
    scratch = Path(tempfile.mkdtemp(prefix="recon-real-size-"))
    models = args.models or scratch / "models"
    out_root = args.out or scratch / "runs"
    models.mkdir(parents=True, exist_ok=True)
    out_root.mkdir(parents=True, exist_ok=True)
    import torch

    print(f"real-size smoke {datetime.now().astimezone().isoformat(timespec='seconds')}: {platform.node()}, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"load average {os.getloadavg()[0]:.1f}; K = {args.hypotheses}, steps {args.steps[0]} + {args.steps[1]}",
          flush=True)
    rows = []
    try:
        for name in names:
            print(f"  {name}: writing / checking the folder, then `recon {COMMANDS[name][0]}` ...", flush=True)
            rows.append(smoke_one(name, models, out_root, args))
            r = rows[-1]
            print(f"  {name}: exit {r['exit']}, {r['wall_s']:.0f} s, peak RSS {r['peak_rss_gb']:.1f} GB, "
                  f"parameters match: {r['parameters']['match']}, missing: {r['missing'] or 'none'}", flush=True)
            if not args.keep and args.models is None:
                shutil.rmtree(models / name, ignore_errors=True)
    finally:
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(rows, indent=2))
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    print()
    print(table(rows))
    ok = all(r["exit"] == 0 and not r["missing"] and r["parameters"]["match"] for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(main())
