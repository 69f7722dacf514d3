"""Trainers: RecBole's own, with safe checkpoints and a per-epoch history."""

from __future__ import annotations

from logging import getLogger
from time import perf_counter
from typing import Any

from recbole.utils import get_trainer as recbole_get_trainer
from recbole.utils import set_color

from recbole_slmrec.compat import (
    checkpoint_state,
    load_checkpoint,
    prepare_checkpoint_dir,
    save_checkpoint,
)
from recbole_slmrec.distributed import barrier, broadcast_object, deferred_wrapping, wrap_model


class PluginTrainerMixin:
    """Adds to a RecBole trainer what the plugin's protocol needs.

    * Checkpoints hold tensors and plain types, and are read with ``weights_only=True``.
    * ``history`` records, per epoch, the training loss and time and the validation result and
      time; ``best_epoch`` is the epoch whose weights the best checkpoint holds.
    * With several processes, the model is wrapped for the CPU as well as for GPUs, every rank
      uses rank 0's checkpoint file name, and ranks wait for that file before reading it.
    """

    def __init__(self, config, model):
        prepare_checkpoint_dir(config)
        with deferred_wrapping(config):
            super().__init__(config, model)
        if not config["single_spec"]:
            self.model, self.distributed_model = wrap_model(self.model, config)
            self.saved_model_file = broadcast_object(self.saved_model_file, config)
        self.history: list[dict[str, Any]] = []
        self.best_epoch: int | None = None

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        start = perf_counter()
        loss = super()._train_epoch(train_data, epoch_idx, loss_func, show_progress)
        total = sum(loss) if isinstance(loss, tuple) else loss
        self.history.append(
            {"epoch": epoch_idx, "train_loss": float(total), "train_time": perf_counter() - start}
        )
        return loss

    def _valid_epoch(self, valid_data, show_progress=False):
        start = perf_counter()
        score, result = super()._valid_epoch(valid_data, show_progress=show_progress)
        if self.history:
            self.history[-1]["valid_time"] = perf_counter() - start
            self.history[-1]["valid_score"] = float(score)
            self.history[-1]["valid_result"] = {k: float(v) for k, v in result.items()}
        return score, result

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        if not self.config["single_spec"] and self.config["local_rank"] != 0:
            return
        path = kwargs.pop("saved_model_file", self.saved_model_file)
        save_checkpoint(checkpoint_state(self, epoch), path)
        self.best_epoch = epoch
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {path}")

    def resume_checkpoint(self, resume_file):
        resume_file = str(resume_file)
        self.saved_model_file = resume_file
        checkpoint = load_checkpoint(resume_file, self.device)
        self.start_epoch = checkpoint["epoch"] + 1
        self.cur_step = checkpoint["cur_step"]
        self.best_valid_score = checkpoint["best_valid_score"]
        if checkpoint["config"]["model"].lower() != self.config["model"].lower():
            self.logger.warning(
                f"Checkpoint {resume_file} was written by model {checkpoint['config']['model']}, "
                f"not {self.config['model']}; loading its weights may fail."
            )
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.load_other_parameter(checkpoint.get("other_parameter"))
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")

    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if not eval_data:
            return None
        if load_best_model:
            barrier(self.config)
            path = model_file or self.saved_model_file
            checkpoint = load_checkpoint(path, self.device)
            self.model.load_state_dict(checkpoint["state_dict"])
            self.model.load_other_parameter(checkpoint.get("other_parameter"))
            self.logger.info(f"Loading model structure and parameters from {path}")
        return super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)


_TRAINERS: dict[type, type] = {}


def get_trainer(model_type, model_name: str) -> type:
    """RecBole's trainer for ``model_name``, extended by :class:`PluginTrainerMixin`.

    Args:
        model_type: the model's ``ModelType``.
        model_name: the model's name, as RecBole uses it to find a dedicated trainer.

    Returns:
        A trainer class that takes ``(config, model)``.
    """
    base = recbole_get_trainer(model_type, model_name)
    if base not in _TRAINERS:
        _TRAINERS[base] = type(f"Plugin{base.__name__}", (PluginTrainerMixin, base), {})
        getLogger(__name__).debug(f"trainer {base.__name__} extended with safe checkpoints")
    return _TRAINERS[base]
