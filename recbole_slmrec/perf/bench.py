"""Speed and memory of SLMRec at paper scale, each figure beside the same-run ratio it is judged by.

``python -m recbole_slmrec.perf.bench --preset kwai --fraction 0.1`` generates the data
(:mod:`recbole_slmrec.perf.generate`), then measures, one step at a time:

* the converter (``python -m atomic_data_tools``, a child process): time and peak RSS;
* the dataset load (RecBole's dataset and loaders, features memory-mapped and aligned);
* a training step and an epoch of SLMRec (FAC and FD) and of RecBole's LightGCN on the same data,
  ``n_layers`` and batch size, and ``T_SLMRec / (views x T_LightGCN)`` (target <= 0.6);
* the fused multi-view propagation against one propagation per view, forward and backward, on
  the same graph (target: fused 1.5x faster);
* a full-ranking evaluation at several ``eval_batch_size`` chunks, and how its peak memory grows;
* the peak memory of training at full size, from a linear fit of the peaks at two fractions
  (target: 24 GiB).

Every measured step runs in a fresh child process (``--in-process`` runs them in this one,
for quick checks), one at a time, with torch threads set to the cores. A child's peak RSS is
read from the kernel (``os.wait4``); the peak of a phase inside a process from ``VmHWM`` after
resetting it (``/proc/self/clear_refs``). On CUDA, which is chosen whenever it is available,
GPU memory is ``torch.cuda.max_memory_allocated``. Where a target is missed, the report names the
part that dominates, with the top operators of a ``torch.profiler`` run, and what it would take.

The JSON and Markdown reports, with the machine, go to ``--out`` (``benchmarks/results/perf``).
See ``docs/PERFORMANCE.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from time import perf_counter
from typing import Any

import numpy as np
import psutil
import torch

from recbole_slmrec.distributed import available_cores
from recbole_slmrec.perf import generate

logger = logging.getLogger(__name__)

MIB = 2**20
GIB = 2**30
MEMORY_LIMIT_GIB = 24.0
TRAIN_RATIO_TARGET = 0.6
FUSED_SPEEDUP_TARGET = 1.5
PROFILE_STEPS = 3
TOP_OPS = 10
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
VARIANTS = {
    "SLMRec-FAC": ("SLMRec", {"ssl_task": "FAC"}),
    "SLMRec-FD": ("SLMRec", {"ssl_task": "FD"}),
    "LightGCN": ("LightGCN", {}),
}
"""The trained variants: a name, the model and its overrides."""


# ---- measuring ----------------------------------------------------------------------------


def rss_mib() -> float:
    """The resident set size of this process now."""
    return psutil.Process().memory_info().rss / MIB


def reset_peak() -> None:
    """Reset this process's peak RSS to its current RSS (Linux; elsewhere a no-op)."""
    try:
        with open("/proc/self/clear_refs", "w") as stream:
            stream.write("5")
    except OSError:
        logger.debug("cannot reset the peak RSS: /proc/self/clear_refs is not writable")


def peak_mib() -> float:
    """The peak RSS of this process since start or since :func:`reset_peak`."""
    try:
        with open("/proc/self/status") as stream:
            for line in stream:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return _maxrss_mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _maxrss_mib(maxrss: int) -> float:
    """``ru_maxrss`` in MiB: kilobytes on Linux, bytes on macOS."""
    return maxrss / (MIB if sys.platform == "darwin" else 1024)


class Phase:
    """Time and peak memory of a block: ``with Phase(device) as phase: ...``.

    Attributes:
        seconds: wall time (CUDA work included: the device is synchronised at both ends).
        rss_before_mib: RSS at the start.
        peak_mib: peak RSS during the block.
        cuda_peak_mib: peak GPU memory allocated during the block (CUDA only).
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.seconds = 0.0
        self.rss_before_mib = 0.0
        self.peak_mib = 0.0
        self.cuda_peak_mib: float | None = None

    def __enter__(self) -> Phase:
        self._sync()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        reset_peak()
        self.rss_before_mib = rss_mib()
        self._start = perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self._sync()
        self.seconds = perf_counter() - self._start
        self.peak_mib = peak_mib()
        if self.device.type == "cuda":
            self.cuda_peak_mib = torch.cuda.max_memory_allocated(self.device) / MIB

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def as_dict(self) -> dict[str, float | None]:
        return {
            "time_s": self.seconds,
            "peak_rss_mib": self.peak_mib,
            "rss_increase_mib": self.peak_mib - self.rss_before_mib,
            "cuda_peak_mib": self.cuda_peak_mib,
        }


def timed(fn: Callable[[], Any], device: torch.device, repeats: int, warmup: int = 1) -> dict:
    """Median, mean and min seconds of ``fn`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        with Phase(device) as phase:
            fn()
        times.append(phase.seconds)
    return {
        "median_s": statistics.median(times),
        "mean_s": statistics.mean(times),
        "min_s": min(times),
    }


def profile_top_ops(fn: Callable[[], Any], device: torch.device, calls: int) -> list[dict]:
    """The operators that take the most self time over ``calls`` calls of ``fn``."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as profiler:
        for _ in range(calls):
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    attribute = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = [e for e in profiler.key_averages() if getattr(e, attribute) > 0]
    total = sum(getattr(e, attribute) for e in events) or 1.0
    events.sort(key=lambda e: getattr(e, attribute), reverse=True)
    return [
        {
            "op": e.key,
            "self_ms": getattr(e, attribute) / 1000 / calls,
            "share": getattr(e, attribute) / total,
            "calls": e.count // calls,
        }
        for e in events[:TOP_OPS]
    ]


def linear_fit(xs: list[float], ys: list[float]) -> dict[str, float]:
    """Least-squares ``y = intercept + slope * x``."""
    slope, intercept = np.polyfit(np.asarray(xs, float), np.asarray(ys, float), 1)
    return {"intercept": float(intercept), "slope": float(slope)}


# ---- the measured steps (each runs in a child process, or in this one) -----------------------


@contextmanager
def working_directory(path: Path) -> Iterator[None]:
    """Run the block in ``path``: RecBole's trainer writes ``log_tensorboard/`` to the cwd."""
    previous = Path.cwd()
    path.mkdir(parents=True, exist_ok=True)
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def build_config(spec: dict, model: str, overrides: dict | None = None):
    """The configuration of a measured step: the dataset of ``spec``, its sizes, quiet."""
    from recbole_slmrec.config import Config

    config_dict = {
        "data_path": spec["data_path"],
        "checkpoint_dir": str(Path(spec["work"]) / "saved"),
        "show_progress": False,
        "state": "ERROR",
        "epochs": 1,
        "seed": spec["seed"],
        "reproducibility": False,
        "use_gpu": spec["device"] == "cuda",
        "gpu_id": "0",
        "train_batch_size": spec["batch_size"],
        "eval_batch_size": spec.get("eval_batch_size", 2**20),
        "embedding_size": spec["embedding_size"],
        "n_layers": spec["n_layers"],
        **(overrides or {}),
    }
    return Config(model, spec["dataset"], config_dict=config_dict)


def build_run(spec: dict, model_name: str, overrides: dict | None = None):
    """Config, data loaders, model and trainer of ``model_name`` on the dataset of ``spec``."""
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import init_seed

    from recbole_slmrec.trainer import get_trainer
    from recbole_slmrec.utils import get_model

    config = build_config(spec, model_name, overrides)
    init_seed(config["seed"], config["reproducibility"])
    train_data, valid_data, test_data = data_preparation(config, create_dataset(config))
    model = get_model(model_name)(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    return config, train_data, test_data, model, trainer


def stage_baseline(spec: dict) -> dict:
    """Nothing but the imports that every step pays for: the RSS they take."""
    from recbole_slmrec.config import Config  # noqa: F401  (the import is what is measured)
    from recbole_slmrec.trainer import get_trainer  # noqa: F401

    return {"rss_mib": rss_mib()}


def stage_load(spec: dict) -> dict:
    """Load the dataset as a run does: RecBole's dataset and loaders, then the item features."""
    from recbole.data import create_dataset, data_preparation

    from recbole_slmrec.data.features import load_item_features

    device = torch.device(spec["device"])
    with Phase(device) as phase:
        config = build_config(spec, "SLMRec")
        train_data, _, _ = data_preparation(config, create_dataset(config))
        features = load_item_features(config, train_data._dataset)
    feature_bytes = sum(f.matrix.nbytes for f in features if hasattr(f, "matrix"))
    return {**phase.as_dict(), "aligned_feature_mib": feature_bytes / MIB}


def _train_step(model, optimizer, interaction) -> None:
    """One optimisation step, as RecBole's trainer takes it."""
    optimizer.zero_grad()
    loss = model.calculate_loss(interaction)
    loss = sum(loss) if isinstance(loss, tuple) else loss
    loss.backward()
    optimizer.step()


def slmrec_phases(model, device: torch.device, repeats: int, interaction, ssl_task: str) -> dict:
    """The big parts of an SLMRec step, each timed alone, forward and backward.

    With precomputed features (``precompute_features``, FAC, FM and the clean pass of FD), a
    step propagates the user and ID embeddings at width ``2d`` and forms the modality views at
    the batch's rows only; otherwise it projects every item's features and propagates all
    views at width ``views x d``. FD and FD+FM add two dropout copies of the general pass.
    """
    from recbole_slmrec.model.graph import lightgcn_propagate

    users = interaction[model.USER_ID]
    items = interaction[model.ITEM_ID] + model.n_users
    nodes, d = model.norm_adj.shape[0], model.embedding_size
    symmetric = model.adj_type == "pre"

    def projection() -> None:
        model.zero_grad()
        views = model.item_views()[1:]
        torch.autograd.backward(views, [torch.ones_like(view) for view in views])

    def propagation(width: int) -> Callable[[], None]:
        ego = torch.randn(nodes, width, device=device).requires_grad_()

        def run() -> None:
            ego.grad = None
            out = lightgcn_propagate(model.norm_adj, ego, model.n_layers, symmetric)
            out.backward(torch.ones_like(out))

        return run

    def batch_views() -> None:
        model.zero_grad()
        base = torch.randn(nodes, d, device=device, requires_grad=True)
        id_items = torch.randn(nodes, d, device=device, requires_grad=True)
        out = [model._views_at(rows, base, id_items, None) for rows in (users, items)]
        torch.autograd.backward(out, [torch.ones_like(view) for view in out])

    parts: dict[str, float] = {}
    if model.precompute_features:
        parts["graph propagation (user and ID embeddings, width 2d)"] = timed(
            propagation(2 * d), device, repeats
        )["median_s"]
        parts["modality views at the batch's rows (precomputed features)"] = timed(
            batch_views, device, repeats
        )["median_s"]
    else:
        parts["feature projection (all items)"] = timed(projection, device, repeats)["median_s"]
        parts["graph propagation (all views, width views x d)"] = timed(
            propagation(model.n_views * d), device, repeats
        )["median_s"]
    if ssl_task in ("FD", "FD+FM"):
        parts["feature projection (all items), 2 dropout copies"] = (
            2 * (timed(projection, device, repeats)["median_s"])
        )
        parts["graph propagation (all views, width views x d), 2 dropout copies"] = (
            2 * (timed(propagation(model.n_views * d), device, repeats)["median_s"])
        )
    model.zero_grad()
    return parts


def stage_train(spec: dict) -> dict:
    """Time training steps and one epoch of a variant; its peak memory; a profile of its steps."""
    model_name, overrides = VARIANTS[spec["variant"]]
    device = torch.device(spec["device"])
    config, train_data, _, model, trainer = build_run(spec, model_name, overrides)
    batches = []
    for interaction in train_data:
        batches.append(interaction.to(device))
        if len(batches) == spec["steps"] + spec["warmup"]:
            break
    if len(batches) <= spec["warmup"]:
        raise ValueError(
            f"{len(batches)} training batches for {spec['warmup']} warm-up steps and more: "
            "lower --batch-size or --warmup, or take a larger --fraction"
        )
    optimizer = trainer.optimizer
    model.train()

    with Phase(device) as warmup:
        for interaction in batches[: spec["warmup"]]:
            _train_step(model, optimizer, interaction)
    phases = [warmup]
    for interaction in batches[spec["warmup"] :]:
        with Phase(device) as phase:
            _train_step(model, optimizer, interaction)
        phases.append(phase)
    step_times = [phase.seconds for phase in phases[1:]]
    result: dict[str, Any] = {
        "step_s": statistics.median(step_times),
        "step_min_s": min(step_times),
        "steps_timed": len(step_times),
        "peak_rss_mib": max(phase.peak_mib for phase in phases),
        "cuda_peak_mib": None if device.type != "cuda" else max(p.cuda_peak_mib for p in phases),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    if spec["epoch"]:
        with Phase(device) as epoch:
            trainer._train_epoch(train_data, epoch_idx=0)
        result |= {"epoch_s": epoch.seconds, "steps_per_epoch": len(train_data)}
    if spec["profile"]:
        interaction = batches[-1]
        result["profile"] = profile_top_ops(
            lambda: _train_step(model, optimizer, interaction), device, PROFILE_STEPS
        )
        if model_name == "SLMRec":
            result["phases"] = slmrec_phases(
                model, device, spec["steps"], interaction, overrides["ssl_task"]
            )
    return result


def stage_propagation(spec: dict) -> dict:
    """Fused propagation of all views against one propagation per view, forward and backward.

    All three runs use the model's graph and give the same numbers (``max_abs_difference``).
    ``fused``: the views side by side in one product per layer (what SLMRec does).
    ``per_view``: one product per view and layer with the same CSR kernel and symmetric
    backward, each view with its own backward: the honest baseline. ``per_view_coo``: the
    same, with the COO adjacency and autograd's backward, as RecBole's LightGCN propagates
    (context only).
    """
    from recbole_slmrec.model.graph import lightgcn_propagate

    device = torch.device(spec["device"])
    _, _, _, model, _ = build_run(spec, "SLMRec")
    adj = model.norm_adj
    adj_coo = adj.to_sparse_coo().coalesce()
    nodes, views, width = adj.shape[0], model.n_views, model.embedding_size
    generator = torch.Generator().manual_seed(spec["seed"])
    inputs = [torch.randn(nodes, width, generator=generator).to(device) for _ in range(views)]
    grads = [torch.randn(nodes, width, generator=generator).to(device) for _ in range(views)]
    for tensor in inputs:
        tensor.requires_grad_()
    layers = model.n_layers
    del model

    fused_grad = torch.cat(grads, dim=1)

    def fused() -> None:
        out = lightgcn_propagate(adj, torch.cat(inputs, dim=1), layers, symmetric=True)
        out.backward(fused_grad)

    def per_view(matrix: torch.Tensor, symmetric: bool) -> Callable[[], None]:
        def run() -> None:
            for tensor, grad in zip(inputs, grads):
                lightgcn_propagate(matrix, tensor, layers, symmetric=symmetric).backward(grad)

        return run

    runs = {
        "fused": fused,
        "per_view": per_view(adj, True),
        "per_view_coo": per_view(adj_coo, False),
    }
    result: dict[str, Any] = {
        "nodes": nodes,
        "nnz": int(adj.values().numel()),
        "views": views,
        "width_per_view": width,
        "layers": layers,
    }
    with torch.no_grad():
        fused_out = lightgcn_propagate(adj, torch.cat(inputs, dim=1), layers, symmetric=True)
        expected = torch.split(fused_out, width, dim=1)
        result["max_abs_difference"] = max(
            float((lightgcn_propagate(matrix, tensor, layers) - out).abs().max())
            for matrix in (adj, adj_coo)
            for tensor, out in zip(inputs, expected)
        )
    for name, fn in runs.items():
        result[name] = timed(fn, device, spec["repeats"])
    if spec["profile"]:
        result["profile"] = {
            name: profile_top_ops(runs[name], device, 1) for name in ("fused", "per_view")
        }
    return result


def stage_eval(spec: dict) -> dict:
    """A full-ranking evaluation of an untrained SLMRec at each ``eval_batch_size`` chunk."""
    from recbole.data.dataloader import FullSortEvalDataLoader

    device = torch.device(spec["device"])
    config, train_data, test_data, model, trainer = build_run(spec, "SLMRec")
    trainer.eval_collector.data_collect(train_data)
    items, users = test_data._dataset.item_num, len(test_data.uid_list)
    trainer.evaluate(test_data, load_best_model=False)  # first-call allocations, not measured
    rows = []
    for chunk in spec["chunks"]:
        # a loader's batch size is fixed when it is built
        config["eval_batch_size"] = chunk
        loader = FullSortEvalDataLoader(config, test_data._dataset, test_data._sampler)
        model.restore_user_e = model.restore_item_e = None
        with Phase(device) as phase:
            trainer.evaluate(loader, load_best_model=False)
        rows.append(
            {"chunk": chunk, "users_per_batch": loader.step, **phase.as_dict()}
            | {"scores_per_batch": loader.step * items, "batches": len(loader)}
        )
    return {"users": users, "items": items, "by_chunk": rows}


STAGES: dict[str, Callable[[dict], dict]] = {
    "baseline": stage_baseline,
    "load": stage_load,
    "train": stage_train,
    "propagation": stage_propagation,
    "eval": stage_eval,
}


def run_stage_here(spec: dict) -> dict:
    """Run one measured step in this process (the body of a child)."""
    torch.set_num_threads(spec["threads"])
    with working_directory(Path(spec["work"])):
        return STAGES[spec["stage"]](spec)


# ---- the parent: children, data, report --------------------------------------------------


def child_env() -> dict[str, str]:
    """The environment of a child: this package importable from any working directory."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), env.get("PYTHONPATH")]))
    return env


def run_child(argv: list[str], cwd: Path, log: Path) -> dict[str, float]:
    """Run ``argv`` to completion; its wall time and peak RSS (from the kernel's rusage).

    Raises:
        RuntimeError: if it fails, naming its log.
    """
    cwd.mkdir(parents=True, exist_ok=True)
    start = perf_counter()
    with open(log, "w") as stream:
        process = subprocess.Popen(argv, cwd=cwd, env=child_env(), stdout=stream, stderr=stream)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} ... failed ({process.returncode}); see {log}")
    return {"time_s": seconds, "peak_rss_mib": _maxrss_mib(usage.ru_maxrss)}


class Bench:
    """One benchmark: its settings, where it writes, and how it runs a measured step.

    Args:
        args: the parsed command line.
    """

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.device = args.device if args.device != "auto" else default_device()
        self.threads = args.threads or available_cores()
        self.work = args.work.resolve()
        self.logs = self.work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.counter = 0

    def dataset(self, fraction: float) -> dict[str, Any]:
        """Generate (or reuse) and convert the dataset at ``fraction``; the converter's figures."""
        spec = generate.scale(generate.PRESETS[self.args.preset], fraction)
        spec = replace(spec, seed=self.args.seed)
        name = f"{self.args.preset}-{fraction:g}".replace(".", "p")
        raw, data_path = self.work / name / "raw", self.work / name
        described = raw / "generator.json"
        start = perf_counter()
        if described.is_file() and json.loads(described.read_text())["spec"] == asdict(spec):
            logger.info(f"reusing {raw}")
            generated = None
        else:
            logger.info(f"generating {name} into {raw}")
            generate.generate(spec, raw)
            generated = perf_counter() - start
        logger.info(f"converting {name}")
        convert = run_child(
            [sys.executable, "-m", "atomic_data_tools", "--input", str(raw), "--dataset", name]
            + ["--output", str(data_path / name), "-q"],
            self.work,
            self.logs / f"convert-{name}.log",
        )
        return {
            "name": name,
            "fraction": fraction,
            "data_path": str(data_path),
            "spec": asdict(spec),
            "generate_s": generated,
            "convert": convert,
        }

    def stage(self, stage: str, data: dict, **extra) -> dict:
        """Run one measured step on ``data``, in a child process unless ``--in-process``."""
        spec = {
            "stage": stage,
            "dataset": data["name"],
            "data_path": data["data_path"],
            "work": str(self.work),
            "device": self.device,
            "threads": self.threads,
            "seed": self.args.seed,
            "batch_size": self.args.batch_size,
            "embedding_size": self.args.embedding_size,
            "n_layers": self.args.n_layers,
            **extra,
        }
        logger.info(f"measuring {stage} {extra.get('variant', '')} on {data['name']}")
        if self.args.in_process:
            return run_stage_here(spec)
        self.counter += 1
        out = self.logs / f"stage-{self.counter:02d}-{stage}.json"
        spec["result_file"] = str(out)
        usage = run_child(
            [sys.executable, "-m", "recbole_slmrec.perf.bench", "--stage", json.dumps(spec)],
            self.work,
            out.with_suffix(".log"),
        )
        result = json.loads(out.read_text())
        result["process_peak_rss_mib"] = usage["peak_rss_mib"]
        return result


def default_device() -> str:
    """``cuda`` when a GPU is available, else ``cpu``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def describe_machine(device: str, threads: int) -> dict[str, Any]:
    """The machine and software the figures were measured on."""
    import recbole
    import scipy

    import recbole_slmrec

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as stream:
            names = [line.split(":", 1)[1].strip() for line in stream if "model name" in line]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else None
    return {
        "cpu": cpu,
        "cores": available_cores(),
        "torch_threads": threads,
        "memory_gib": psutil.virtual_memory().total / GIB,
        "device": device,
        "gpu": gpu,
        "device_label": f"cuda:0 ({gpu})" if gpu else f"cpu, {threads} torch thread(s)",
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "recbole": recbole.__version__,
        "recbole_slmrec": recbole_slmrec.__version__,
    }


def measure(bench: Bench) -> dict[str, Any]:
    """Run every measured step; the figures, the judged ratios and the diagnoses."""
    args = bench.args
    fractions = sorted(set(args.memory_fractions) | {args.fraction})
    datasets = {fraction: bench.dataset(fraction) for fraction in fractions}
    main = datasets[args.fraction]
    baseline = bench.stage("baseline", main)["rss_mib"]

    figures: dict[str, Any] = {
        "baseline_rss_mib": baseline,
        "convert": {f"{d['fraction']:g}": d["convert"] for d in datasets.values()},
        "generate_s": {f"{d['fraction']:g}": d["generate_s"] for d in datasets.values()},
        "load": bench.stage("load", main),
        "train": {
            variant: bench.stage(
                "train",
                main,
                variant=variant,
                steps=args.steps,
                warmup=args.warmup,
                epoch=not args.no_epoch,
                profile=True,
            )
            for variant in VARIANTS
        },
        "propagation": bench.stage("propagation", main, repeats=args.repeats, profile=True),
        "eval": bench.stage("eval", main, chunks=args.eval_chunks),
    }

    # training memory at every fraction, alike: loading, then two steps, which reach the peak
    memory_points = []
    for fraction in fractions:
        for variant in ("SLMRec-FAC", "SLMRec-FD"):
            train = bench.stage(
                "train",
                datasets[fraction],
                variant=variant,
                steps=1,
                warmup=1,
                epoch=False,
                profile=False,
            )
            peak = train.get("process_peak_rss_mib", train["peak_rss_mib"])
            memory_points.append(
                {"fraction": fraction, "variant": variant, "peak_rss_mib": peak}
                | {"cuda_peak_mib": train["cuda_peak_mib"]}
            )
    figures["train_memory"] = memory_model(memory_points, bench.device)
    figures["eval"] |= eval_growth(figures["eval"])
    ratios = judge(figures)
    return {"figures": figures, "ratios": ratios, "diagnosis": diagnose(figures, ratios)}


def memory_model(points: list[dict], device: str) -> dict[str, Any]:
    """Peak training memory at full size, from a linear fit of the peaks against the fraction.

    Every size of the data (users, items, interactions, feature rows) scales with the fraction,
    and every large term of training memory is linear in them: the feature matrices, the
    embeddings and their optimiser state, the graph, the propagated activations (nodes x views x
    d x layers); the batch terms (B x B logits) do not grow. So the peak is ``a + b x fraction``,
    fitted per variant on the measured fractions, and the estimate is its value at 1. The host's
    peak RSS is always fitted, the GPU's allocated memory as well on CUDA; the judged one is the
    device's.
    """
    keys = ["peak_rss_mib"] + (["cuda_peak_mib"] if device == "cuda" else [])
    fits: dict[str, dict[str, dict]] = {key: {} for key in keys}
    for key in keys:
        for variant in sorted({p["variant"] for p in points}):
            mine = [p for p in points if p["variant"] == variant]
            if len(mine) < 2:
                continue
            fit = linear_fit([p["fraction"] for p in mine], [p[key] for p in mine])
            fits[key][variant] = fit | {"full_size_gib": (fit["intercept"] + fit["slope"]) / 1024}
    judged = keys[-1]
    worst = max((fit["full_size_gib"] for fit in fits[judged].values()), default=None)
    return {
        "points": points,
        "memory": "GPU memory allocated" if judged == "cuda_peak_mib" else "process peak RSS",
        "model": "peak = intercept + slope * fraction (MiB), least squares, per variant",
        "fits": fits,
        "full_size_gib": worst,
        "limit_gib": MEMORY_LIMIT_GIB,
    }


def eval_growth(evaluation: dict) -> dict[str, Any]:
    """How the evaluation's peak memory grows with the chunk: bytes per score of a batch."""
    rows = evaluation["by_chunk"]
    dense = evaluation["users"] * evaluation["items"] * 4 / MIB
    growth: dict[str, Any] = {"dense_scores_mib": dense}
    if len({row["scores_per_batch"] for row in rows}) >= 2:
        key = "cuda_peak_mib" if rows[0]["cuda_peak_mib"] is not None else "rss_increase_mib"
        fit = linear_fit([row["scores_per_batch"] for row in rows], [row[key] for row in rows])
        growth["fit"] = fit | {"bytes_per_score": fit["slope"] * MIB, "memory": key}
    return growth


def judge(figures: dict) -> dict[str, dict]:
    """Every judged ratio, with its target and whether it is met."""
    train = figures["train"]
    views = figures["propagation"]["views"]
    lightgcn = train["LightGCN"]["step_s"]
    ratios = {}
    for variant in ("SLMRec-FAC", "SLMRec-FD"):
        value = train[variant]["step_s"] / (views * lightgcn)
        ratios[f"{variant}_vs_views_x_LightGCN"] = {
            "value": value,
            "target": f"<= {TRAIN_RATIO_TARGET}",
            "met": value <= TRAIN_RATIO_TARGET,
            "definition": f"T_step({variant}) / ({views} views x T_step(LightGCN))",
        }
        if "epoch_s" in train[variant] and "epoch_s" in train["LightGCN"]:
            ratios[f"{variant}_vs_views_x_LightGCN"]["epoch_value"] = train[variant]["epoch_s"] / (
                views * train["LightGCN"]["epoch_s"]
            )
    propagation = figures["propagation"]
    speedup = propagation["per_view"]["median_s"] / propagation["fused"]["median_s"]
    ratios["fused_propagation_speedup"] = {
        "value": speedup,
        "target": f">= {FUSED_SPEEDUP_TARGET}",
        "met": speedup >= FUSED_SPEEDUP_TARGET,
        "definition": "T(one propagation per view) / T(fused), forward and backward, same kernel",
        "vs_coo_per_view": propagation["per_view_coo"]["median_s"]
        / propagation["fused"]["median_s"],
    }
    evaluation = figures["eval"]
    largest = max(evaluation["by_chunk"], key=lambda row: row["chunk"])
    used = largest["cuda_peak_mib"]
    used = largest["rss_increase_mib"] if used is None else used
    share = used / evaluation["dense_scores_mib"]
    ratios["eval_peak_vs_dense_scores"] = {
        "value": share,
        "target": "< 1 (the peak follows the chunk, not users x items)",
        "met": share < 1,
        "definition": "peak increase at the largest chunk / size of the users x items scores",
        "bytes_per_score": evaluation.get("fit", {}).get("bytes_per_score"),
    }
    estimate = figures["train_memory"]["full_size_gib"]
    ratios["train_memory_full_size_gib"] = {
        "value": estimate,
        "target": f"<= {MEMORY_LIMIT_GIB}",
        "met": estimate is not None and estimate <= MEMORY_LIMIT_GIB,
        "definition": "linear fit of the peak against the fraction, at fraction 1 (worst variant)",
    }
    return ratios


def diagnose(figures: dict, ratios: dict) -> list[dict]:
    """For each missed speed target: the dominant part, a profile, and what it would take."""
    found = []
    train = figures["train"]
    views = figures["propagation"]["views"]
    lightgcn = train["LightGCN"]["step_s"]
    for variant in ("SLMRec-FAC", "SLMRec-FD"):
        if ratios[f"{variant}_vs_views_x_LightGCN"]["met"]:
            continue
        step = train[variant]["step_s"]
        parts = dict(train[variant].get("phases", {}))
        parts["the rest (in-batch B x B losses, fusion, optimiser)"] = max(
            0.0, step - sum(parts.values())
        )
        dominant = max(parts, key=parts.get)
        target = TRAIN_RATIO_TARGET * views * lightgcn
        found.append(
            {
                "ratio": f"{variant}_vs_views_x_LightGCN",
                "step_s": step,
                "target_step_s": target,
                "parts_s": parts,
                "dominant": dominant,
                "profile": {
                    f"{name} step": train[name].get("profile", []) for name in (variant, "LightGCN")
                },
                "what_it_would_take": _train_advice(dominant, step, target),
            }
        )
    if not ratios["fused_propagation_speedup"]["met"]:
        propagation = figures["propagation"]
        found.append(
            {
                "ratio": "fused_propagation_speedup",
                "fused_s": propagation["fused"]["median_s"],
                "per_view_s": propagation["per_view"]["median_s"],
                "dominant": "the sparse-dense products (multiply-adds over nnz x width)",
                "profile": propagation.get("profile", {}),
                "what_it_would_take": _fusion_advice(views, ratios["fused_propagation_speedup"]),
            }
        )
    return found


def _train_advice(dominant: str, step: float, target: float) -> str:
    cut = f"A step takes {step * 1e3:.1f} ms against {target * 1e3:.1f} ms: {step - target:.3g} s "
    if dominant.startswith("feature projection"):
        return cut + (
            "must go, mostly from projecting every item's raw features in the dropout copies. "
            "Dropout in every layer breaks the linearity that lets FAC and FM propagate the "
            "features once; FD would need fewer feature columns (a PCA of X_m, once at load) "
            "or bf16 products on a GPU."
        )
    if dominant.startswith("graph propagation"):
        return cut + (
            "must go, mostly from the sparse propagation passes. Fewer passes (FD propagates "
            "three times per step) or a GPU's sparse kernels would take it there."
        )
    if dominant.startswith("modality views"):
        return cut + (
            "must go, mostly from forming the modality views at the batch's rows: B x d_m x d "
            "per view and side, from d_m-wide propagated features. Deduplicating the batch's "
            "users and items, or reducing d_m once at load, would shrink it."
        )
    return cut + (
        "must go from what LightGCN's BPR step does not have: the B x B logit matrices of the "
        "in-batch InfoNCE losses (three per step: the main loss and two FAC stages, or the "
        "user and item terms of FD and FM; B x B x d multiply-adds each, twice that backward), "
        "the dropout masks of FD, the fusion layers and a larger optimiser step. A smaller "
        "batch per step, or bf16 logits on a GPU, would take it there."
    )


def _fusion_advice(views: int, ratio: dict) -> str:
    return (
        f"Fused propagation is {ratio['value']:.2f}x faster than one pass per view with the same "
        f"kernel ({ratio['vs_coo_per_view']:.2f}x faster than RecBole's COO propagation with "
        "autograd's backward). Fusing reads the sparse structure once instead of once per view, "
        "but the multiply-adds (nnz x width per layer) stay the same, so the gain is bounded "
        "by the share of index reads. To go further, the work itself must shrink: every view "
        "starts from the same user embeddings, and the graph is bipartite, so propagating "
        "[E_u; 0] once and [0; H_1 .. H_V] through the user-item block alone needs (V + 1) d "
        f"instead of 2 V d columns per layer, {2 * views / (views + 1):.2f}x less work for "
        f"{views} views; wider products also use GPUs better than narrow ones."
    )


# ---- reports -------------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def markdown(report: dict) -> str:
    """The report as Markdown: machine, figures with their ratios, and diagnoses."""
    machine, settings, figures = report["machine"], report["settings"], report["figures"]
    ratios = report["ratios"]
    label = machine["device_label"]
    lines = [
        f"# Performance: {settings['preset']} x {settings['fraction']:g} on {label}",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']:.1f} GiB; "
        f"torch threads {machine['torch_threads']} (set from the cores); device {label}; "
        f"python {machine['python']}, torch {machine['torch']}, numpy {machine['numpy']}, "
        f"scipy {machine['scipy']}, recbole {machine['recbole']}, recbole-slmrec "
        f"{machine['recbole_slmrec']}; {machine['os']}.",
        "",
        f"Data: {settings['spec']['users']} users, {settings['spec']['items']} items, "
        f"{settings['spec']['interactions']} interactions, widths {settings['spec']['widths']}; "
        f"batch {settings['batch_size']}, n_layers {settings['n_layers']}, embedding_size "
        f"{settings['embedding_size']}. Steps run one at a time, "
        + ("in one process" if settings["in_process"] else "each in a fresh process")
        + f"; the imports alone take {_fmt(figures['baseline_rss_mib'])} MiB of RSS.",
        "",
        "| figure | value | judged by | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    convert = figures["convert"][f"{settings['fraction']:g}"]
    load = figures["load"]
    lines.append(
        f"| converter | {_fmt(convert['time_s'])} s, peak RSS {_fmt(convert['peak_rss_mib'])} "
        "MiB | - | - | - | - |"
    )
    lines.append(
        f"| dataset load (features memory-mapped) | {_fmt(load['time_s'])} s, peak RSS "
        f"{_fmt(load['peak_rss_mib'])} MiB (+{_fmt(load['rss_increase_mib'])} MiB; aligned "
        f"features {_fmt(load['aligned_feature_mib'])} MiB) | - | - | - | - |"
    )
    lightgcn = figures["train"]["LightGCN"]
    for variant, train in figures["train"].items():
        epoch = f", epoch {_fmt(train['epoch_s'])} s" if "epoch_s" in train else ""
        key = f"{variant}_vs_views_x_LightGCN"
        ratio = ratios.get(key)
        judged = (
            f"T / ({figures['propagation']['views']} x LightGCN {_fmt(lightgcn['step_s'])} s)"
            if ratio
            else "-"
        )
        lines.append(
            f"| train step {variant} | {_fmt(train['step_s'])} s{epoch} | {judged} | "
            + (
                f"{_fmt(ratio['value'])} | {ratio['target']} | {ratio['met']} |"
                if ratio
                else "- | - | - |"
            )
        )
    propagation = figures["propagation"]
    speedup = ratios["fused_propagation_speedup"]
    lines.append(
        f"| propagation fused / per view / per view COO | "
        f"{_fmt(propagation['fused']['median_s'])} / {_fmt(propagation['per_view']['median_s'])} "
        f"/ {_fmt(propagation['per_view_coo']['median_s'])} s | per view / fused | "
        f"{_fmt(speedup['value'])} | {speedup['target']} | {speedup['met']} |"
    )
    for row in figures["eval"]["by_chunk"]:
        lines.append(
            f"| full-ranking eval, chunk {row['chunk']} ({row['users_per_batch']} users/batch) | "
            f"{_fmt(row['time_s'])} s, +{_fmt(row['rss_increase_mib'])} MiB"
            + (f", GPU {_fmt(row['cuda_peak_mib'])} MiB" if row["cuda_peak_mib"] else "")
            + " | - | - | - | - |"
        )
    share = ratios["eval_peak_vs_dense_scores"]
    lines.append(
        f"| eval growth | {_fmt(share['bytes_per_score'])} bytes per score of a batch | "
        f"peak / dense scores ({_fmt(figures['eval']['dense_scores_mib'])} MiB) | "
        f"{_fmt(share['value'])} | {share['target']} | {share['met']} |"
    )
    memory = ratios["train_memory_full_size_gib"]
    points = ", ".join(
        f"{p['variant']} x {p['fraction']:g}: {_fmt(p['peak_rss_mib'])} MiB"
        for p in figures["train_memory"]["points"]
    )
    lines.append(
        f"| training memory at full size | {points} | linear fit at fraction 1 | "
        f"{_fmt(memory['value'])} GiB | {memory['target']} GiB | {memory['met']} |"
    )
    lines += [
        "",
        f"Memory model ({figures['train_memory']['memory']}): {figures['train_memory']['model']}.",
    ]
    for diagnosis in report["diagnosis"]:
        lines += ["", f"## Missed: {diagnosis['ratio']}", "", diagnosis["what_it_would_take"]]
        if "parts_s" in diagnosis:
            lines += ["", f"Dominant part: {diagnosis['dominant']}.", ""]
            lines += [
                f"- {part}: {_fmt(seconds)} s" for part, seconds in diagnosis["parts_s"].items()
            ]
        for name, ops in diagnosis["profile"].items():
            lines += ["", f"Top operators ({name}, self time per call):", ""]
            lines += ["| op | ms | share | calls |", "|---|---|---|---|"]
            lines += [
                f"| {op['op']} | {_fmt(op['self_ms'])} | {op['share']:.0%} | {op['calls']} |"
                for op in ops
            ]
    return "\n".join(lines) + "\n"


def write_reports(report: dict, out: Path) -> tuple[Path, Path]:
    """Write ``<stem>.json`` and ``<stem>.md`` into ``out``; their paths."""
    out.mkdir(parents=True, exist_ok=True)
    settings = report["settings"]
    stem = f"perf-{settings['preset']}-{settings['fraction']:g}-{report['machine']['device']}"
    paths = out / f"{stem}.json", out / f"{stem}.md"
    for path, text in zip(paths, (json.dumps(report, indent=2) + "\n", markdown(report))):
        with generate.atomic_path(path) as temporary:
            temporary.write_text(text, encoding="utf-8")
    return paths


# ---- command line --------------------------------------------------------------------------


def _floats(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part]


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m recbole_slmrec.perf.bench``."""
    parser = argparse.ArgumentParser(
        prog="python -m recbole_slmrec.perf.bench",
        description="Measure conversion, loading, training, propagation and evaluation speed "
        "and memory on a synthetic paper-scale dataset; write JSON and Markdown reports.",
    )
    parser.add_argument("--preset", choices=sorted(generate.PRESETS), default="kwai")
    parser.add_argument("--fraction", type=float, default=0.1, help="of the preset (0.1)")
    parser.add_argument(
        "--memory-fractions",
        type=_floats,
        default=[0.05],
        help="further fractions for the training-memory fit (default 0.05)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=2048, help="train_batch_size")
    parser.add_argument("--n-layers", type=int, default=3)
    parser.add_argument("--embedding-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--no-epoch", action="store_true", help="skip the epoch timing")
    parser.add_argument("--repeats", type=int, default=5, help="timed propagations")
    parser.add_argument(
        "--eval-chunks",
        type=_ints,
        default=[2**18, 2**19, 2**20],
        help="eval_batch_size values (scores per batch)",
    )
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--threads", type=int, help="torch threads (default: the cores)")
    parser.add_argument(
        "--work", type=Path, default=Path("dataset/perf"), help="data folder (dataset/perf)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/perf"), help="report folder"
    )
    parser.add_argument(
        "--in-process", action="store_true", help="measure in this process (quick checks)"
    )
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark of the command line ``argv``; print the Markdown report."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in (__name__, "recbole_slmrec.perf"):  # __name__ is __main__ under ``-m``
        logging.getLogger(name).setLevel(logging.INFO)
    if args.stage:
        spec = json.loads(args.stage)
        Path(spec["result_file"]).write_text(json.dumps(run_stage_here(spec)))
        return 0
    bench = Bench(args)
    torch.set_num_threads(bench.threads)
    logger.info(f"torch threads: {bench.threads} (the cores); device: {bench.device}")
    report = {
        "machine": describe_machine(bench.device, bench.threads),
        "settings": {
            "preset": args.preset,
            "fraction": args.fraction,
            "spec": asdict(generate.scale(generate.PRESETS[args.preset], args.fraction)),
            "memory_fractions": args.memory_fractions,
            "batch_size": args.batch_size,
            "n_layers": args.n_layers,
            "embedding_size": args.embedding_size,
            "steps": args.steps,
            "warmup": args.warmup,
            "repeats": args.repeats,
            "in_process": args.in_process,
        },
    }
    report |= measure(bench)
    json_path, md_path = write_reports(report, args.out)
    print(markdown(report))
    print(f"written: {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
