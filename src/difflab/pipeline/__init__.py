"""Filling run directories: train one config (:func:`train_run`) or many at once (:func:`train_many`)."""

from difflab.pipeline.many import batch_key, sweep_key, train_many
from difflab.pipeline.single import initial_model, train_run

__all__ = ["batch_key", "initial_model", "sweep_key", "train_many", "train_run"]
