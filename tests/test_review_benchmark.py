"""Resuming a benchmark never reuses runs that were trained on other data."""

from __future__ import annotations

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
