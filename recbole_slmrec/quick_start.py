"""Train and evaluate a model on a dataset, RecBole style, for plugin and RecBole models."""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from logging import getLogger
from typing import Any

from recbole.data import create_dataset, data_preparation
from recbole.utils import init_seed, set_color

from recbole_slmrec.compat import check_environment, silence_known_warnings
from recbole_slmrec.config import Config
from recbole_slmrec.data.demo import DEMO_DATASETS, prepare_demo
from recbole_slmrec.distributed import init_process_logger, run_distributed
from recbole_slmrec.trainer import get_trainer
from recbole_slmrec.utils import get_model


class DatasetNotFoundError(FileNotFoundError):
    """The dataset folder, or one of its interaction files, does not exist."""


class UnsafeCacheError(RuntimeError):
    """A pickled RecBole cache is present, or asked for; RecBole would unpickle it."""


def refuse_pickled_caches(config: Config) -> None:
    """Refuse RecBole's dataset and dataloader caches: RecBole loads them with full pickle.

    ``create_dataset`` unpickles ``<checkpoint_dir>/<dataset>-<DatasetClass>.pth`` (or
    ``dataset_save_path``) and ``data_preparation`` unpickles
    ``<checkpoint_dir>/<dataset>-for-<model>-dataloader.pth`` (or ``dataloaders_save_path``)
    whenever such a file exists, which would run any code the file carries.

    Raises:
        UnsafeCacheError: naming the file or the key.
    """
    for key in ("save_dataset", "save_dataloaders"):
        if config[key]:
            raise UnsafeCacheError(
                f"`{key}` is True, but RecBole writes that cache with pickle and a later run "
                "would unpickle it; set it to False (the dataset is rebuilt from its files)"
            )
    caches = glob.glob(
        os.path.join(
            glob.escape(config["checkpoint_dir"]), f"{glob.escape(config['dataset'])}-*.pth"
        )
    )
    caches += [config[key] for key in ("dataset_save_path", "dataloaders_save_path") if config[key]]
    for path in caches:
        if os.path.exists(path):
            raise UnsafeCacheError(
                f"{path} looks like a pickled RecBole cache, which RecBole would unpickle and so "
                "run; delete or move it (the dataset is rebuilt from its files)"
            )


def build_missing_demo(config: Config) -> bool:
    """Build a built-in demo dataset whose folder is missing; returns whether it did."""
    name, folder = config["dataset"], config["data_path"]
    if os.path.isdir(folder) or name not in DEMO_DATASETS:
        return False
    getLogger(__name__).info(f"Building the demo dataset [{name}] in {folder}")
    prepare_demo(name, os.path.dirname(os.path.normpath(folder)))
    return True


def check_dataset(config: Config) -> None:
    """Make sure the dataset's files exist before RecBole would try to download them.

    Raises:
        DatasetNotFoundError: naming the dataset, the folder and the missing file, and saying
            how to make them.
    """
    name = config["dataset"]
    folder = config["data_path"]
    how = (
        "Convert a public release with `python -m atomic_data_tools --input SRC "
        f"--name {name} --output {folder}` (see docs/CONVERTERS.md), or point --data_path at "
        f"the folder that holds {name}/. Built-in demo datasets: {', '.join(DEMO_DATASETS)}."
    )
    if not os.path.isdir(folder):
        raise DatasetNotFoundError(
            f"Dataset [{name}] not found: no folder {os.path.abspath(folder)} "
            f"(data_path + dataset). {how}"
        )
    parts = config["benchmark_filename"] or []
    wanted = [f"{name}.{part}.inter" for part in parts] or [f"{name}.inter"]
    for file in wanted:
        if not os.path.isfile(os.path.join(folder, file)):
            raise DatasetNotFoundError(
                f"Dataset [{name}]: {os.path.join(os.path.abspath(folder), file)} does not "
                f"exist. {how}"
            )


def prepare_config(
    model: str | type,
    dataset: str,
    config_file_list: Sequence[str] | None = None,
    config_dict: dict | None = None,
    cmd_args: Sequence[str] | None = None,
) -> Config:
    """The configuration of a run, once a missing demo dataset is built and the files checked.

    Raises:
        DatasetNotFoundError: if the dataset's files do not exist.
        UnsupportedEnvironmentError: if the installed libraries would break the model.
    """
    config = Config(model, dataset, config_file_list, config_dict, cmd_args)
    if build_missing_demo(config):
        # read again, now with the YAML that the new dataset folder carries
        config = Config(model, dataset, config_file_list, config_dict, cmd_args)
    check_environment(config["model"])
    check_dataset(config)
    refuse_pickled_caches(config)
    return config


def run(
    model: str | type,
    dataset: str,
    config_file_list: Sequence[str] | None = None,
    config_dict: dict | None = None,
    saved: bool = True,
    cmd_args: Sequence[str] | None = None,
    nproc: int = 1,
    world_size: int = -1,
    ip: str = "127.0.0.1",
    port: int | None = None,
    group_offset: int = 0,
) -> dict[str, Any]:
    """Train ``model`` on ``dataset``, select on validation and evaluate on test.

    The best validation epoch's weights are restored before the test evaluation. With
    ``nproc > 1`` (or ``world_size > 1``) the run spawns one process per rank through
    :func:`~recbole_slmrec.distributed.run_distributed` (see ``docs/DISTRIBUTED.md``).

    Args:
        model: a model name (the plugin's first, then RecBole's) or a model class.
        dataset: the dataset name; its folder is ``<data_path>/<dataset>``.
        config_file_list: YAML files.
        config_dict: parameter overrides.
        saved: whether to checkpoint the best model (needed to test at the best epoch).
        cmd_args: ``--key=value`` overrides, as from a command line.
        nproc: processes on this machine.
        world_size: processes on all machines; ``-1`` for ``nproc``.
        ip: address of the machine of global rank 0.
        port: its TCP port for the process group; ``None`` picks a free one (one machine).
        group_offset: global rank of this machine's first process.

    Returns:
        A dict with ``best_valid_score``, ``valid_score_bigger``, ``best_valid_result``,
        ``test_result``, ``best_epoch``, ``history`` (per-epoch losses, times and validation
        results), ``model_file`` and ``config`` (the final configuration); with several
        processes, rank 0's, plus ``rank_results`` (every local rank's metrics).
    """
    silence_known_warnings()
    if nproc > 1 or world_size > 1:
        return run_distributed(
            model,
            dataset,
            config_file_list,
            config_dict,
            saved,
            cmd_args,
            nproc=nproc,
            world_size=world_size,
            ip=ip,
            port=port,
            group_offset=group_offset,
        )
    config = prepare_config(model, dataset, config_file_list, config_dict, cmd_args)
    init_seed(config["seed"], config["reproducibility"])
    init_process_logger(config)
    logger = getLogger()
    logger.info(config)

    # dataset filtering and splitting
    data = create_dataset(config)
    logger.info(data)
    train_data, valid_data, test_data = data_preparation(config, data)

    # model loading and initialization
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model_cls = get_model(model)
    net = model_cls(config, train_data._dataset).to(config["device"])
    logger.info(net)

    # training with validation-based early stopping, then test at the best epoch
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net)
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, saved=saved, show_progress=config["show_progress"]
    )
    test_result = trainer.evaluate(
        test_data, load_best_model=saved, show_progress=config["show_progress"]
    )
    logger.info(set_color("best valid ", "yellow") + f": {best_valid_result}")
    logger.info(set_color("test result", "yellow") + f": {test_result}")
    return {
        "best_valid_score": float(best_valid_score),
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": {k: float(v) for k, v in (best_valid_result or {}).items()},
        "test_result": {k: float(v) for k, v in (test_result or {}).items()},
        "best_epoch": trainer.best_epoch,
        "history": trainer.history,
        "model_file": trainer.saved_model_file if saved else None,
        "config": config,
    }
