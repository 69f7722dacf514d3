"""Training with two CPU processes (gloo), and the choice of backend, device and threads."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from conftest import quiet_config, write_dataset

from recbole_slmrec import cli, distributed
from recbole_slmrec.quick_start import run

GLOO = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="this torch build has no gloo backend, which multi-process training on CPUs needs",
)


@GLOO
def test_two_cpu_processes_train_once_and_agree(tmp_path: Path):
    write_dataset(tmp_path, n_users=16, per_user=6)
    config = quiet_config(tmp_path, ssl_task="FD", epochs=1)

    result = run(
        "SLMRec",
        "tiny",
        config_dict=config,
        nproc=2,
        ip="127.0.0.1",
        port=distributed.free_port("127.0.0.1"),
    )

    # both ranks finished and report the metrics gathered over both
    ranks = result["rank_results"]
    assert sorted(ranks) == [0, 1]
    assert ranks[0]["test_result"] == ranks[1]["test_result"] == result["test_result"]
    assert ranks[0]["best_valid_result"] == ranks[1]["best_valid_result"]
    assert set(result["test_result"]) >= {"recall@20", "ndcg@20"}
    assert result["config"]["backend"] == "gloo"
    assert result["config"]["world_size"] == 2

    # one set of outputs: rank 0's checkpoint and log
    checkpoints = list((tmp_path / "saved").glob("*.pth"))
    assert checkpoints == [Path(result["model_file"])]
    assert len(list((tmp_path / "log").rglob("*.log"))) == 1


def test_cli_passes_the_process_group_to_run(monkeypatch):
    seen = {}
    monkeypatch.setattr(cli, "run", lambda *args, **kwargs: seen.update(kwargs))
    argv = ["--model=SLMRec", "--dataset=tiny", "--nproc=2", "--port=29511", "--epochs=1"]

    assert cli.main(argv) == 0
    assert seen["nproc"] == 2 and seen["port"] == 29511 and seen["world_size"] == -1
    assert seen["ip"] == "127.0.0.1" and seen["group_offset"] == 0
    assert seen["cmd_args"] == ["--epochs=1"]


def test_threads_share_the_cores():
    assert distributed.threads_per_process(2, cores=2) == 1
    assert distributed.threads_per_process(2, cores=16) == 8
    assert distributed.threads_per_process(4, cores=2) == 1
    assert distributed.threads_per_process(1, cores=6) == 6


def test_backend_is_gloo_without_a_gpu_per_process(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(dist, "is_nccl_available", lambda: True)

    assert distributed.choose_backend(1, use_gpu=True) == "nccl"
    assert distributed.choose_backend(2, use_gpu=True) == "gloo"
    assert distributed.choose_backend(1, use_gpu=False) == "gloo"


def test_derived_buffers_stay_out_of_ddp_broadcasts():
    model = torch.nn.Module()
    model.layer = torch.nn.BatchNorm1d(3)
    model.register_buffer("feat", torch.ones(2, 2), persistent=False)
    model.register_buffer("adj", torch.eye(2).to_sparse())

    assert sorted(distributed.derived_buffers(model)) == ["adj", "feat"]


def test_sizes_that_cannot_form_a_group_are_refused():
    with pytest.raises(ValueError, match="group_offset"):
        distributed.run_distributed("SLMRec", "tiny", nproc=2, world_size=3, group_offset=2)
    with pytest.raises(ValueError, match="--port"):
        distributed.run_distributed("SLMRec", "tiny", nproc=2, world_size=4)
