"""The benchmark's report: a Markdown table, a JSON file and a matplotlib figure, from the runs' results.

Aggregation: a run (family, method, seed) scores K hypotheses against every member of its family.
Per method, each figure is first averaged over the runs of one seed (all families; for best-of-K
scores over all cases, i.e. members), then the mean ± sample standard deviation over seeds is shown,
so the spread is run-to-run (seed) variation, the unit a user gets when they press "run" again.
Per family, the same figures over that family's runs only. Coverage and the unassigned share come from
the assignment with the family's noise floor as margin (:mod:`recon.bench.assign`); the old
whole-surface nearest-member coverage is reported beside them, labelled as such.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import platform
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recon.config import to_dict
from recon.io.atomic import atomic_path, atomic_write_text

BENCH_SCHEMA = "recon.bench/2"  # /2: discriminative coverage with a noise-floor margin

# (key, column title, format, higher is better) of the summary table.
COLUMNS = [
    ("best_chamfer", "best-of-K CD ↓", "{:.4f}", False),
    ("best_fscore", "best-of-K F@τ ↑", "{:.3f}", True),
    ("coverage", "coverage ↑", "{:.2f}", True),
    ("coverage_frac", "coverage / members ↑", "{:.2f}", True),
    ("unassigned", "unassigned ↓", "{:.2f}", False),
    ("nearest_coverage", "nearest-member coverage (whole-surface, old)", "{:.2f}", True),
    ("fidelity", "fidelity CD ↓", "{:.4f}", False),
    ("diversity", "diversity CD ↑", "{:.4f}", True),
    ("input_psnr", "input PSNR ↑", "{:.2f}", True),
    ("input_iou", "input IoU ↑", "{:.3f}", True),
    ("seconds", "s / run", "{:.0f}", False),
    ("peak_rss_mib", "peak RSS MiB", "{:.0f}", False),
    ("prior_evals", "prior evals / run", "{:.0f}", False),
]


def run_scores(r: dict[str, Any]) -> dict[str, float]:
    """One run's figures (means over its cases and hypotheses)."""
    cases = list(r["cases"].values())
    return {
        "best_chamfer": float(np.mean([c["best_chamfer"] for c in cases])),
        "best_fscore": float(np.mean([c["best_fscore"] for c in cases])),
        "coverage": float(r["coverage"]),
        "coverage_frac": r["coverage"] / len(r["members"]),
        "unassigned": float(r["unassigned"]),
        "nearest_coverage": float(r["nearest_coverage"]),
        "fidelity": float(r["fidelity"]),
        "diversity": float(r["diversity"]),
        "input_psnr": float(np.mean([h["input_psnr"] for h in r["hypotheses"]])),
        "input_iou": float(np.mean([h["input_iou"] for h in r["hypotheses"]])),
        "seconds": float(r["seconds"]["total"]),
        "peak_rss_mib": float(r["peak_rss_mib"]),
        "prior_evals": float(r["prior_evals"]["total"]),
    }


def per_seed(results: list[dict[str, Any]]) -> dict[str, dict[int, dict[str, float]]]:
    """label -> seed -> figures averaged over that seed's runs (best-of-K: over all its cases)."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        groups[(r["label"], r["seed"])].append(r)
    out: dict[str, dict[int, dict[str, float]]] = defaultdict(dict)
    for (label, seed), runs in groups.items():
        scores = [run_scores(r) for r in runs]
        fig = {k: float(np.mean([s[k] for s in scores])) for k in scores[0]}
        # best-of-K over cases, not runs: weight each run by its number of cases
        n = [len(r["cases"]) for r in runs]
        for key in ("best_chamfer", "best_fscore"):
            fig[key] = float(np.average([s[key] for s in scores], weights=n))
        fig["peak_rss_mib"] = max(s["peak_rss_mib"] for s in scores)
        out[label][seed] = fig
    return out


def summarise(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """label -> {key: {"mean", "std", "n"}} over seeds, plus "seeds" and "runs"."""
    seeds = per_seed(results)
    out: dict[str, dict[str, Any]] = {}
    for label, by_seed in seeds.items():
        figs = list(by_seed.values())
        entry: dict[str, Any] = {"seeds": sorted(by_seed), "runs": sum(1 for r in results if r["label"] == label)}
        for key, *_ in COLUMNS:
            vals = np.array([f[key] for f in figs])
            entry[key] = {"mean": float(vals.mean()), "std": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0,
                          "n": len(vals)}
        out[label] = entry
    return out


def compare(results: list[dict[str, Any]], label: str, reference: str = "sds") -> dict[str, Any] | None:
    """Paired (same seeds) differences label − reference of coverage and best-of-K Chamfer."""
    seeds = per_seed(results)
    if label not in seeds or reference not in seeds:
        return None
    common = sorted(set(seeds[label]) & set(seeds[reference]))
    if not common:
        return None
    out: dict[str, Any] = {"label": label, "reference": reference, "seeds": common}
    for key in ("coverage", "unassigned", "nearest_coverage", "best_chamfer", "best_fscore", "diversity", "fidelity"):
        a = np.array([seeds[label][s][key] for s in common])
        b = np.array([seeds[reference][s][key] for s in common])
        higher = key in ("coverage", "nearest_coverage", "best_fscore", "diversity")
        out[key] = {"label": float(a.mean()), "reference": float(b.mean()), "diff": float((a - b).mean()),
                    "relative": float((a.mean() - b.mean()) / b.mean()) if b.mean() else None,
                    "wins": int((a > b).sum() if higher else (a < b).sum()),
                    "ties": int((a == b).sum())}
    return out


def _fmt(entry: dict[str, float], fmt: str) -> str:
    s = fmt.format(entry["mean"])
    return s + (" ± " + fmt.format(entry["std"]) if entry["n"] > 1 else "")


def family_summaries(results: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """family -> label -> {key: {"mean", "std", "n"}} over seeds, from that family's runs only."""
    families = list(dict.fromkeys(r["family"] for r in results))
    return {f: summarise([r for r in results if r["family"] == f]) for f in families}


def fidelity_by_member(results: list[dict[str, Any]]) -> dict[str, dict[str, tuple[int, float]]]:
    """label -> member -> (hypotheses nearest that member, their mean whole-surface Chamfer to it), over ``results``
    (one family's runs). Fidelity averages over hypotheses, so a method that builds a family's harder members scores
    worse even where it builds each member as well as another method does; split by member, the two are told apart."""
    found: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        for name, cd in zip(r["nearest"], r["nearest_chamfer"]):
            found[r["label"]][name.split("/")[-1]].append(float(cd))
    return {label: {m: (len(v), float(np.mean(v))) for m, v in per.items()} for label, per in found.items()}


def _fidelity_split_lines(results: list[dict[str, Any]]) -> list[str]:
    """The per-member fidelity table of one family's runs (empty when there is nothing to split)."""
    split = fidelity_by_member(results)
    members = list(dict.fromkeys(n.split("/")[-1] for r in results for n in r["members"]))  # nearest ⊆ members
    if not split or len(members) < 2:
        return []
    lines = ["", "Fidelity split by the member each hypothesis is nearest (whole surface): hypotheses × their mean "
             "Chamfer to it, over all seeds.", "", "| method | " + " | ".join(members) + " |",
             "|---|" + "---|" * len(members)]
    for label, per in split.items():
        cells = [f"{per[m][0]} × {per[m][1]:.4f}" if m in per else "—" for m in members]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


# --json: output name -> summary key
JSON_KEYS = {"coverage": "coverage", "unassigned": "unassigned", "best_of_k_chamfer": "best_chamfer",
             "fidelity": "fidelity", "diversity": "diversity"}


def json_summary(results: list[dict[str, Any]], floors: dict[str, Any]) -> dict[str, Any]:
    """What ``recon bench --json`` prints: {"methods": {label: figures}, "families": {family: {"noise_floor":
    float, "answer_stability": float | None, "methods": {label: figures}}}}, figures = the JSON_KEYS means over seeds (unassigned: a share of K)."""
    def figures(summary: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
        return {label: {out: float(entry[key]["mean"]) for out, key in JSON_KEYS.items()}
                for label, entry in summary.items()}

    per_family = family_summaries(results)
    return {
        "methods": figures(summarise(results)),
        "families": {f: {"noise_floor": float(floors[f].value),
                         "answer_stability": None if floors[f].stability is None else float(floors[f].stability),
                         "methods": figures(per_family.get(f, {}))} for f in floors},
    }


def _floor_lines(results: list[dict[str, Any]], floors: dict[str, Any]) -> list[str]:
    """The per-family section: each floor, per-method coverage and every coverage difference against it."""
    lines = ["", "## Noise floor and coverage per family", "",
             "A family's **noise floor** is how far the discriminative comparison d(H, i) − d(H, j) moves between two "
             "runs with the same ε* that differ only in stage-1/2 random streams (the first method at each floor seed, "
             "run again with stage1.seed / stage2.seed + 1000): the maximum over the floor pairs' hypotheses that kept "
             "their nearest member, and over member pairs. It is the assignment margin. A hypothesis whose nearest "
             "member changed within its pair is a **flip**: the answer, not the metric, moved; flips are counted in "
             "the answer stability and in the floor with flips, shown for reference. The largest coverage change "
             "within a floor pair is the count-scale noise a coverage difference between methods is held against.", "",
             "| family | noise floor (margin) | source | floor pairs | answer stability (flips) | floor with flips "
             "| floor-pair coverage | assigned alike | max \\|Δd\\| |",
             "|---|---|---|---|---|---|---|---|---|"]
    for fam, f in floors.items():
        pair = f"{f.label} seeds {', '.join(map(str, f.seeds))}" if f.seeds else "—"
        cov = "; ".join(" vs ".join(map(str, c)) for c in f.pair_coverage) if f.pair_coverage else "—"
        agree = f"{f.agreement:.2f}" if f.agreement is not None else "—"
        entry = f"{f.entry_max:.4f}" if f.entry_max is not None else "—"
        stable = f"{f.stability:.2f} ({f.flips} of {f.hypotheses})" if f.stability is not None else "—"
        flips = f"{f.with_flips:.4f}" if f.with_flips is not None else "—"
        lines.append(f"| {fam} | {f.value:.4f} | {f.source} | {pair} | {stable} | {flips} | {cov} | {agree} | {entry} |")
    per_family = family_summaries(results)
    for fam, summary in per_family.items():
        f = floors.get(fam)
        labels = list(summary)
        lines += ["", f"**{fam}** (floor {f.value:.4f}, {f.source}; mean over seeds):", "",
                  "| method | coverage ↑ | unassigned ↓ | nearest-member coverage (whole-surface, old) | best-of-K CD ↓ "
                  "| fidelity ↓ | diversity ↑ |", "|---|---|---|---|---|---|---|"]
        for label in labels:
            e = summary[label]
            lines.append(f"| {label} | {_fmt(e['coverage'], '{:.2f}')} | {_fmt(e['unassigned'], '{:.2f}')} | "
                         f"{_fmt(e['nearest_coverage'], '{:.2f}')} | {_fmt(e['best_chamfer'], '{:.4f}')} | "
                         f"{_fmt(e['fidelity'], '{:.4f}')} | {_fmt(e['diversity'], '{:.4f}')} |")
        lines += _fidelity_split_lines([r for r in results if r["family"] == fam])
        lines.append("")
        pair_change = f.pair_coverage_change if f else None
        for i, a in enumerate(labels):
            for b in labels[i + 1:]:
                ca, cb = summary[a]["coverage"]["mean"], summary[b]["coverage"]["mean"]
                diff = ca - cb
                if pair_change is None:
                    verdict = "no floor pair to hold it against"
                elif abs(diff) > pair_change:
                    verdict = f"larger than the largest coverage change within a floor pair ({pair_change})"
                else:
                    verdict = f"not larger than the largest coverage change within a floor pair ({pair_change})"
                lines.append(f"- coverage {a} − {b}: {ca:.2f} − {cb:.2f} = {diff:+.2f} (margin = floor {f.value:.4f}); "
                             f"{verdict}")
    return lines


def markdown(results: list[dict[str, Any]], meta: dict[str, Any], failed: list[str],
             floors: dict[str, Any] | None = None) -> str:
    floors = floors or {}
    summary = summarise(results)
    labels = list(dict.fromkeys(r["label"] for r in results))
    lines = [f"# recon bench — {meta['cases']} set", "",
             f"{meta['date']}, {meta['machine']}; {len(results)} runs ({', '.join(labels)}), "
             f"seeds {meta['seeds']}, families {', '.join(meta['families'])}, K = {meta['hypotheses']}, "
             f"τ = {meta['tau']}, δ = {meta['delta']}, {meta['points']} surface points per mesh. "
             f"Command: `{meta['command']}`", "",
             "Mean ± std over seeds (each seed: the mean over its runs; best-of-K over all cases). **Coverage** counts "
             "the distinct members that hypotheses are assigned to; a hypothesis is assigned to member m only when its "
             "discriminative distance (measured where the members differ) to m beats every other member's by more "
             "than the family's noise floor, else it is **unassigned** (share of K). The old whole-surface "
             "nearest-member coverage (no margin) is kept for continuity.", ""]
    lines.append("| method | " + " | ".join(title for _, title, _, _ in COLUMNS) + " |")
    lines.append("|---" * (len(COLUMNS) + 1) + "|")
    for label in labels:
        s = summary[label]
        lines.append(f"| {label} | " + " | ".join(_fmt(s[key], fmt) for key, _, fmt, _ in COLUMNS) + " |")
    comps = [c for c in (compare(results, lab) for lab in labels if lab != "sds") if c]
    if comps:
        lines += ["", "Paired with SDS on the same seeds (wins = seeds where the method is better):", ""]
        for c in comps:
            cov, un, cd = c["coverage"], c["unassigned"], c["best_chamfer"]
            lines.append(
                f"- **{c['label']}** vs sds: coverage {cov['label']:.2f} vs {cov['reference']:.2f} "
                f"({cov['diff']:+.2f}, better on {cov['wins']}/{len(c['seeds'])} seeds, {cov['ties']} ties); "
                f"unassigned {un['label']:.2f} vs {un['reference']:.2f}; "
                f"best-of-K CD {cd['label']:.4f} vs {cd['reference']:.4f} ({100 * cd['relative']:+.1f} %, "
                f"better on {cd['wins']}/{len(c['seeds'])} seeds)")
    if floors:
        lines += _floor_lines(results, floors)
    lines += ["", "## Per run", "",
              "Assigned member per hypothesis with its gap (second-nearest minus nearest discriminative distance; "
              "assigned when the gap exceeds the margin), and the old whole-surface nearest member.", "",
              "| family | method | seed | best-of-K CD per member | coverage | assigned (gap) | unassigned "
              "| nearest member, whole-surface (old) | fidelity | diversity | s | evals |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(results, key=lambda r: (r["family"], labels.index(r["label"]), r["seed"])):
        best = ", ".join(f"{n.split('/')[-1]} {c['best_chamfer']:.4f}" for n, c in r["cases"].items())
        assigned = ", ".join(("—" if a is None else a.split("/")[-1]) + ("" if g is None else f" ({g:.3f})")
                             for a, g in zip(r["assigned"], r["gap"]))
        near = ", ".join(n.split("/")[-1] for n in r["nearest"])
        lines.append(f"| {r['family']} | {r['label']} | {r['seed']} | {best} | {r['coverage']}/{len(r['members'])} "
                     f"| {assigned} | {r['unassigned']:.2f} | {near} | {r['fidelity']:.4f} | {r['diversity']:.4f} "
                     f"| {r['seconds']['total']:.0f}{'*' if r.get('resumed') else ''} "
                     f"| {r['prior_evals']['total']} |")
    if any(r.get("resumed") for r in results):
        lines += ["", "\\* resumed after an interruption: its seconds (and s / run above) count only the part after "
                  "the resume."]
    if failed:
        lines += ["", "## Failed runs", ""] + [f"- {f}" for f in failed]
    return "\n".join(lines) + "\n"


def write_figure(path: Path, out_dir: Path, results: list[dict[str, Any]], truths, seed: int | None = None) -> Path | None:
    """Renders of every hypothesis beside the ground truth, per family (one seed) and method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    if not results:
        return None
    seed = seed if seed is not None else min(r["seed"] for r in results)
    labels = list(dict.fromkeys(r["label"] for r in results))
    families = list(dict.fromkeys(r["family"] for r in results))
    rows: list[tuple[str, list[tuple[np.ndarray, str]]]] = []
    for fam in families:
        gt = truths[fam]
        rows.append((f"{fam}: ground truth", [
            (np.asarray(Image.open(out_dir / "gt" / f"{fam}_{n.split('/')[-1]}.png")), n.split("/")[-1])
            for n in gt.names]))
        for label in labels:
            run = next((r for r in results if r["family"] == fam and r["label"] == label and r["seed"] == seed), None)
            if run is None:
                continue
            tiles = [(np.asarray(Image.open(out_dir / run["dir"] / h["render"])),
                      (f"→ {a.split('/')[-1]}" if a is not None else "unassigned")
                      + f" (CD-nearest {near.split('/')[-1]})")
                     for h, a, near in zip(run["hypotheses"], run["assigned"], run["nearest"])]
            rows.append((f"{fam}: {label} ({run['coverage']}/{len(run['members'])})", tiles))
    cols = max(len(t) for _, t in rows)
    h, w = rows[0][1][0][0].shape[:2]
    scale = 1.6 / h
    fig, axes = plt.subplots(len(rows), cols, figsize=(cols * w * scale, len(rows) * (h * scale + 0.28)),
                             squeeze=False)
    for i, (name, tiles) in enumerate(rows):
        for j in range(cols):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if j < len(tiles):
                ax.imshow(tiles[j][0])
                ax.set_title(tiles[j][1], fontsize=7, pad=2)
            if j == 0:
                ax.set_ylabel(name, fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle(f"seed {seed}: each tile = three views (azimuth 60°, 150°, 230°); label = assigned member "
                 "(margin = noise floor) and the whole-surface nearest member", fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    # A 256-colour palette keeps the figure small enough to commit (about a third of the RGB PNG).
    small = Image.open(buf).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
    with atomic_path(path) as tmp:
        small.save(tmp, format="PNG", optimize=True)
    return path


def machine() -> str:
    import os

    cpu = platform.processor() or platform.machine()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} CPU cores ({cpu}), {gpu}, Python {platform.python_version()}, torch {torch.__version__}"


def write_report(out_dir: Path, results: list[dict[str, Any]], truths, bench, settings, failed: list[str],
                 info: dict[str, Any]) -> tuple[Path, Path, Path | None]:
    """bench.md, bench.json and figure.png in ``out_dir``."""
    meta = {
        "cases": bench.cases, "date": _dt.date.today().isoformat(), "machine": machine(),
        "threads": torch.get_num_threads(), "hypotheses": bench.hypotheses, "tau": settings.tau,
        "points": settings.points, "delta": settings.delta, "seeds": info["seeds"], "families": info["families"],
        "command": info.get("command", "recon bench"), "library": info.get("library"),
        "library_digest": info.get("library_digest"), "prior": info.get("prior"),
    }
    floors = info.get("floors") or {}
    md = atomic_write_text(out_dir / "bench.md", markdown(results, meta, failed, floors))
    labels = list(dict.fromkeys(r["label"] for r in results))
    data = {
        "schema": BENCH_SCHEMA,
        "meta": meta,
        "bench": to_dict(bench),
        "budget": info["budget"],
        "calibration": info["calibration"],
        "summary": summarise(results),
        "families": family_summaries(results),
        "floors": {f: asdict(n) for f, n in floors.items()},
        "comparisons": [c for c in (compare(results, lab) for lab in labels if lab != "sds") if c],
        "failed": failed,
        "runs": [{k: v for k, v in r.items() if k != "config"} for r in results],
    }
    js = atomic_write_text(out_dir / "bench.json", json.dumps(data, indent=1))
    fig = write_figure(out_dir / "figure.png", out_dir, results, truths)
    return md, js, fig
