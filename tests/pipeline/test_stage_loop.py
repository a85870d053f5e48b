"""The one stage loop (recon.pipeline.stage.run_stage) on a toy stage: progress, checkpoints, Ctrl-C, resume;
and the refusal of a run's stage-1 checkpoint in the layout older recons wrote."""

from __future__ import annotations

import pytest
import torch

from recon.pipeline.checkpoint import CheckpointError, check_checkpoint, load_checkpoint, save_checkpoint
from recon.pipeline.interrupt import StopRequest
from recon.pipeline.stage import Stage, run_stage


class Counter:
    """A toy stage: x += step index each step; a stop is requested after ``stop_after`` steps."""

    checkpoint_tag = "toy"

    def __init__(self, total: int = 5, stop: StopRequest | None = None, stop_after: int = -1) -> None:
        self.total_steps, self.step_index, self.x = total, 0, torch.zeros(())
        self.stop, self.stop_after = stop, stop_after

    def step(self) -> float:
        self.x = self.x + self.step_index
        self.step_index += 1
        if self.stop is not None and self.step_index == self.stop_after:
            self.stop.requested = True  # as the SIGINT handler does, mid-step
        return float(self.x)

    def state_dict(self):
        return {"step": self.step_index, "x": self.x}

    def load_state_dict(self, state):
        self.step_index, self.x = int(state["step"]), state["x"]


def test_progress_checkpoints_and_resume(tmp_path):
    path = tmp_path / "toy.pt"
    stage = Counter()
    assert isinstance(stage, Stage)
    seen = []
    run_stage(stage, checkpoint_path=path, checkpoint_every=2,
              progress=lambda done, total, rec: seen.append((done, total, rec, load_checkpoint(path, "toy")["step"]
                                                             if path.exists() else None)))
    assert seen == [(1, 5, 0.0, None), (2, 5, 1.0, None), (3, 5, 3.0, 2), (4, 5, 6.0, 2), (5, 5, 10.0, 4)]
    assert load_checkpoint(path, "toy")["step"] == 5
    again = Counter(total=7)
    run_stage(again, checkpoint_path=path, resume=True)
    assert again.step_index == 7 and float(again.x) == sum(range(7))


def test_ctrl_c_finishes_the_step_checkpoints_then_stops(tmp_path):
    path = tmp_path / "toy.pt"
    stop = StopRequest()
    stage = Counter(stop=stop, stop_after=3)
    with pytest.raises(KeyboardInterrupt):
        run_stage(stage, checkpoint_path=path, checkpoint_tag="run_toy", stop=stop)
    assert load_checkpoint(path, "run_toy")["step"] == 3
    resumed = Counter()
    run_stage(resumed, checkpoint_path=path, checkpoint_tag="run_toy", resume=True)
    assert float(resumed.x) == sum(range(5))


def test_a_run_stage1_checkpoint_of_the_old_layout_is_one_clear_line(tmp_path):
    old = save_checkpoint(tmp_path / "stage1.pt", {"stage": {"step": 3}, "guidance": {}}, "image_to_3d_stage1")
    with pytest.raises(CheckpointError, match=r"stage1\.pt: a checkpoint of an older recon.*delete it"):
        check_checkpoint(old, "image_to_3d_stage1")
    damaged = save_checkpoint(tmp_path / "s.pt", {"guidance": {}}, "image_to_3d_stage1")
    with pytest.raises(CheckpointError, match="damaged checkpoint"):
        check_checkpoint(damaged, "image_to_3d_stage1")
