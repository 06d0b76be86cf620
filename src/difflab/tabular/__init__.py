"""Tables in the scikit-learn / SDV style: :class:`TabularDiffusion` (fit a DataFrame, sample rows like it) and
simple baselines to compare generated tables with (:mod:`difflab.tabular.baselines`)."""

from difflab.tabular.estimator import TabularDiffusion

__all__ = ["TabularDiffusion"]
