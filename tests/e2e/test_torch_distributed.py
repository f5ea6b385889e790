"""torch_distributed on the local stack: two hosts, torchrun on each through the PyTorch image's toolkit, one gloo
process group across them. Marked corpus_slow: the job environment holds torch (`make corpus` runs it)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from sagepush_cli.local import demo
from tests.e2e.test_demo import ended, model_files

if TYPE_CHECKING:
    from pathlib import Path

    from sagepush_cli.local.stack import LocalStack

TRAIN = """\
import json, os
import torch
import torch.distributed as dist

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
total = torch.tensor([rank + 1.0])
dist.all_reduce(total)
with open(os.path.join(os.environ["SM_MODEL_DIR"], f"rank-{rank}.json"), "w") as out:
    json.dump({"world": world, "sum": total.item(), "host": os.environ["SM_CURRENT_HOST"]}, out)
dist.destroy_process_group()
"""


@pytest.mark.corpus_slow
@pytest.mark.timeout(3600)
def test_torch_distributed_runs_torchrun_on_each_host_in_one_process_group(stack: LocalStack, tmp_path: Path) -> None:
    root = tmp_path / "ddp"
    root.mkdir()
    (root / "train.py").write_text(TRAIN)
    (root / "sagepush.toml").write_text(
        'framework = "pytorch"\nframework_version = "2.8.0"\npy_version = "py312"\nentry_point = "train.py"\n'
        'instance_type = "ml.g5.xlarge"\ninstance_count = 2\nmax_run = "30m"\n'
        "distribution = { torch_distributed = { enabled = true } }\n"
    )

    job = ended(demo.run(stack, root, project="ddp"))

    assert job.status == "Completed", job.failure_reason
    files = model_files(job.model_uri or "")
    ranks = {name: json.loads(files[name]) for name in ("rank-0.json", "rank-1.json")}
    assert all(rank["world"] == 2 and rank["sum"] == 3.0 for rank in ranks.values())  # 1 + 2, across both hosts
    assert {rank["host"] for rank in ranks.values()} == {"127.0.0.1", "127.0.0.2"}
