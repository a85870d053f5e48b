"""Semantic breakages the fast tests must catch, applied one at a time to a temporary copy of the repo.

Each mutation is one exact textual replacement in one file: (file, old text, new text). The old text must
occur exactly once in the current tree, or the tool stops with an error naming the mutation, so the list
cannot rot silently when the code it breaks is rewritten. Each mutation names the smallest set of fast
tests that should catch it; those run with pytest in the copy (``PYTHONPATH`` = the copy, so the mutated
``recon`` is the one imported) and the mutation is caught when they fail.

    python tools/mutations.py                 # all mutations; a baseline run first checks the tests pass
    python tools/mutations.py -k sqrt -k fill # only mutations whose name contains one of these
    python tools/mutations.py --list          # the mutations and their tests, nothing run

Prints one row per mutation (caught yes/no, the test that caught it, seconds) and the total time; exits 1
if any mutation survives, 2 if a mutation no longer applies or the unmutated tests fail.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Not copied: version control, environments, outputs and caches.
SKIP = {".git", ".venv", "venv", "out", "runs", "build", "dist", "recon.egg-info", "__pycache__", ".pytest_cache",
        ".ruff_cache", ".mypy_cache"}


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]


DDIM_EQ = "tests/distill/test_ddim_equivalence.py::test_dsd_iterates_equal_diffusers_ddim_x0_predictions"
ORACLE = "tests/distill/test_dsd_gradient_oracle.py::test_dsd_gradient_equals_the_authors_formula"

MUTATIONS: list[Mutation] = [
    Mutation(
        "guidance rows all mapped to hypothesis 0",
        "recon/pipeline/guidance.py",
        "rows = torch.arange(k).repeat_interleave(views)",
        "rows = torch.zeros(k * views, dtype=torch.long)",
        ("tests/pipeline/test_guidance_rows.py::test_each_row_gets_its_own_hypothesis[dsd]",),
    ),
    Mutation(
        "DSD t+ term at the main CFG scale",
        "recon/distill/dsd.py",
        "                                    self.config.plus_guidance_scale)",
        "                                    self.guidance_scale)",
        (f"{ORACLE}[1.0-grid]",),
    ),
    Mutation(
        "dsd-commit's SDS follow at the t+ term's CFG scale",
        "recon/distill/committed.py",
        "sds_score(self.prior, x, eps, t, cond, self.guidance_scale), t, t_plus",
        "sds_score(self.prior, x, eps, t, cond, self.config.plus_guidance_scale), t, t_plus",
        ("tests/distill/test_dsd_gradient_oracle.py::test_dsd_commit_follows_with_the_sds_score_after_the_commit",),
    ),
    Mutation(
        "sign of DSD's gradient",
        "recon/distill/dsd.py",
        "return self.weight(t, x) * diff, t, t_plus",
        "return -self.weight(t, x) * diff, t, t_plus",
        ("tests/distill/test_fixed_point.py::test_dsd_fixed_point_closed_form",),
    ),
    Mutation(
        "broken DDIM step (off-by-one alpha), seen by the trajectory cache's test",
        "recon/diffusion/ddim.py",
        "    a_prev = schedule.alpha(t_prev, x_t)\n",
        "    a_prev = schedule.alpha(t_prev - 1, x_t)\n",
        ("tests/diffusion/test_trajectory.py::test_cached_trajectory_equals_ddim_and_is_computed_once",),
    ),
    Mutation(
        "sqrt dropped in the DDIM step",
        "recon/diffusion/ddim.py",
        "return a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps, x0",
        "return a_prev * x0 + (1 - a_prev).sqrt() * eps, x0",
        ("tests/diffusion/test_trajectory.py::test_cached_trajectory_equals_ddim_and_is_computed_once",),
    ),
    Mutation(
        "DDIM equivalence: DSD's difference rounded through float32 (~1e-7; a 1e-5 bound let it through)",
        "recon/distill/two_point.py",
        "    out[live] = eps[:n] - eps[n:]\n",
        "    out[live] = (eps[:n] - eps[n:]).float().to(out.dtype)\n",
        (f"{DDIM_EQ}[3.0-dsd-trailing]",),
    ),
    Mutation(
        "CFG form eps_c + s(eps_c - eps_u) (threestudio's scale s + 1)",
        "recon/priors/base.py",
        "eps[needs_uncond] = eps_u + scale * (eps_c - eps_u)",
        "eps[needs_uncond] = eps_c + scale * (eps_c - eps_u)",
        ("tests/distill/test_prior_cfg.py::test_gmm_conditional_branch_and_cfg",),
    ),
    Mutation(
        "trajectory-cache key without the hypothesis",
        "recon/diffusion/trajectory.py",
        "return [(hyp_keys[i], tuple(ckeys[i : i + g])) for i in range(0, len(hyp_keys), g)]",
        "return [(None, tuple(ckeys[i : i + g])) for i in range(0, len(hyp_keys), g)]",
        ("tests/diffusion/test_trajectory.py::test_cached_trajectory_equals_ddim_and_is_computed_once",),
    ),
    Mutation(
        "rasteriser fill rule: pixels on an edge count for both triangles",
        "recon/render/cpu.py",
        "inside = ((e > 0) | ((e == 0) & top_left)).all(-1)",
        "inside = (e >= 0).all(-1)",
        ("tests/render/test_raster_cpu.py::test_shared_edges_and_vertices_are_covered_exactly_once",),
    ),
    Mutation(
        "Zero-1-to-3 pose vector: polar difference with the wrong sign",
        "recon/priors/zero123.py",
        "d_polar = torch.deg2rad((90 - cam[:, 0]) - (90 - ref[:, 0]))",
        "d_polar = torch.deg2rad((90 - ref[:, 0]) - (90 - cam[:, 0]))",
        ("tests/priors/test_priors_zero123.py::test_pose_vector_by_hand",),
    ),
    Mutation(
        "Zero-1-to-3 pose vector: azimuth difference with the wrong sign",
        "recon/priors/zero123.py",
        "d_az = torch.deg2rad(cam[:, 1] - ref[:, 1])",
        "d_az = torch.deg2rad(ref[:, 1] - cam[:, 1])",
        ("tests/priors/test_priors_zero123.py::test_pose_vector_by_hand",),
    ),
    Mutation(
        "eps* of hypothesis k drawn from its per-step noise stream",
        "recon/seeding.py",
        "g = generator(seed, hypothesis, EPS_STAR)",
        "g = generator(seed, hypothesis, NOISE)",
        ("tests/distill/test_determinism.py::test_eps_star_is_drawn_from_its_own_stream",),
    ),
    Mutation(
        "eps* of hypothesis k drawn from stream (k, seed)",
        "recon/distill/base.py",
        "seeding.eps_star(h.seed, index, shape, self.prior.dtype, self.prior.device)",
        "seeding.eps_star(index, h.seed, shape, self.prior.dtype, self.prior.device)",
        ("tests/distill/test_determinism.py::test_eps_star_is_drawn_from_its_own_stream",),
    ),
    Mutation(
        "stage-1 checkpoint restores the wrong step",
        "recon/pipeline/stage1_nerf.py",
        'self.step_index = int(state["step"])',
        'self.step_index = int(state["step"]) + 1',
        ("tests/pipeline/test_stage1_nerf.py::test_resumed_run_is_bit_identical_to_an_uninterrupted_one",),
    ),
    Mutation(
        "stage-2 checkpoint restores the wrong step",
        "recon/pipeline/stage2_dmtet.py",
        'self.step_index = int(state["step"])',
        'self.step_index = int(state["step"]) - 1',
        ("tests/pipeline/test_stage2_dmtet.py::test_resumed_run_is_bit_identical_to_an_uninterrupted_one",),
    ),
    Mutation(
        "--seed does not reach stage 1's streams",
        "recon/pipeline/staged_run.py",
        "seed=stage1_stream_seed(c.seed, c.stage1.seed)",
        "seed=c.stage1.seed",
        ("tests/pipeline/test_seeds.py::test_the_seed_reaches_every_stage1_stream",),
    ),
    Mutation(
        "stage 2's guidance gradient handed to the next hypothesis's render",
        "recon/pipeline/stage2_batch.py",
        "grads.append(rgb_grads[i])",
        "grads.append(rgb_grads[(i + 1) % len(rgb_grads)])",
        ("tests/pipeline/test_stage2_dmtet.py::test_batched_hypotheses_on_threads_step_as_the_joint_loss",),
    ),
    Mutation(
        "DMTet redistancing: far grid vertices from a sparse sample subset",
        "recon/scene/dmtet.py",
        "_COARSE_STRIDE = 20 ",
        "_COARSE_STRIDE = 4000 ",
        ("tests/scene/test_dmtet_geometry.py::test_init_from_density_places_the_surface_at_the_threshold_and_redistances",),
    ),
    Mutation(
        "dsd-commit's endpoint target read one DDIM step before the ODE's end",
        "recon/distill/committed.py",
        "last = [len(self.grid) - 1] * len(rows)",
        "last = [len(self.grid) - 2] * len(rows)",
        ("tests/distill/test_dsd_gradient_oracle.py::test_dsd_commit_endpoint_pulls_toward_the_end_of_the_ode_of_eps_star",),
    ),
    Mutation(
        "a Ctrl-C inside trimesh's imports swallowed (no hold around them)",
        "recon/cli/__init__.py",
        "if argv and argv[0] in HEAVY_COMMANDS:",
        "if False:",
        ("tests/cli/test_cli_ctrl_c_in_imports.py",),
    ),
    Mutation(
        "decimation not serialised across export threads",
        "recon/io/mesh_clean.py",
        "        with _SIMPLIFY_LOCK:",
        "        if True:",
        ("tests/io/test_decimate_threads.py::test_decimate_on_threads_matches_one_thread",),
    ),
    Mutation(
        "compiled rasteriser: top-left fill rule off",
        "recon/render/cpu_kernels.py",
        "(ev[e] == 0.0 and (ar > 0.0 or",
        "(ev[e] == 0.0 and (ar >= 0.0 or",
        ("tests/render/test_raster_cpu.py::test_shared_edges_and_vertices_are_covered_exactly_once",),
    ),
    Mutation(
        "compiled antialias: owner not the nearer triangle",
        "recon/render/cpu_kernels.py",
        "use1 = t0 < 0 or (t1 >= 0 and not (zbuf[bi, r, cc] < zbuf[bi, r1, c1]))",
        "use1 = t0 < 0",
        ("tests/render/test_raster_cpu.py::test_an_edge_in_front_of_a_surface_is_antialiased_by_the_nearer_triangle",),
    ),
    Mutation(
        "compiled antialias: blend weight halved",
        "recon/render/cpu_kernels.py",
        "        alpha = s * (half - clamped)",
        "        alpha = s * (half - clamped) * 0.5",
        ("tests/render/test_raster_cpu.py::test_an_edge_in_front_of_a_surface_is_antialiased_by_the_nearer_triangle",),
    ),
    Mutation(
        "winding numbers summed into one component",
        "recon/io/winding_kernel.py",
        "out[p, labels[f]] += math.atan2(num, den)",
        "out[p, 0] += math.atan2(num, den)",
        ("tests/io/test_winding_numbers.py::test_winding_numbers_of_closed_and_open_surfaces",),
    ),
    Mutation(
        "antithetic partner keeps its sign",
        "recon/distill/base.py",
        "index, sign = index - 1, -1.0",
        "index, sign = index - 1, 1.0",
        ("tests/distill/test_determinism.py::test_antithetic_seed_noise_pairs_hypotheses",
         "tests/distill/test_dsd_gradient_oracle.py::test_interleaved_endpoint_commit_from_antithetic_seed_noise"),
    ),
    Mutation(
        "commit_every ignored",
        "recon/distill/committed.py",
        "return step < self.commit_steps and (step < self.plain_commit_steps or step % self.config.commit_every == 0)",
        "return step < self.commit_steps",
        ("tests/distill/test_dsd_gradient_oracle.py::test_interleaved_endpoint_commit_from_antithetic_seed_noise",
         "tests/distill/test_dsd_gradient_oracle.py::test_plain_commit_before_the_interleave"),
    ),
    Mutation(
        "plain commit before the interleave ignored",
        "recon/distill/committed.py",
        "return step < self.commit_steps and (step < self.plain_commit_steps or step % self.config.commit_every == 0)",
        "return step < self.commit_steps and step % self.config.commit_every == 0",
        ("tests/distill/test_dsd_gradient_oracle.py::test_plain_commit_before_the_interleave",),
    ),
    Mutation(
        "noise floor counts flipped hypotheses",
        "recon/bench/noise_floor.py",
        "movements(a, b)[kept_answers(a, b)]",
        "movements(a, b)",
        ("tests/bench/test_bench_noise_floor.py::test_a_flip_is_instability_of_the_answer_not_noise_of_the_metric",),
    ),
    Mutation(
        "noise floor from the first floor pair only",
        "recon/bench/noise_floor.py",
        "for a, b in pairs) if m.size]",
        "for a, b in pairs[:1]) if m.size]",
        ("tests/bench/test_bench_noise_floor.py::test_the_floor_is_the_largest_over_every_pair",),
    ),
    Mutation(
        "Ctrl-C exit left to the interpreter's shutdown",
        "recon/cli/__init__.py",
        "                if exc.code == 130:\n                    _exit_interrupted()",
        "                if exc.code == 130:\n                    pass",
        ("tests/cli/test_cli_interrupt_exit.py::test_ctrl_c_inside_exec_built_code_exits_130_with_one_line",),
    ),
    Mutation(
        "Ctrl-C during shutdown not ignored",
        "recon/cli/__init__.py",
        "                signal.signal(signal.SIGINT, signal.SIG_IGN)",
        "                pass",
        ("tests/cli/test_cli_interrupt_exit.py::test_ctrl_c_during_shutdown_after_a_finished_command_keeps_status_0",
         "tests/cli/test_cli_interrupt_exit.py::test_ctrl_c_in_an_exit_handler_after_a_finished_command_is_ignored"),
    ),
]


def copy_tree(dst: Path) -> None:
    """The repository's files (not .git, environments, outputs or caches) into ``dst``."""
    shutil.copytree(ROOT, dst, ignore=lambda folder, names: [n for n in names if n in SKIP], symlinks=True)


def apply(copy: Path, m: Mutation) -> str:
    """Write the mutated file into the copy; return the original text. Exits 2 if ``m.old`` does not occur
    exactly once (the code moved on: update the mutation)."""
    path = copy / m.file
    if not path.is_file():
        sys.exit(f"error: mutation {m.name!r}: {m.file} does not exist; update tools/mutations.py")
    text = path.read_text()
    n = text.count(m.old)
    if n != 1:
        sys.exit(f"error: mutation {m.name!r}: its old text occurs {n} times in {m.file} (must be once); "
                 f"update tools/mutations.py\n  old text: {m.old!r}")
    path.write_text(text.replace(m.old, m.new))
    return text


def pytest(copy: Path, tests: tuple[str, ...], first_failure: bool) -> tuple[int, str]:
    """Run pytest on ``tests`` in the copy, importing the copy's ``recon``; (exit code, output)."""
    env = dict(os.environ, PYTHONPATH=str(copy), PYTHONDONTWRITEBYTECODE="1")
    cmd = [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", *(["-x"] if first_failure else []),
           *tests]
    proc = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True)
    return proc.returncode, proc.stdout + proc.stderr


def failed_tests(output: str) -> list[str]:
    return re.findall(r"^(?:FAILED|ERROR) (\S+)", output, flags=re.M)


def check_imports_copy(copy: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(copy))
    out = subprocess.run([sys.executable, "-c", "import recon; print(recon.__file__)"], cwd=copy, env=env,
                         capture_output=True, text=True).stdout.strip()
    if not out.startswith(str(copy)):
        sys.exit(f"error: the copy imports recon from {out!r}, not from {copy}; the mutations would not be tested")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-k", action="append", default=[], help="only mutations whose name contains this (repeatable)")
    ap.add_argument("--list", action="store_true", help="list the mutations and their tests; run nothing")
    ap.add_argument("--no-baseline", action="store_true", help="skip checking that the tests pass unmutated")
    args = ap.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.k or any(k.lower() in m.name.lower() for k in args.k)]
    if args.list:
        for m in chosen:
            print(f"{m.name}\n  {m.file}: {m.old.strip()!r} -> {m.new.strip()!r}\n  tests: {' '.join(m.tests)}")
        return 0
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="recon-mutations-") as tmp:
        copy = Path(tmp) / "repo"
        copy_tree(copy)
        check_imports_copy(copy)
        for m in chosen:  # every mutation applies to the current tree, before anything runs
            (copy / m.file).write_text(apply(copy, m))
        if not args.no_baseline:
            tests = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
            t0 = time.perf_counter()
            code, out = pytest(copy, tests, first_failure=False)
            print(f"baseline: {len(tests)} tests unmutated, {time.perf_counter() - t0:.0f} s, "
                  f"{'pass' if code == 0 else 'FAIL'}", flush=True)
            if code != 0:
                print(out[-4000:])
                print("error: the tests fail without any mutation; fix them first", file=sys.stderr)
                return 2
        rows = []
        for m in chosen:
            original = apply(copy, m)
            t0 = time.perf_counter()
            code, out = pytest(copy, m.tests, first_failure=True)
            seconds = time.perf_counter() - t0
            (copy / m.file).write_text(original)
            failed = failed_tests(out)
            caught = code != 0
            by = failed[0] if failed else (f"(pytest exit {code})" if caught else "-")
            rows.append((m.name, caught, by, seconds))
            print(f"{'caught  ' if caught else 'SURVIVED'} {seconds:6.1f} s  {m.name}", flush=True)
            if not caught:
                print("  " + "\n  ".join(out.strip().splitlines()[-3:]))
    total = time.perf_counter() - start
    width = max(len(r[0]) for r in rows)
    print()
    print(f"| {'breakage':<{width}} | caught | caught by | s |")
    print(f"|{'-' * (width + 2)}|--------|-----------|---|")
    for name, caught, by, seconds in rows:
        print(f"| {name:<{width}} | {'yes' if caught else 'NO':<6} | {by} | {seconds:.1f} |")
    survived = sum(not r[1] for r in rows)
    print(f"\n{len(rows) - survived}/{len(rows)} caught; total {total:.0f} s (copy, baseline and mutations)")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
