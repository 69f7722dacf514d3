"""Resuming a benchmark reuses the runs trained on the same data, and only those."""

from __future__ import annotations

import json
import shutil

from bench_fixtures import TINY_NAME, fake_result, write_tiny_dataset

from recbole_slmrec.benchmark import cli, runs
from recbole_slmrec.benchmark.suite import Benchmark


def options_for(data_path, out, *extra: str):
    argv = ["--dataset", TINY_NAME, "--data_path", str(data_path), "--output_dir", str(out)]
    return cli.make_options(cli.build_parser(), [*argv, "--models=BPR", "--seeds=2020", *extra])


def counting_executor(trained: list):
    def execute(spec, checkpoint_dir, log_file):
        trained.append(spec.get("dataset_sha256"))
        return fake_result(0.5, 0.4, epochs=1)

    return execute


def test_a_changed_dataset_folder_trains_again(tmp_path):
    data_path = tmp_path / "data"
    folder = write_tiny_dataset(data_path, seed=0)
    trained: list = []
    Benchmark(options_for(data_path, tmp_path / "out"), counting_executor(trained)).run()
    Benchmark(options_for(data_path, tmp_path / "out"), counting_executor(trained)).run()
    assert len(trained) == 1, "an unchanged dataset is resumed, not trained again"

    # the same name and data_path, but another split and other features
    write_tiny_dataset(data_path, seed=1)
    outcome = Benchmark(options_for(data_path, tmp_path / "out"), counting_executor(trained)).run()
    assert len(trained) == 2 and trained[0] != trained[1]
    (record,) = outcome.table_runs["BPR"]
    assert record["spec"]["dataset_sha256"] == runs.dataset_digest(str(folder))


def test_dataset_digest_covers_names_and_contents_only(tmp_path):
    folder = write_tiny_dataset(tmp_path)
    reference = runs.dataset_digest(str(folder))
    (folder / f".{TINY_NAME}.train.inter.0000.tmp").write_text("half written")
    (folder / "sub").mkdir()
    assert runs.dataset_digest(str(folder)) == reference
    path = folder / f"{TINY_NAME}.visual.ids"
    path.write_text(path.read_text().replace("i0\n", "i00\n", 1))
    assert runs.dataset_digest(str(folder)) != reference


def test_the_same_data_in_another_folder_resumes_the_finished_runs(tmp_path):
    first = tmp_path / "here"
    folder = write_tiny_dataset(first, seed=0)
    trained: list = []
    Benchmark(options_for(first, tmp_path / "out"), counting_executor(trained)).run()
    assert len(trained) == 1

    # the benchmark's output moved to a machine whose data lies elsewhere, same files
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(folder, elsewhere / TINY_NAME)
    outcome = Benchmark(options_for(elsewhere, tmp_path / "out"), counting_executor(trained)).run()
    assert len(trained) == 1, "the same files under another --data_path are the same data"
    (record,) = outcome.table_runs["BPR"]
    assert record["spec"]["data_path"] == str(first)


def test_a_run_filed_under_an_earlier_id_is_found_by_its_key(tmp_path):
    data_path = tmp_path / "data"
    write_tiny_dataset(data_path, seed=0)
    trained: list = []
    out = tmp_path / "out"
    Benchmark(options_for(data_path, out), counting_executor(trained)).run()
    (path,) = (out / "runs").glob("*.json")
    path.rename(path.with_name("BPR-seed2020-0123456789ab.json"))
    Benchmark(options_for(data_path, out), counting_executor(trained)).run()
    assert len(trained) == 1

    # a file under an earlier id that holds another run is not taken for this one
    moved = out / "runs" / "BPR-seed2020-0123456789ab.json"
    record = json.loads(moved.read_text())
    record["spec"]["seed"] = 7
    moved.write_text(json.dumps(record))
    for other in (out / "runs").glob("*.json"):
        if other != moved:
            other.unlink()
    Benchmark(options_for(data_path, out), counting_executor(trained)).run()
    assert len(trained) == 2


def test_run_key_leaves_out_input_paths_once_the_data_digest_is_known(tmp_path):
    one, two = tmp_path / "one.yaml", tmp_path / "two.yaml"
    one.write_text("embedding_size: 8\n")
    two.write_text("embedding_size: 8\n")
    base = dict(model="BPR", dataset="tiny", seed=1, epochs=2, stopping_step=3)
    base.update(overrides={}, variant={})

    def rid(data_path, config, digest):
        spec = runs.make_spec(
            **base, data_path=data_path, config_files=[str(config)], dataset_sha256=digest
        )
        return runs.run_id("BPR", spec)

    assert rid("/a", one, "d1") == rid("/b", two, "d1")
    assert rid("/a", one, "d1") != rid("/a", one, "d2")
    # without a digest the folder is all that identifies the data
    assert rid("/a", one, None) != rid("/b", one, None)
    two.write_text("embedding_size: 16\n")
    assert rid("/a", one, "d1") != rid("/a", two, "d1")


def test_a_malformed_run_file_beside_the_records_is_ignored(tmp_path, caplog):
    data_path = tmp_path / "data"
    write_tiny_dataset(data_path, seed=0)
    out = tmp_path / "out"
    (out / "runs").mkdir(parents=True)
    (out / "runs" / "odd.json").write_text(json.dumps({"spec": {"config_files": 3}, "result": {}}))
    (out / "runs" / "list.json").write_text("[1, 2]")
    (out / "runs" / "cut.json").write_text('{"spec": {"mod')
    trained: list = []
    Benchmark(options_for(data_path, out), counting_executor(trained)).run()
    assert len(trained) == 1
    assert "holds no run specification" in caplog.text and "Unreadable run file" in caplog.text
