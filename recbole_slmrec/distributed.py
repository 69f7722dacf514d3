"""Training with several processes through ``torch.distributed``, on CPUs or GPUs.

RecBole 1.2.1 trains with several processes (``DistributedDataParallel``, one process per
rank), but hard-codes the NCCL backend, which needs one GPU per process, and wraps the model
for GPUs only. This module lets RecBole's own distributed trainer run anywhere:

* :func:`init_distributed_device` (called by :class:`recbole_slmrec.config.Config`) joins the
  process group with NCCL when every local process can have its own GPU, and with gloo on the
  CPU otherwise;
* :func:`wrap_model` wraps the model for either device, leaving out of DDP's broadcasts the
  buffers that every rank derives from the same files (the graph, the item features);
* :func:`run_distributed` spawns the processes, like RecBole's ``run``, sets each one's torch
  threads from the cores it shares, and returns rank 0's result with every local rank's
  metrics beside it.

What each rank computes (local batches, gathered metrics) is described in
``docs/DISTRIBUTED.md``.
"""

from __future__ import annotations

import os
import pickle
import socket
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from logging import StreamHandler, getLogger
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from recbole.utils import init_logger
from torch import nn
from torch.nn.parallel import DistributedDataParallel

GLOO = "gloo"
NCCL = "nccl"

#: What every local rank reports to the parent, for comparison across ranks.
RANK_KEYS = ("best_valid_score", "best_valid_result", "test_result")

_SPAWN_ERRORS = (mp.ProcessRaisedException, mp.ProcessExitedException)


def available_cores() -> int:
    """The number of CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def threads_per_process(nproc: int, cores: int | None = None) -> int:
    """Torch threads for each of ``nproc`` processes sharing ``cores`` (default: all).

    Each process gets its share of the cores and at least one: OpenMP threads that outnumber
    the cores wait for each other, and a process then runs many times slower.
    """
    return max(1, (cores or available_cores()) // max(1, nproc))


def choose_backend(nproc: int, use_gpu: bool) -> str:
    """NCCL when each of the ``nproc`` local processes can have its own GPU, gloo otherwise.

    Args:
        nproc: processes on this machine.
        use_gpu: whether the configuration allows GPUs (``use_gpu`` and a ``gpu_id``).

    Returns:
        ``"nccl"`` or ``"gloo"``.
    """
    gpus = torch.cuda.device_count() if use_gpu and torch.cuda.is_available() else 0
    if gpus >= nproc and dist.is_nccl_available():
        return NCCL
    if gpus:
        getLogger(__name__).warning(
            f"{nproc} processes but {gpus} visible GPU(s) (gpu_id) or no NCCL in this torch "
            "build: training on the CPU with gloo. Set gpu_id to one GPU per process for NCCL."
        )
    return GLOO


def free_port(ip: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``ip`` now (the OS picks it)."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind((ip, 0))
        return int(sock.getsockname()[1])


def init_distributed_device(config: dict[str, Any]) -> None:
    """Join the process group and choose this rank's device; RecBole's ``_init_device`` part.

    Sets ``device`` (``cuda:<local_rank>`` with NCCL, the CPU with gloo), ``backend`` and
    ``single_spec`` (False). Ranks other than local rank 0 log errors only and show no progress,
    as in RecBole. A process that already belongs to a group keeps it.

    Args:
        config: the final configuration dict, holding the group (``local_rank``, ``world_size``,
            ``ip``, ``port``, ``nproc``, ``offset``), ``use_gpu`` and ``gpu_id``.
    """
    # as RecBole: gpu_id "0,1" (or a tuple) names the GPUs that this machine's ranks may use
    gpu_id = config["gpu_id"]
    config["gpu_id"] = ",".join(map(str, gpu_id)) if isinstance(gpu_id, tuple) else str(gpu_id)
    os.environ["CUDA_VISIBLE_DEVICES"] = config["gpu_id"]
    local_rank = config["local_rank"]
    use_gpu = bool(config["use_gpu"]) and len(config["gpu_id"]) > 0
    backend = choose_backend(config["nproc"], use_gpu)
    if not dist.is_initialized():
        dist.init_process_group(
            backend=backend,
            rank=local_rank + config["offset"],
            world_size=config["world_size"],
            init_method=f"tcp://{config['ip']}:{config['port']}",
        )
    backend = dist.get_backend()
    if backend == NCCL:
        torch.cuda.set_device(local_rank)
        config["device"] = torch.device("cuda", local_rank)
    else:
        config["device"] = torch.device("cpu")
    config["backend"] = backend
    config["single_spec"] = False
    if local_rank != 0:
        config["state"] = "error"
        config["show_progress"] = False
        config["verbose"] = False


def is_main_process(config) -> bool:
    """Whether this process writes the logs and checkpoints: a single process, or local rank 0."""
    return config["single_spec"] or config["local_rank"] == 0


def init_process_logger(config) -> None:
    """RecBole's logger (console and log file) for the main process; the console alone else.

    In a distributed run, the main process logs the group: ranks, backend, device and threads.
    """
    if not is_main_process(config):
        handler = StreamHandler()
        handler.setLevel("ERROR")
        getLogger().setLevel("ERROR")
        getLogger().addHandler(handler)
        return
    init_logger(config)
    if not config["single_spec"]:
        getLogger(__name__).info(
            f"rank {config['local_rank'] + config['offset']} of {config['world_size']} "
            f"({config['nproc']} on this machine), backend {config['backend']}, device "
            f"{config['device']}, {torch.get_num_threads()} torch thread(s) per process of "
            f"{available_cores()} cores"
        )


@contextmanager
def deferred_wrapping(config) -> Iterator[None]:
    """Present a single-process configuration while RecBole's trainer is built.

    RecBole's trainer wraps the model in ``DistributedDataParallel`` with ``device_ids`` set,
    which works for GPU modules only; :func:`wrap_model` wraps it afterwards for any device.
    """
    single_spec = config["single_spec"]
    config["single_spec"] = True
    try:
        yield
    finally:
        config["single_spec"] = single_spec


def derived_buffers(model: nn.Module) -> list[str]:
    """Names of the buffers that every rank builds from the data: non-persistent or sparse."""
    names = []
    for prefix, module in model.named_modules():
        for name, buffer in module.named_buffers(recurse=False):
            if name in module._non_persistent_buffers_set or buffer.layout != torch.strided:
                names.append(f"{prefix}.{name}" if prefix else name)
    return names


def wrap_model(model: nn.Module, config) -> tuple[nn.Module, DistributedDataParallel]:
    """Wrap ``model`` in ``DistributedDataParallel`` for its device, as RecBole's trainer uses it.

    RecBole's trainer computes the loss on the unwrapped model and adds every parameter times
    zero to it (``sync_grad_loss``), so each parameter receives a gradient on every rank and
    DDP's reducer averages all of them, used or not (the FAC heads under ``ssl_task: FD``, for
    example); ``find_unused_parameters`` is not needed. The graph and feature buffers are
    identical on every rank and are left out of DDP's broadcasts (:func:`derived_buffers`).

    Args:
        model: the model, on ``config["device"]``.
        config: the configuration of a distributed run.

    Returns:
        The model (with synchronised batch norm on GPUs, as in RecBole) and its DDP wrapper.
    """
    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
        model, derived_buffers(model)
    )
    if config["device"].type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return model, DistributedDataParallel(model, device_ids=[config["device"].index])
    return model, DistributedDataParallel(model)


def broadcast_object(value: Any, config) -> Any:
    """Rank 0's ``value`` on every rank; ``value`` itself in a single process."""
    if config["single_spec"]:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def barrier(config) -> None:
    """Wait for every rank; nothing in a single process."""
    if not config["single_spec"]:
        dist.barrier()


def _worker(local_rank: int, queue, threads: int, run_args: dict[str, Any]) -> None:
    """One spawned rank: train and evaluate, then send the result to the parent.

    Local rank 0 sends its whole result; the others send their metrics, for comparison.
    Exceptions are sent as well (so the parent can raise the user's error) and raised again.
    """
    # quick_start dispatches here, so it can only be imported once the package is loaded
    from recbole_slmrec.quick_start import run

    torch.set_num_threads(threads)
    run_args["config_dict"]["local_rank"] = local_rank
    try:
        result = run(**run_args)
    except Exception as error:
        if _survives_pickling(error):
            queue.put((local_rank, error))
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    queue.put((local_rank, result if local_rank == 0 else {k: result[k] for k in RANK_KEYS}))


def _survives_pickling(error: Exception) -> bool:
    """Whether ``error`` can travel to the parent (some exceptions cannot be rebuilt)."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return False
    return True


def _collect(context, queue, nproc: int) -> dict[int, Any]:
    """Read the ranks' messages while they run (a full pipe would block a sender) until all end."""
    messages: dict[int, Any] = {}

    def drain() -> None:
        while not queue.empty():
            rank, message = queue.get()
            messages[rank] = message

    try:
        while True:
            drain()
            if context.join(timeout=0.2):
                break
    except _SPAWN_ERRORS as spawn_error:
        drain()
        errors = [m for _, m in sorted(messages.items()) if isinstance(m, Exception)]
        if errors:
            raise errors[0] from spawn_error
        raise
    drain()
    if len(messages) != nproc:
        raise RuntimeError(f"{nproc - len(messages)} of {nproc} ranks sent no result")
    return messages


def run_distributed(
    model: str | type,
    dataset: str,
    config_file_list: Sequence[str] | None = None,
    config_dict: dict | None = None,
    saved: bool = True,
    cmd_args: Sequence[str] | None = None,
    nproc: int = 2,
    world_size: int = -1,
    ip: str = "127.0.0.1",
    port: int | None = None,
    group_offset: int = 0,
) -> dict[str, Any]:
    """Train and evaluate with ``nproc`` processes on this machine, RecBole's distributed way.

    The dataset is checked (and a missing demo dataset built) once, here, before the processes
    start. Each process gets ``cores // nproc`` torch threads.

    Args:
        model, dataset, config_file_list, config_dict, saved, cmd_args: as for
            :func:`recbole_slmrec.quick_start.run`.
        nproc: processes on this machine.
        world_size: processes on all machines; ``-1`` for ``nproc`` (this machine alone).
        ip: address of the machine that holds global rank 0.
        port: a free TCP port on that machine; ``None`` picks one (this machine alone).
        group_offset: global rank of this machine's local rank 0.

    Returns:
        Local rank 0's result (see :func:`~recbole_slmrec.quick_start.run`), plus
        ``rank_results``: ``{local_rank: {"best_valid_score", "best_valid_result",
        "test_result"}}`` for every local rank.

    Raises:
        ValueError: if ``port`` is missing for several machines, or the sizes disagree.
    """
    from recbole_slmrec.quick_start import prepare_config

    world_size = nproc if world_size == -1 else world_size
    if nproc < 1 or world_size < nproc + group_offset or group_offset < 0:
        raise ValueError(
            f"nproc {nproc}, world_size {world_size} and group_offset {group_offset}: expected "
            "nproc >= 1 and 0 <= group_offset <= world_size - nproc"
        )
    if port is None:
        if world_size != nproc:
            raise ValueError("--port is needed when the processes span several machines")
        port = free_port(ip)
    prepare_config(model, dataset, config_file_list, config_dict, cmd_args)

    threads = threads_per_process(nproc)
    getLogger(__name__).info(
        f"{nproc} processes of world size {world_size} at {ip}:{port}, "
        f"{threads} torch thread(s) each ({available_cores()} cores)"
    )
    group = {"world_size": world_size, "ip": ip, "port": port, "nproc": nproc}
    run_args = {
        "model": model,
        "dataset": dataset,
        "config_file_list": config_file_list,
        "config_dict": {**(config_dict or {}), **group, "offset": group_offset},
        "saved": saved,
        "cmd_args": cmd_args,
    }
    queue = mp.get_context("spawn").SimpleQueue()
    context = mp.start_processes(
        _worker, args=(queue, threads, run_args), nprocs=nproc, join=False, start_method="spawn"
    )
    messages = _collect(context, queue, nproc)
    result = dict(messages[0])
    result["rank_results"] = {
        rank: {key: message[key] for key in RANK_KEYS} for rank, message in sorted(messages.items())
    }
    return result
