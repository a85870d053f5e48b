"""``recon batch --ray``: the images of a folder as Ray tasks — one per image, placed on free GPUs
(or CPUs) of a local machine or a cluster, retried when a worker dies. Ray does the scheduling;
each task runs the same per-image code as the local batch (skip finished, isolate failures).

Every node needs recon installed and the input folder and output root at the same paths (a
shared file system), as usual for Ray jobs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from recon.config import from_dict, to_dict
from recon.pipeline.batch import BatchItem, BatchSummary, list_images, output_names, process_image
from recon.pipeline.image_to_3d import ImageTo3DConfig


def _task(image: str, config: dict[str, Any], out_dir: str, threads: int) -> dict[str, Any]:
    import torch

    # Ray sets OMP_NUM_THREADS from the reservation, but a reused worker keeps whatever torch read at
    # import; set it explicitly so a task's arithmetic (and result) depends only on its reservation.
    torch.set_num_threads(threads)
    item = process_image(Path(image), from_dict(ImageTo3DConfig, config), Path(out_dir))
    return {"image": str(item.image), "out_dir": str(item.out_dir), "status": item.status,
            "seconds": item.seconds, "error": item.error}


def reconstruct_batch_ray(
    folder: str | Path,
    config: ImageTo3DConfig,
    out_root: str | Path,
    address: str | None = None,
    gpus_per_image: float | None = None,
    cpus_per_image: float = 1.0,
    max_retries: int = 2,
    on_item: Callable[[BatchItem], None] | None = None,
    init_kwargs: dict[str, Any] | None = None,
) -> BatchSummary:
    """Reconstruct every image of ``folder`` as Ray tasks; returns the same summary as the local batch.

    Args:
        address: a Ray cluster (``auto`` = the running one); None starts a local instance.
        gpus_per_image: GPUs a task reserves (default 1 when the config runs on CUDA, else 0).
        max_retries: re-runs of a task whose worker process died (its checkpoints make a retry resume).
    """
    try:
        import ray
    except ImportError as exc:
        raise RuntimeError("Ray is not installed; pip install 'recon[ray]' (or run without --ray)") from exc
    images = list_images(folder)
    names = output_names(images)
    if gpus_per_image is None:
        gpus_per_image = 1.0 if config.device == "cuda" else 0.0
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, **(init_kwargs or {}))
    try:
        task = ray.remote(_task).options(num_gpus=gpus_per_image, num_cpus=cpus_per_image,
                                         max_retries=max_retries)
        data = to_dict(config)
        threads = max(1, int(cpus_per_image))
        pending = {task.remote(str(img), data, str(Path(out_root) / names[img]), threads): img for img in images}
        done: dict[Path, BatchItem] = {}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            ref = ready[0]
            image = pending.pop(ref)
            try:
                r = ray.get(ref)
                item = BatchItem(Path(r["image"]), Path(r["out_dir"]), r["status"], r["seconds"], r["error"])
            except Exception as exc:  # a task that failed for good (its worker kept dying)
                item = BatchItem(image, Path(out_root) / names[image], "failed", error=f"ray: {exc}".splitlines()[0])
            done[image] = item
            if on_item is not None:
                on_item(item)
        return BatchSummary([done[img] for img in images])
    finally:
        if started:
            ray.shutdown()
