"""Compatibility with the pinned RecBole 1.2.1, kept in this one module.

RecBole 1.2.1 predates the current releases of its dependencies. The pinned set in
``requirements.txt`` avoids most breakages; this module handles the rest and checks for the
ones that a pin alone cannot prevent, so that an unsupported environment fails loudly at start
instead of training on wrong data:

* ``recbole.quick_start`` imports ray eagerly, and ray fails on numpy 2 and without
  ``pkg_resources``. This package never imports that module (``tests/test_compat.py`` checks).
* RecBole's LightGCN, NGCF and NCL call ``scipy.sparse.dok_matrix._update``, which scipy 1.12
  removed. :func:`check_environment` refuses to run those models without it.
* pandas 3 copy-on-write turns RecBole's in-place ``fillna`` on a column into a silent no-op,
  leaving NaN in float fields. :func:`check_environment` refuses pandas 3 or later, and
  :func:`silence_known_warnings` hides pandas 2's warning about it.
* Importing RecBole's sequential models runs ``torch.autograd.set_detect_anomaly(True)`` (in
  SINE's module), which slows every later backward pass several times over.
  :func:`disable_stray_anomaly_detection` turns it off again, with a warning, for other models.
* torch 2.6 and later load checkpoints with ``weights_only=True`` by default, and RecBole stores
  its ``Config`` object (full pickle) in every checkpoint. :func:`checkpoint_state` builds a
  checkpoint of plain types only, and :func:`load_checkpoint` always reads with
  ``weights_only=True``, whatever the torch version.
* RecBole's trainer creates its checkpoint folder with ``ensure_dir``, which checks for the
  folder and then creates it. Two ranks that start together can both see it missing, and the
  slower one fails with ``FileExistsError``. :func:`prepare_checkpoint_dir` creates the folder
  race-free before RecBole looks for it.
"""

from __future__ import annotations

import enum
import os
import warnings
from logging import getLogger
from typing import Any

import pandas as pd
import scipy.sparse as sp
import torch

#: RecBole models that build their graph with ``dok_matrix._update``.
DOK_UPDATE_MODELS = frozenset({"LightGCN", "NGCF", "NCL", "GCMC", "SpectralCF", "KGIN", "MCCLK"})


class UnsupportedEnvironmentError(RuntimeError):
    """The installed dependency set is known to break RecBole."""


def _has_dok_update() -> bool:
    return hasattr(sp.dok_matrix, "_update")


def check_environment(model_name: str) -> None:
    """Refuse to run ``model_name`` where a known breakage would corrupt it.

    Args:
        model_name: the model about to run.

    Raises:
        UnsupportedEnvironmentError: naming the library, its version and the pinned set to install.
    """
    hint = "install the tested set with `pip install -r requirements.txt`"
    pandas_major = int(pd.__version__.split(".")[0])
    if pandas_major >= 3:
        raise UnsupportedEnvironmentError(
            f"pandas {pd.__version__} is installed, but RecBole 1.2.1 fills missing float "
            f"values with an in-place fillna that pandas >= 3 ignores; {hint} (pandas<3)."
        )
    if model_name in DOK_UPDATE_MODELS and not _has_dok_update():
        raise UnsupportedEnvironmentError(
            f"RecBole's {model_name} needs scipy.sparse.dok_matrix._update, which scipy "
            f"{sp.__version__ if hasattr(sp, '__version__') else ''} no longer has; {hint} "
            "(scipy<1.12)."
        )


def disable_stray_anomaly_detection(model_name: str) -> None:
    """Undo the global anomaly detection that importing RecBole's SINE module turns on.

    Args:
        model_name: the model about to run; SINE itself keeps the setting it asked for.
    """
    if model_name != "SINE" and torch.is_anomaly_enabled():
        torch.autograd.set_detect_anomaly(False)
        getLogger(__name__).warning(
            "RecBole's sequential_recommender package turned on autograd anomaly detection "
            f"(recbole/model/sequential_recommender/sine.py); turned off again for {model_name}."
        )


def silence_known_warnings() -> None:
    """Hide two warnings that RecBole 1.2.1 raises on every run under the pinned set.

    pandas 2.2 warns that RecBole's in-place ``fillna`` will stop working in pandas 3 (it still
    works in 2.x, and :func:`check_environment` refuses 3.x), and torch warns that RecBole
    builds its ``GradScaler`` through a deprecated alias. Only these messages are filtered.
    """
    warnings.filterwarnings(
        "ignore", message="A value is trying to be set on a copy", category=FutureWarning
    )
    warnings.filterwarnings(
        "ignore", message=r"`torch.cuda.amp.GradScaler\(args...\)` is deprecated"
    )


def prepare_checkpoint_dir(config: Any) -> None:
    """Create ``config["checkpoint_dir"]`` if it is missing, safely when ranks race to do it."""
    os.makedirs(config["checkpoint_dir"], exist_ok=True)


def _plain(value: Any) -> Any:
    """Turn a configuration value into types that ``weights_only`` loading accepts."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    return str(value)


def checkpoint_state(trainer: Any, epoch: int) -> dict[str, Any]:
    """The checkpoint of a RecBole trainer, holding tensors and plain types only.

    Args:
        trainer: a RecBole ``Trainer`` with ``model``, ``optimizer`` and ``config``.
        epoch: the epoch that produced the weights.

    Returns:
        The same keys as RecBole's own checkpoint, with ``config`` as a plain dict.
    """
    return {
        "config": _plain(dict(trainer.config.final_config_dict)),
        "epoch": epoch,
        "cur_step": trainer.cur_step,
        "best_valid_score": float(trainer.best_valid_score),
        "state_dict": trainer.model.state_dict(),
        "other_parameter": trainer.model.other_parameter(),
        "optimizer": trainer.optimizer.state_dict(),
    }


def save_checkpoint(state: dict[str, Any], path: str) -> None:
    """Write ``state`` to ``path`` through a temporary file, so no half-written file remains."""
    tmp = f"{path}.tmp"
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_checkpoint(path: str, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Read a checkpoint without full pickle: tensors and plain containers only."""
    return torch.load(path, map_location=device, weights_only=True)
