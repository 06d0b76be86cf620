"""Distillation of a trained run into a student that samples in a few network calls: progressive distillation
(Salimans & Ho 2022) and consistency distillation (Song et al. 2023). It sits above training and the run-directory
format: a teacher run directory in, a student run directory out (:func:`distill_run`)."""

from difflab.distill.consistency import Consistency
from difflab.distill.progressive import Progressive
from difflab.distill.run import distill_run
from difflab.distill.settings import DistillSettings, make_settings

__all__ = ["Consistency", "DistillSettings", "Progressive", "distill_run", "make_settings"]
