"""Resume is exact on Meta-World too: RL² on real ML10 tasks, process workers reusing envs by class.

The cheap families' resume tests cannot catch state that lives in Meta-World envs kept across meta-batches
(a resumed run builds them fresh), so this one trains 2 iterations straight and 1 + 1 resumed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from metarl.api import train

TINY = ["meta_batch_size=2", "trial_episodes=2", "hidden_size=8", "encoder_sizes=[]", "epochs=1", "eval.every=0",
        "sampling.backend=process", "sampling.workers=2", "trainer.stdout=false", "trainer.progress=false"]


def _train_rows(run: Path) -> list[list[str]]:
    header, *rows = (run / "progress.csv").read_text().strip().splitlines()
    keep = [i for i, c in enumerate(header.split(",")) if c.startswith("train/")]
    return [[row.split(",")[i] for i in keep] for row in rows]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_rl2_on_ml10_resumes_bit_identically(tmp_path: Path) -> None:
    straight = train("rl2", "ml10", overrides=[*TINY, "trainer.iterations=2"], run_dir=tmp_path / "a")
    train("rl2", "ml10", overrides=[*TINY, "trainer.iterations=1"], run_dir=tmp_path / "b")
    resumed = train("rl2", overrides=["trainer.iterations=2"], resume=tmp_path / "b")
    assert resumed.result.iterations_done == 2
    for key, value in straight.agent.net.state_dict().items():
        assert torch.equal(value, resumed.agent.net.state_dict()[key]), key
    rows = _train_rows(tmp_path / "a")
    assert len(rows) == 2 and rows == _train_rows(tmp_path / "b")
