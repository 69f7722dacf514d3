"""The benchmark itself: every model and variant, every seed, one protocol, one run at a time.

Every run of a benchmark uses the same pre-split dataset, full ranking with each user's
training items excluded, early stopping on validation Recall@20 with the same patience and
epoch budget, and reports its test figures at the best validation epoch. Runs train one after
another, each in a fresh process; finished runs are stored and never trained twice.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, field
from logging import getLogger
from time import perf_counter
from typing import Any

from recbole_slmrec.benchmark.runs import (
    VALID_METRIC,
    Executor,
    RunFailedError,
    RunStore,
    dataset_digest,
    make_spec,
    plain_config,
    run_config,
    run_id,
    train_in_subprocess,
)
from recbole_slmrec.compat import check_environment
from recbole_slmrec.config import Config
from recbole_slmrec.model.general_recommender.slmrec import FUSIONS, SCORE_TYPES, SSL_TASKS
from recbole_slmrec.quick_start import build_missing_demo, check_dataset

#: Keys of a run's final configuration that say where and how it ran, not what it trained.
RUN_LOCAL_KEYS = frozenset(
    {
        "checkpoint_dir",
        "data_path",
        "device",
        "gpu_id",
        "use_gpu",
        "local_rank",
        "single_spec",
        "state",
        "show_progress",
        "worker",
        "log_wandb",
        "wandb_project",
        "dataset_save_path",
        "dataloaders_save_path",
        "nproc",
        "world_size",
        "offset",
        "ip",
        "port",
        "backend",
    }
)


def changed_settings(stored: dict[str, Any], current: dict[str, Any]) -> dict[str, tuple]:
    """The settings, outside :data:`RUN_LOCAL_KEYS`, whose stored and current values differ.

    Only keys that both configurations hold are compared: a run's final configuration also
    holds keys that RecBole adds while it runs.
    """
    keys = (stored.keys() & current.keys()) - RUN_LOCAL_KEYS
    return {key: (stored[key], current[key]) for key in sorted(keys) if stored[key] != current[key]}


ABLATION_MODEL = "SLMRec"
#: The ablation's groups of settings; each setting changes the reference SLMRec in one respect.
ABLATION_GROUPS: dict[str, tuple[dict[str, Any], ...]] = {
    "ssl_task": (
        *({"ssl_task": task} for task in SSL_TASKS if task != "none"),
        {"ssl_task": "none", "ssl_alpha": 0.0},
    ),
    "fusion": tuple({"fusion": fusion} for fusion in FUSIONS),
    "score_type": tuple({"score_type": score} for score in SCORE_TYPES),
    "logq_correction": ({"logq_correction": False}, {"logq_correction": True}),
    "mask_train_positives": ({"mask_train_positives": False}, {"mask_train_positives": True}),
}
ABLATION_SETTINGS: tuple[dict[str, Any], ...] = tuple(
    setting for group in ABLATION_GROUPS.values() for setting in group
)
ABLATION_KEYS = (
    "ssl_task",
    "ssl_alpha",
    "fusion",
    "score_type",
    "logq_correction",
    "mask_train_positives",
)
LOG_TAIL_LINES = 15


class BenchmarkError(ValueError):
    """The options or the dataset do not allow a fair benchmark."""


@dataclass
class Options:
    """What to benchmark, and how.

    Attributes:
        dataset: the dataset name.
        data_path: the absolute folder that holds the dataset folder.
        models: the model names, in table order.
        seeds: RecBole seeds; the first one is "seed 0" of the learning-rate grid and the plots.
        epochs: the epoch budget of every run.
        stopping_step: the early-stopping patience, in evaluations without improvement.
        output_dir: the absolute output folder.
        overrides: configuration overrides applied to every run alike.
        model_configs: per-model configuration files, in order.
        lr_grid: learning rates to select from on validation; empty to use each model's own.
        ablation: the :data:`ABLATION_GROUPS` whose SLMRec rows to add (empty: none).
        command: the command line, for the record.
    """

    dataset: str
    data_path: str
    models: list[str]
    seeds: list[int]
    epochs: int
    stopping_step: int
    output_dir: str
    overrides: dict[str, Any] = field(default_factory=dict)
    model_configs: dict[str, list[str]] = field(default_factory=dict)
    lr_grid: list[float] = field(default_factory=list)
    ablation: tuple[str, ...] = ()
    command: str = ""


@dataclass
class Row:
    """One row of the table: a model, or a variant of one.

    Attributes:
        label: the row's name, e.g. ``SLMRec[ssl_task=FD]``.
        model: the model name.
        variant: the settings that make the variant, above the common overrides.
        lr_from: the label of the row whose learning-rate selection this row uses.
    """

    label: str
    model: str
    variant: dict[str, Any]
    lr_from: str


@dataclass
class Outcome:
    """What a benchmark produced.

    Attributes:
        options: the benchmark's options.
        rows: the table's rows, in order.
        table_runs: per row label, the records of its finished runs, in seed order.
        records: every record that this benchmark used, by run id.
        used_for: per run id, what the run served: ``lr grid``, ``table`` or both.
        selection: per tuned row label: the seed, the grid with each learning rate's
            validation Recall@20 and run id, and the selected learning rate.
        reference: the ablation reference's settings, when the ablation ran.
        failures: one line per run or row that produced nothing.
        elapsed_s: the benchmark's wall time.
    """

    options: Options
    rows: list[Row]
    table_runs: dict[str, list[dict]]
    records: dict[str, dict]
    used_for: dict[str, list[str]]
    selection: dict[str, dict]
    reference: dict[str, Any] | None
    failures: list[str]
    elapsed_s: float


def variant_label(model: str, variant: dict[str, Any]) -> str:
    """The row label of a variant, e.g. ``SLMRec[ssl_task=none,ssl_alpha=0.0]``."""
    if not variant:
        return model
    return f"{model}[{','.join(f'{key}={value}' for key, value in variant.items())}]"


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


def _tail(path: str, lines: int) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(deque(f, maxlen=lines))
    except OSError:
        return ""


class Benchmark:
    """Plans and runs a benchmark, skipping the runs that a previous call finished.

    Args:
        options: what to benchmark.
        execute: trains one run; the default trains each run in a fresh process.
    """

    def __init__(self, options: Options, execute: Executor = train_in_subprocess):
        self.options = options
        self.execute = execute
        self.store = RunStore(os.path.join(options.output_dir, "runs"))
        self.checkpoint_root = os.path.join(options.output_dir, "checkpoints")
        self.log_root = os.path.join(options.output_dir, "logs")
        self.records: dict[str, dict] = {}
        self.used_for: dict[str, list[str]] = {}
        self.failures: list[str] = []
        self.count = 0
        self.total = 0
        self.start = perf_counter()
        #: the dataset folder as RecBole resolves it, and its digest once the plan is made
        self.dataset_folder: str | None = None
        self.dataset_sha256: str | None = None

    def _spec(self, row: Row, seed: int, lr: float | None) -> dict[str, Any]:
        options = self.options
        variant = dict(row.variant)
        if lr is not None:
            variant["learning_rate"] = lr
        return make_spec(
            model=row.model,
            dataset=options.dataset,
            data_path=options.data_path,
            seed=seed,
            epochs=options.epochs,
            stopping_step=options.stopping_step,
            overrides=options.overrides,
            variant=variant,
            config_files=options.model_configs.get(row.model, []),
            dataset_sha256=self.dataset_sha256,
        )

    def resolve(self, model: str) -> Config:
        """The configuration that ``model``'s runs will see, checked against the protocol.

        Builds a missing demo dataset once, before any run.

        Raises:
            BenchmarkError: the dataset is not pre-split, or the ranking is not full.
            DatasetNotFoundError, ModelNotFoundError, UnsupportedEnvironmentError: as ``run``
                would raise them, but before any run.
        """
        spec = self._spec(Row(model, model, {}, model), self.options.seeds[0], None)
        files = self.options.model_configs.get(model) or None
        config_dict = run_config(spec, self.checkpoint_root)
        config = Config(model, self.options.dataset, files, config_dict)
        if build_missing_demo(config):
            config = Config(model, self.options.dataset, files, config_dict)
        check_environment(config["model"])
        check_dataset(config)
        self.dataset_folder = config["data_path"]
        if not config["benchmark_filename"]:
            raise BenchmarkError(
                f"Dataset [{self.options.dataset}] is not pre-split (no `benchmark_filename`): "
                "each seed would draw another split. Write train/valid/test files as in "
                "docs/DATA_FORMAT.md."
            )
        modes = config["eval_args"]["mode"]
        if set(modes.values()) != {"full"}:
            raise BenchmarkError(
                f"eval_args mode is {modes}; the benchmark ranks all items (mode: full)"
            )
        return config

    def plan(self) -> tuple[list[Row], dict[str, Any] | None]:
        """The table's rows and, with the ablation, the reference SLMRec's settings."""
        models = list(self.options.models)
        if self.options.ablation and ABLATION_MODEL not in models:
            models.append(ABLATION_MODEL)
        configs = {model: self.resolve(model) for model in models}
        rows = [Row(model, model, {}, model) for model in models]
        if not self.options.ablation:
            return rows, None
        reference = configs[ABLATION_MODEL]
        settings = {key: reference[key] for key in ABLATION_KEYS}
        chosen = [ABLATION_GROUPS[group] for group in self.options.ablation]
        for setting in (setting for group in chosen for setting in group):
            if all(settings[key] == value for key, value in setting.items()):
                continue  # the reference row itself
            label = variant_label(ABLATION_MODEL, setting)
            rows.append(Row(label, ABLATION_MODEL, setting, ABLATION_MODEL))
        return rows, settings

    def _run(self, row: Row, seed: int, lr: float | None, purpose: str) -> dict | None:
        spec = self._spec(row, seed, lr)
        rid = run_id(row.label, spec)
        self.used_for.setdefault(rid, [])
        if purpose not in self.used_for[rid]:
            self.used_for[rid].append(purpose)
        if rid in self.records:
            return self.records[rid]
        self.count += 1
        lr_text = f" lr={lr:g}" if lr is not None else ""
        prefix = f"[{self.count}/{self.total}] {row.label}{lr_text} seed {seed}"
        logger = getLogger()
        record = self.store.load(rid, spec)
        if record is not None:
            record = self._unless_stale(row, spec, rid, record)
        if record is not None:
            where = self.store.path(record.get("run_id", rid))
            logger.info(f"{prefix}: skipped, finished earlier ({where})")
            self.records[rid] = record
            return record
        os.makedirs(self.log_root, exist_ok=True)
        log_file = os.path.join(self.log_root, f"{rid}.log")
        logger.info(f"{prefix}: training (elapsed {_clock(perf_counter() - self.start)})")
        started = perf_counter()
        try:
            result = self.execute(spec, os.path.join(self.checkpoint_root, rid), log_file)
        except RunFailedError as error:
            logger.error(
                f"{prefix}: failed after {perf_counter() - started:.1f} s: {error}; see "
                f"{log_file}\n{_tail(log_file, LOG_TAIL_LINES)}"
            )
            self.failures.append(f"{row.label}{lr_text} seed {seed}: {error} (log: {log_file})")
            return None
        record = self.store.save(rid, row.label, spec, result)
        test = result["test_result"]
        logger.info(
            f"{prefix}: done in {perf_counter() - started:.1f} s, best epoch "
            f"{result['best_epoch']}, valid {VALID_METRIC} {result['best_valid_score']:.4f}, "
            f"test recall@20 {test.get('recall@20', float('nan')):.4f} ndcg@20 "
            f"{test.get('ndcg@20', float('nan')):.4f} "
            f"(elapsed {_clock(perf_counter() - self.start)})"
        )
        self.records[rid] = record
        return record

    def _unless_stale(
        self, row: Row, spec: dict[str, Any], rid: str, record: dict[str, Any]
    ) -> dict[str, Any] | None:
        """``record``, or ``None`` when the configuration would now train another run.

        The run key covers the benchmark's options, not the model's default properties: a
        changed default (a model YAML of the package, say) leaves the key alone, so the stored
        final configuration is compared with the one the run would get now.
        """
        files = self.options.model_configs.get(row.model) or None
        checkpoint_dir = os.path.join(self.checkpoint_root, rid)
        current = Config(row.model, self.options.dataset, files, run_config(spec, checkpoint_dir))
        changed = changed_settings(record["result"].get("config", {}), plain_config(current))
        if not changed:
            return record
        details = ", ".join(f"{key} {old!r} -> {new!r}" for key, (old, new) in changed.items())
        getLogger().warning(
            f"Run file {self.store.path(record.get('run_id', rid))} was trained with other "
            f"settings ({details}); "
            "the run is done again"
        )
        return None

    def _select_lr(self, row: Row) -> dict[str, Any]:
        seed = self.options.seeds[0]
        grid = []
        for lr in self.options.lr_grid:
            record = self._run(row, seed, lr, "lr grid")
            if record is not None:
                grid.append(
                    {
                        "learning_rate": lr,
                        f"valid_{VALID_METRIC}": record["result"]["best_valid_score"],
                        "best_epoch": record["result"]["best_epoch"],
                        "run_id": record["run_id"],
                    }
                )
        # the first of the best, in grid order, on validation only
        best = max(grid, key=lambda entry: entry[f"valid_{VALID_METRIC}"], default=None)
        selected = best["learning_rate"] if best else None
        if best:
            getLogger().info(
                f"{row.label}: learning rate {selected:g} selected on validation "
                f"{VALID_METRIC} {best[f'valid_{VALID_METRIC}']:.4f} (seed {seed})"
            )
        return {"seed": seed, "grid": grid, "selected": selected}

    def run(self) -> Outcome:
        """Train every planned run that no earlier call finished; returns the outcome."""
        options = self.options
        rows, reference = self.plan()
        # the runs' key covers the data itself: a changed dataset folder trains new runs
        self.dataset_sha256 = dataset_digest(self.dataset_folder)
        tuned = [row for row in rows if row.lr_from == row.label] if options.lr_grid else []
        n_seeds = len(options.seeds)
        # a tuned row's first-seed run at the selected learning rate is one of its grid runs
        self.total = len(tuned) * (len(options.lr_grid) - 1) + len(rows) * n_seeds
        logger = getLogger()
        logger.info(
            f"Benchmark of {len(rows)} rows x {n_seeds} seeds on [{options.dataset}]: "
            f"{self.total} runs, one at a time, each in a fresh process; output in "
            f"{options.output_dir}"
        )
        selection = {row.label: self._select_lr(row) for row in tuned}
        table_runs: dict[str, list[dict]] = {}
        for row in rows:
            lr = None
            if options.lr_grid:
                lr = selection[row.lr_from]["selected"]
                if lr is None:
                    self.failures.append(f"{row.label}: no run of the learning-rate grid finished")
                    continue
            records = [self._run(row, seed, lr, "table") for seed in options.seeds]
            table_runs[row.label] = [record for record in records if record is not None]
        return Outcome(
            options=options,
            rows=rows,
            table_runs=table_runs,
            records=self.records,
            used_for=self.used_for,
            selection=selection,
            reference=reference,
            failures=self.failures,
            elapsed_s=perf_counter() - self.start,
        )
