"""The toy-world ground-truth benchmark (``recon bench``): image-to-3D with SDS, DSD, ASD and SDI on
inputs whose hidden back is ambiguous, scored against every plausible ground truth."""

from recon.bench.bench import BenchConfig, BenchResult, run_bench
from recon.bench.cases import CASE_SETS, CaseSet, RunSpec, Variant

__all__ = ["CASE_SETS", "BenchConfig", "BenchResult", "CaseSet", "RunSpec", "Variant", "run_bench"]
