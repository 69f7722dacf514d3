"""One benchmark run: its specification, its stored record and its execution.

A run is one training of one model variant with one seed. Its *specification* is everything
that decides its result: the model, the variant's settings, the common overrides, the
per-model configuration files (by content), the seed, the dataset and the budget. A finished
run is stored as ``<output>/runs/<run id>.json``, written atomically; a later benchmark with
the same specification reads that file instead of training again.

A run is recognised by its *key* (:func:`run_key`): the specification less where its files
lie. Once the dataset folder's digest is known, the folder's path leaves the key, and a
configuration file enters it by content only, so a benchmark copied to another machine, or
resumed with another ``--data_path`` holding the same files, reuses its finished runs.

Each run trains in a fresh process (``multiprocessing`` with the ``spawn`` start method), so
that runs share no state and the peak resident memory of that process is the run's own.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import resource
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from logging import getLogger
from time import perf_counter
from typing import Any

import torch

from recbole_slmrec.quick_start import run

RUN_FORMAT = 1
VALID_METRIC = "recall@20"

#: Keys that the benchmark sets for every run alike; a ``--key=value`` override may not set them.
PROTOCOL = {
    "reproducibility": True,
    "metrics": ["Recall", "NDCG", "Precision"],
    "topk": [10, 20],
    "valid_metric": "Recall@20",
    "valid_metric_bigger": True,
}
#: Keys that the benchmark derives from its own options.
DERIVED_KEYS = ("seed", "epochs", "stopping_step", "data_path", "checkpoint_dir")
#: Defaults below the common overrides: quiet runs unless asked otherwise.
QUIET = {"show_progress": False}

#: ``execute(spec, checkpoint_dir, log_file)`` trains one run and returns its result.
Executor = Callable[[dict, str, str], dict]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class RunFailedError(RuntimeError):
    """A run's process ended without a result."""


def make_spec(
    model: str,
    dataset: str,
    data_path: str,
    seed: int,
    epochs: int,
    stopping_step: int,
    overrides: dict[str, Any],
    variant: dict[str, Any],
    config_files: list[str],
    dataset_sha256: str | None = None,
) -> dict[str, Any]:
    """The specification of one run, as plain JSON types.

    Args:
        model: the model name.
        dataset: the dataset name.
        data_path: the absolute folder that holds the dataset folder.
        seed: RecBole's ``seed``.
        epochs: the epoch budget.
        stopping_step: the early-stopping patience, in evaluations.
        overrides: the common ``--key=value`` overrides.
        variant: the variant's own settings (ablation settings, a learning rate).
        config_files: the model's configuration files; their contents enter the key.
        dataset_sha256: the digest of the dataset folder (:func:`dataset_digest`), so that a
            run on other data is never taken for this one.

    Returns:
        A dict that equals itself after a JSON round trip.
    """
    files = []
    for path in config_files:
        with open(path, "rb") as f:
            files.append({"path": path, "sha256": hashlib.sha256(f.read()).hexdigest()})
    spec = {
        "format": RUN_FORMAT,
        "model": model,
        "dataset": dataset,
        "data_path": data_path,
        "seed": seed,
        "epochs": epochs,
        "stopping_step": stopping_step,
        "overrides": overrides,
        "variant": variant,
        "config_files": files,
        "dataset_sha256": dataset_sha256,
    }
    return json.loads(json.dumps(spec))


def dataset_digest(folder: str) -> str:
    """A SHA-256 of the names and contents of the files of a dataset folder.

    Hidden files (a converter's temporaries) and sub-folders are left out. A feature file that
    the dataset's YAML names by an absolute path outside the folder is not covered.
    """
    digest = hashlib.sha256()
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name.startswith(".") or not os.path.isfile(path):
            continue
        digest.update(f"{name}\0{os.path.getsize(path)}\0".encode())
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def run_config(spec: dict[str, Any], checkpoint_dir: str) -> dict[str, Any]:
    """The ``config_dict`` of a run: quiet defaults, overrides, variant, then the protocol."""
    return {
        **QUIET,
        **spec["overrides"],
        **spec["variant"],
        **PROTOCOL,
        "seed": spec["seed"],
        "epochs": spec["epochs"],
        "stopping_step": spec["stopping_step"],
        "data_path": spec["data_path"],
        "checkpoint_dir": checkpoint_dir,
    }


def run_key(spec: dict[str, Any]) -> dict[str, Any]:
    """What identifies a run: its specification without the paths of its inputs.

    The dataset folder's path is left out when the dataset's digest is known (the digest
    identifies the data; without it the path is all there is), and each configuration file is
    kept by its digest alone.
    """
    key = dict(spec)
    if key.get("dataset_sha256"):
        key.pop("data_path", None)
    files = spec.get("config_files", [])
    if isinstance(files, list):
        key["config_files"] = [f.get("sha256") if isinstance(f, dict) else f for f in files]
    return key


def _key_text(spec: dict[str, Any]) -> str:
    return json.dumps(run_key(spec), sort_keys=True, separators=(",", ":"))


def run_id(label: str, spec: dict[str, Any]) -> str:
    """A file-name-safe id: the row label, the learning rate if set, the seed and a digest
    of the run's key (:func:`run_key`)."""
    digest = hashlib.sha256(_key_text(spec).encode("utf-8")).hexdigest()[:12]
    lr = spec["variant"].get("learning_rate")
    name = _UNSAFE.sub("_", label).strip("_")
    lr_part = f"-lr{lr:g}" if lr is not None else ""
    return f"{name}{lr_part}-seed{spec['seed']}-{digest}"


def write_json_atomic(path: str, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file and ``os.replace``."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class RunStore:
    """The folder of finished runs, one JSON record per run.

    Args:
        folder: ``<output>/runs``; created if missing.
    """

    def __init__(self, folder: str):
        self.folder = folder
        os.makedirs(folder, exist_ok=True)
        #: run key text -> finished record, for the records filed under another name
        self._index: dict[str, dict[str, Any]] | None = None

    def path(self, rid: str) -> str:
        """The record file of run ``rid``."""
        return os.path.join(self.folder, f"{rid}.json")

    @staticmethod
    def _read(path: str) -> dict[str, Any] | None:
        try:
            with open(path, encoding="utf-8") as f:
                record = json.load(f)
        except (OSError, ValueError) as error:
            getLogger().warning(f"Unreadable run file {path} ({error}); the run is done again")
            return None
        if not isinstance(record, dict) or not isinstance(record.get("spec"), dict):
            getLogger().warning(f"Run file {path} holds no run specification; it is ignored")
            return None
        return record

    def _filed_elsewhere(self, spec: dict[str, Any]) -> dict[str, Any] | None:
        """The finished record with ``spec``'s key stored under another name.

        Such a record was written under an older id: by a benchmark whose data lay in another
        folder, or by an earlier version of the run id.
        """
        if self._index is None:
            self._index = {}
            for name in sorted(os.listdir(self.folder)):
                path = os.path.join(self.folder, name)
                if not name.endswith(".json") or not os.path.isfile(path):
                    continue
                record = self._read(path)
                if record is not None and "result" in record:
                    self._index.setdefault(_key_text(record["spec"]), record)
        return self._index.get(_key_text(spec))

    def load(self, rid: str, spec: dict[str, Any]) -> dict[str, Any] | None:
        """The stored record of the run with ``spec``'s key, if one was finished.

        The record is looked for under the id ``rid`` first, then among the folder's other
        records.
        """
        path = self.path(rid)
        if os.path.isfile(path):
            record = self._read(path)
            if record is None:
                return None
            if "result" in record and _key_text(record["spec"]) == _key_text(spec):
                return record
            getLogger().warning(f"Run file {path} holds another run; the run is done again")
            return None
        record = self._filed_elsewhere(spec)
        if record is not None:
            getLogger().info(f"Run {rid} found under an earlier id: {record.get('run_id')}")
        return record

    def save(self, rid: str, label: str, spec: dict[str, Any], result: dict[str, Any]) -> dict:
        """Store a finished run; returns its record."""
        record = {
            "run_id": rid,
            "label": label,
            "spec": spec,
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "result": result,
        }
        write_json_atomic(self.path(rid), record)
        return record


def peak_rss_mib() -> float:
    """This process's peak resident set size so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


def plain_config(config: Any) -> dict[str, Any]:
    """A configuration's final settings as JSON types, as a run's record stores them."""
    return json.loads(json.dumps(dict(config.final_config_dict), default=str))


def train(spec: dict[str, Any], checkpoint_dir: str) -> dict[str, Any]:
    """Train and test one run in this process with :func:`recbole_slmrec.quick_start.run`.

    Args:
        spec: the run's specification, from :func:`make_spec`.
        checkpoint_dir: the folder of the run's checkpoint.

    Returns:
        The validation and test results at the best validation epoch, the best epoch, the
        per-epoch history, the checkpoint file, the wall time of ``run`` (data loading,
        training and test), this process's peak RSS, torch's thread count, the device and the
        final configuration.
    """
    os.makedirs(checkpoint_dir, exist_ok=True)
    start = perf_counter()
    result = run(
        spec["model"],
        spec["dataset"],
        config_file_list=[file["path"] for file in spec["config_files"]] or None,
        config_dict=run_config(spec, checkpoint_dir),
        saved=True,
    )
    wall = perf_counter() - start
    config = plain_config(result["config"])
    return {
        "best_valid_score": result["best_valid_score"],
        "best_valid_result": result["best_valid_result"],
        "test_result": result["test_result"],
        "best_epoch": result["best_epoch"],
        "history": result["history"],
        "model_file": result["model_file"],
        "wall_time_s": wall,
        "peak_rss_mib": peak_rss_mib(),
        "torch_threads": torch.get_num_threads(),
        "device": config.get("device"),
        "config": config,
    }


def _train_in_child(spec: dict, checkpoint_dir: str, log_file: str, result_file: str) -> None:
    """Body of the spawned process: all output to ``log_file``, the result to ``result_file``."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    # RecBole writes ./log and ./log_tensorboard: keep them beside the run logs
    os.chdir(os.path.dirname(log_file))
    write_json_atomic(result_file, train(spec, checkpoint_dir))


def train_in_subprocess(spec: dict[str, Any], checkpoint_dir: str, log_file: str) -> dict:
    """Train one run in a fresh spawned process and wait for it.

    Args:
        spec: the run's specification.
        checkpoint_dir: the folder of the run's checkpoint.
        log_file: receives everything the process prints, RecBole's log included.

    Returns:
        :func:`train`'s result, plus ``process_time_s``, the process's whole lifetime.

    Raises:
        RunFailedError: the process ended without a result (an exception, a crash, a kill).
    """
    result_file = f"{log_file}.result.json"
    if os.path.exists(result_file):
        os.remove(result_file)
    context = multiprocessing.get_context("spawn")
    process = context.Process(
        target=_train_in_child, args=(spec, checkpoint_dir, log_file, result_file)
    )
    start = perf_counter()
    process.start()
    try:
        process.join()
    except BaseException:
        process.terminate()
        process.join()
        raise
    elapsed = perf_counter() - start
    if process.exitcode != 0 or not os.path.isfile(result_file):
        raise RunFailedError(f"the run's process ended with exit code {process.exitcode}")
    with open(result_file, encoding="utf-8") as f:
        result = json.load(f)
    os.remove(result_file)
    result["process_time_s"] = elapsed
    return result
