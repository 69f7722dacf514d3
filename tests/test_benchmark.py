"""The benchmark command: outputs, agreement of the table with the runs, resume, ablation and
learning-rate selection, on a tiny pre-split dataset."""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import statistics
from pathlib import Path
from types import SimpleNamespace

import pytest
from bench_fixtures import TINY_NAME, fake_result, write_tiny_dataset

from recbole_slmrec.benchmark import cli, main, runs, suite
from recbole_slmrec.benchmark.report import TABLE_METRICS, write_report
from recbole_slmrec.benchmark.suite import Benchmark, BenchmarkError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SMALL = ["--train_batch_size=64", "--eval_batch_size=64", "--embedding_size=16"]


def in_process(spec: dict, checkpoint_dir: str, log_file: str) -> dict:
    """Really train, but in this process: fast enough for a test."""
    return runs.train(spec, checkpoint_dir)


def counting_executor(trained: list) -> runs.Executor:
    """Trains in this process and appends ``(model, seed)`` of every run to ``trained``."""

    def counting(spec: dict, checkpoint_dir: str, log_file: str) -> dict:
        trained.append((spec["model"], spec["seed"]))
        return in_process(spec, checkpoint_dir, log_file)

    return counting


def options_for(data_path: Path, out: Path, *extra: str):
    argv = ["--dataset", TINY_NAME, "--data_path", str(data_path), "--output_dir", str(out)]
    return cli.make_options(cli.build_parser(), [*argv, *extra])


def run_files(out: Path) -> dict[str, Path]:
    return {path.stem: path for path in sorted((out / "runs").glob("*.json"))}


def read_csv(path: Path) -> dict[str, dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return {row["model"]: row for row in csv.DictReader(f)}


@pytest.fixture(scope="module")
def data_path(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_tiny_dataset(root)
    return root


@pytest.fixture(scope="module")
def finished(data_path, tmp_path_factory) -> Path:
    """A really trained benchmark: SLMRec and BPR, 2 seeds, 2 epochs."""
    work = tmp_path_factory.mktemp("bench")
    cwd = os.getcwd()
    os.chdir(work)  # RecBole writes ./log and ./log_tensorboard
    try:
        options = options_for(
            data_path,
            work / "out",
            "--models=SLMRec,BPR",
            "--seeds=2020,2021",
            "--epochs=2",
            *SMALL,
        )
        outcome = Benchmark(options, execute=in_process).run()
        write_report(outcome)
    finally:
        os.chdir(cwd)
    assert not outcome.failures
    return work / "out"


def test_outputs_exist_and_parse(finished):
    for name in ("results.md", "results.csv", "history.json", "command.txt"):
        assert (finished / name).stat().st_size > 0, name
    for png in ("valid_recall20_by_epoch.png", "valid_recall20_by_time.png"):
        data = (finished / png).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 1000
    rows = read_csv(finished / "results.csv")
    assert list(rows) == ["SLMRec", "BPR"]
    markdown = (finished / "results.md").read_text(encoding="utf-8")
    table = [line for line in markdown.splitlines() if line.startswith("| `")]
    assert [line.split("|")[1].strip() for line in table] == ["`SLMRec`", "`BPR`"]
    assert "one at a time" in markdown
    history = json.loads((finished / "history.json").read_text(encoding="utf-8"))
    assert len(history["runs"]) == 4
    assert all(len(run["history"]) == 2 for run in history["runs"])
    command = (finished / "command.txt").read_text(encoding="utf-8")
    for word in ("torch", "recbole", "numpy", "scipy", "pandas", "recbole_slmrec", "CPUs"):
        assert word in command
    assert "--models=SLMRec,BPR" in command


def test_table_agrees_with_run_files(finished):
    records = [json.loads(path.read_text()) for path in run_files(finished).values()]
    history = {r["run_id"]: r for r in json.loads((finished / "history.json").read_text())["runs"]}
    rows = read_csv(finished / "results.csv")
    for label, row in rows.items():
        mine = [r["result"] for r in records if r["label"] == label]
        assert int(row["seeds"]) == len(mine) == 2
        for metric in TABLE_METRICS:
            values = [result["test_result"][metric] for result in mine]
            assert float(row[f"test_{metric}_mean"]) == pytest.approx(statistics.fmean(values))
            assert float(row[f"test_{metric}_std"]) == pytest.approx(statistics.stdev(values))
        epochs = [result["best_epoch"] for result in mine]
        assert float(row["best_epoch_mean"]) == pytest.approx(statistics.fmean(epochs))
        assert float(row["peak_rss_mib"]) == max(result["peak_rss_mib"] for result in mine)
    for record in records:
        assert history[record["run_id"]]["history"] == record["result"]["history"]
        # test figures at the best validation epoch: that epoch's validation result
        best = record["result"]["history"][record["result"]["best_epoch"]]
        assert best["valid_result"] == record["result"]["best_valid_result"]
        assert record["result"]["config"]["stopping_step"] == 30  # the default patience
        assert record["result"]["config"]["valid_metric"] == "Recall@20"
        assert record["result"]["config"]["show_progress"] is False


def test_rerun_skips_finished_runs(finished, data_path, tmp_path, caplog):
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    mtimes = {rid: path.stat().st_mtime_ns for rid, path in run_files(out).items()}

    def must_not_train(spec, checkpoint_dir, log_file):
        raise AssertionError("a finished run was trained again")

    options = options_for(
        data_path, out, "--models=SLMRec,BPR", "--seeds=2020,2021", "--epochs=2", *SMALL
    )
    caplog.set_level(logging.INFO)
    outcome = Benchmark(options, execute=must_not_train).run()
    assert sum("skipped" in message for message in caplog.messages) == 4
    assert {rid: p.stat().st_mtime_ns for rid, p in run_files(out).items()} == mtimes
    write_report(outcome)
    assert read_csv(out / "results.csv") == read_csv(finished / "results.csv")
    # the reused runs' wall times are reported, not only this quick call's
    walls = [json.loads(p.read_text())["result"]["wall_time_s"] for p in run_files(out).values()]
    command = (out / "command.txt").read_text(encoding="utf-8")
    expected = (
        f"summed over its 4 runs, those finished by earlier calls included: {sum(walls):.1f} s"
    )
    assert expected in command


def test_partly_finished_benchmark_redoes_only_the_missing_run(
    finished, data_path, tmp_path, monkeypatch
):
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    files = run_files(out)
    missing = next(rid for rid in files if rid.startswith("BPR-seed2021"))
    files[missing].unlink()
    mtimes = {rid: path.stat().st_mtime_ns for rid, path in run_files(out).items()}
    trained = []
    counting = counting_executor(trained)
    monkeypatch.chdir(tmp_path)
    options = options_for(
        data_path, out, "--models=SLMRec,BPR", "--seeds=2020,2021", "--epochs=2", *SMALL
    )
    Benchmark(options, execute=counting).run()
    assert trained == [("BPR", 2021)]
    after = run_files(out)
    assert set(after) == set(files)
    assert {rid: after[rid].stat().st_mtime_ns for rid in mtimes} == mtimes


def test_run_trained_with_other_defaults_is_done_again(
    finished, data_path, tmp_path, caplog, monkeypatch
):
    # a model's default properties are not part of the run key: a run whose stored final
    # configuration differs from the one it would get now (a changed YAML default, simulated
    # here by editing the record) is trained again, and the warning names the setting
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    files = run_files(out)
    stale = next(rid for rid in files if rid.startswith("BPR-seed2020"))
    record = json.loads(files[stale].read_text())
    record["result"]["config"]["weight_decay"] = 0.5
    record["result"]["config"]["device"] = "cuda"  # where it ran does not make it stale
    files[stale].write_text(json.dumps(record))
    local = next(rid for rid in files if rid.startswith("SLMRec-seed2021"))
    record = json.loads(files[local].read_text())
    record["result"]["config"].update(device="cuda", checkpoint_dir="/elsewhere", gpu_id="1")
    files[local].write_text(json.dumps(record))
    trained = []
    counting = counting_executor(trained)
    monkeypatch.chdir(tmp_path)
    options = options_for(
        data_path, out, "--models=SLMRec,BPR", "--seeds=2020,2021", "--epochs=2", *SMALL
    )
    caplog.set_level(logging.INFO)
    Benchmark(options, execute=counting).run()
    assert trained == [("BPR", 2020)]
    warnings = [m for m in caplog.messages if "trained with other settings" in m]
    assert len(warnings) == 1
    assert stale in warnings[0] and "weight_decay 0.5 -> 0.0" in warnings[0]
    assert "device" not in warnings[0]


def test_changed_settings_compares_shared_keys_outside_the_run_local_ones():
    stored = {"learning_rate": 0.01, "device": "cpu", "only_stored": 1, "n_layers": 2}
    current = {"learning_rate": 0.001, "device": "cuda", "only_current": 2, "n_layers": 2}
    assert suite.changed_settings(stored, current) == {"learning_rate": (0.01, 0.001)}


def test_run_key_covers_model_variant_seed_dataset_and_budget(tmp_path):
    config_file = tmp_path / "m.yaml"
    config_file.write_text("embedding_size: 8\n")
    base = dict(
        model="SLMRec",
        dataset="tiny",
        data_path="/data",
        seed=2020,
        epochs=2,
        stopping_step=10,
        overrides={},
        variant={},
        config_files=[str(config_file)],
    )
    reference = runs.run_id("SLMRec", runs.make_spec(**base))
    assert runs.run_id("SLMRec", runs.make_spec(**base)) == reference
    changes = [
        {"model": "BPR"},
        {"dataset": "other"},
        {"seed": 2021},
        {"epochs": 3},
        {"stopping_step": 5},
        {"overrides": {"embedding_size": 32}},
        {"variant": {"ssl_task": "FD"}},
    ]
    for change in changes:
        assert runs.run_id("SLMRec", runs.make_spec(**{**base, **change})) != reference, change
    config_file.write_text("embedding_size: 16\n")
    assert runs.run_id("SLMRec", runs.make_spec(**base)) != reference


def test_stored_run_of_another_spec_is_not_reused(tmp_path):
    store = runs.RunStore(str(tmp_path))
    spec = {"model": "BPR", "seed": 1}
    store.save("x", "BPR", spec, {"best_valid_score": 0.5})
    assert store.load("x", spec)["result"] == {"best_valid_score": 0.5}
    assert store.load("x", {"model": "BPR", "seed": 2}) is None
    assert not list(tmp_path.glob("*.tmp-*"))


def test_ablation_rows(data_path, tmp_path):
    seen = []

    def fake(spec, checkpoint_dir, log_file):
        seen.append(spec)
        return fake_result(0.5, 0.4, lr=spec["variant"].get("learning_rate", 0.01), epochs=1)

    options = options_for(
        data_path, tmp_path / "out", "--models=BPR", "--seeds=2020", "--epochs=1", "--ablation"
    )
    outcome = Benchmark(options, execute=fake).run()
    paths = write_report(outcome)
    expected = [
        "BPR",
        "SLMRec",
        "SLMRec[ssl_task=FD]",
        "SLMRec[ssl_task=FM]",
        "SLMRec[ssl_task=FD+FM]",
        "SLMRec[ssl_task=none,ssl_alpha=0.0]",
        "SLMRec[fusion=mean]",
        "SLMRec[score_type=cosine]",
        "SLMRec[logq_correction=True]",
        "SLMRec[mask_train_positives=True]",
    ]
    assert [row.label for row in outcome.rows] == expected
    assert list(read_csv(Path(paths["csv"]))) == expected
    assert {"ssl_task": "none", "ssl_alpha": 0.0} in [spec["variant"] for spec in seen]
    markdown = Path(paths["markdown"]).read_text(encoding="utf-8")
    for label in expected:
        assert f"| `{label}` |" in markdown
    assert "ssl_task=FAC, ssl_alpha=0.1, fusion=concat, score_type=dot" in markdown


def test_ablation_groups_can_be_chosen(data_path, tmp_path):
    options = options_for(
        data_path, tmp_path / "out", "--models=BPR", "--ablation=logq_correction,fusion"
    )
    rows, reference = Benchmark(options).plan()
    assert [row.label for row in rows] == [
        "BPR",
        "SLMRec",
        "SLMRec[logq_correction=True]",
        "SLMRec[fusion=mean]",
    ]
    assert reference["logq_correction"] is False
    with pytest.raises(SystemExit):
        options_for(data_path, tmp_path / "out", "--models=BPR", "--ablation=fusion,bogus")


def test_ablation_reference_follows_the_overrides(data_path, tmp_path):
    options = options_for(
        data_path, tmp_path / "out", "--models=SLMRec", "--ablation", "--fusion=mean"
    )
    rows, reference = Benchmark(options).plan()
    labels = [row.label for row in rows]
    assert reference["fusion"] == "mean"
    assert "SLMRec[fusion=concat]" in labels and "SLMRec[fusion=mean]" not in labels
    variant = next(row for row in rows if row.label == "SLMRec[fusion=concat]")
    # the variant's setting wins over the common override
    spec = runs.make_spec(
        "SLMRec", TINY_NAME, "/d", 1, 1, 1, {"fusion": "mean"}, variant.variant, []
    )
    assert runs.run_config(spec, "/ck")["fusion"] == "concat"


def test_lr_grid_selects_on_validation_only(data_path, tmp_path, monkeypatch):
    # the rate that validates best tests worst: the benchmark must not look at test figures
    figures = {0.001: (0.30, 0.10), 0.01: (0.20, 0.50)}
    calls = []

    def fake_run(model, dataset, config_file_list=None, config_dict=None, saved=True):
        lr = config_dict["learning_rate"]
        calls.append((model, lr, config_dict["seed"]))
        result = fake_result(*figures[lr], lr=lr, seed=config_dict["seed"] - 2020)
        config = SimpleNamespace(final_config_dict=result.pop("config") | {"device": "cpu"})
        return {**result, "config": config}

    monkeypatch.setattr(runs, "run", fake_run)
    options = options_for(
        data_path,
        tmp_path / "out",
        "--models=SLMRec,BPR",
        "--n_seeds=2",
        "--epochs=2",
        "--lr_grid=1e-3,1e-2",
        "--ablation",
    )
    outcome = Benchmark(options, execute=in_process).run()
    paths = write_report(outcome)
    for model in ("SLMRec", "BPR"):
        assert outcome.selection[model]["selected"] == 0.001
        grid = {e["learning_rate"]: e["valid_recall@20"] for e in outcome.selection[model]["grid"]}
        assert grid == {0.001: 0.30, 0.01: 0.20}
        # each rate on the first seed, then the other seed with the selected rate only
        own = [(lr, seed) for name, lr, seed in calls if name == model][:3]
        assert own == [(0.001, 2020), (0.01, 2020), (0.001, 2021)]
    # the eight ablation variants use the rate selected for SLMRec, with no grid of their own
    variants = [(lr, seed) for name, lr, seed in calls if name == "SLMRec"][3:]
    assert len(variants) == 8 * 2 and all(lr == 0.001 for lr, _ in variants)
    rows = read_csv(Path(paths["csv"]))
    assert float(rows["BPR"]["learning_rate"]) == 0.001
    assert float(rows["BPR"]["test_recall@20_mean"]) == pytest.approx(0.1005)
    saved = json.loads(Path(paths["selection"]).read_text(encoding="utf-8"))
    assert saved["BPR"]["selected"] == 0.001
    markdown = Path(paths["markdown"]).read_text(encoding="utf-8")
    assert "Learning-rate selection (validation only)" in markdown


def test_failed_run_is_reported_and_redone_later(data_path, tmp_path):
    def failing(spec, checkpoint_dir, log_file):
        if spec["seed"] == 2021:
            raise runs.RunFailedError("the run's process ended with exit code 1")
        return fake_result(0.5, 0.4)

    options = options_for(data_path, tmp_path / "out", "--models=BPR", "--n_seeds=2")
    outcome = Benchmark(options, execute=failing).run()
    assert len(outcome.failures) == 1 and "seed 2021" in outcome.failures[0]
    markdown = Path(write_report(outcome)["markdown"]).read_text(encoding="utf-8")
    assert "Runs without a result" in markdown
    assert len(run_files(tmp_path / "out")) == 1


@pytest.mark.parametrize(
    "extra",
    [["--seed=3"], ["--epochs=0"], ["--lr_grid=1e-3", "--learning_rate=0.1"], ["--topk=[5]"]],
)
def test_protocol_keys_cannot_be_overridden(data_path, tmp_path, extra):
    with pytest.raises(SystemExit) as raised:
        options_for(data_path, tmp_path, *extra)
    assert raised.value.code == 2


def test_dataset_that_is_not_pre_split_is_refused(data_path, tmp_path):
    folder = tmp_path / "flat"
    folder.mkdir()
    lines = (data_path / TINY_NAME / f"{TINY_NAME}.train.inter").read_text()
    (folder / "flat.inter").write_text(lines)
    options = cli.make_options(
        cli.build_parser(), ["--dataset=flat", f"--data_path={tmp_path}", "--models=BPR"]
    )
    with pytest.raises(BenchmarkError, match="not pre-split"):
        Benchmark(options).plan()


def test_command_trains_each_run_in_its_own_process(data_path, tmp_path, monkeypatch, capsys):
    """The real command, with the default executor: a fresh spawned process per run."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    argv = ["--dataset", TINY_NAME, f"--data_path={data_path}", f"--output_dir={out}"]
    assert main([*argv, "--models=BPR", "--seeds=7", "--epochs=1", *SMALL]) == 0
    (record_file,) = run_files(out).values()
    record = json.loads(record_file.read_text())
    result = record["result"]
    assert result["peak_rss_mib"] > 10
    assert result["process_time_s"] >= result["wall_time_s"] > 0
    assert result["model_file"].startswith(str(out / "checkpoints" / record["run_id"]))
    assert os.path.isfile(result["model_file"])
    log = (out / "logs" / f"{record['run_id']}.log").read_text()
    assert "test result" in log
    assert "| `BPR` |" in capsys.readouterr().out


def test_command_trains_with_the_executor_it_is_given(data_path, tmp_path, capsys):
    seen = []

    def fake(spec, checkpoint_dir, log_file):
        seen.append(spec["seed"])
        return fake_result(0.5, 0.4)

    argv = ["--dataset", TINY_NAME, f"--data_path={data_path}", f"--output_dir={tmp_path}"]
    assert cli.main([*argv, "--models=BPR", "--seeds=3,4"], execute=fake) == 0
    assert seen == [3, 4]
    assert "| `BPR` |" in capsys.readouterr().out
