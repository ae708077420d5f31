"""Accuracy predictor: a candidate's fine-tuned accuracy from its encoding, with an uncertainty.

Features are the search's own parameters (architecture knobs per stage, policy knobs per
layer group; numbers as they are, booleans 0/1, categories by their index among the
choices) plus the log of the candidate's predicted latency, a cheap summary of its size.
The model is a Gaussian process (scikit-learn; Matern 5/2 kernel plus noise on standardised
features), whose predictive standard deviation is the uncertainty the predictor-guided
search explores with. Chosen by measurement: on 160 held-out candidates of the tiny test
space with an accuracy that falls smoothly with bits and pruning, fitted on 20 / 40
candidates, Kendall tau was 0.80 / 0.99 for the GP against 0.39 / 0.49 for extra-trees,
0.37 / 0.53 for a random forest and 0.33 / 0.51 for gradient boosting (5 repetitions; a
linear Bayesian ridge matched the GP there but cannot bend where accuracy collapses at
2 bits). Its quality on trials it has
not seen is measured two ways: k-fold cross-validation on the trials it is fitted on, and,
more honestly, its prediction for each searched trial made *before* that trial was
evaluated (the ``predicted_accuracy`` recorded with the trial) against what it measured.
"""

from __future__ import annotations

import math
import pickle
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import kendalltau
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from autocompress.errors import UserInputError

MIN_CV_TRIALS = 6
DESCRIPTION = "Gaussian process (Matern 5/2 + noise) on standardised search parameters + log latency"


def encode_value(value: Any, choices: Sequence) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    return float(list(choices).index(value))


class AccuracyPredictor:
    """Fine-tuned accuracy from (search parameters, predicted latency); see the module docstring."""

    def __init__(self, choices: Mapping[str, list], seed: int = 0) -> None:
        self.names = sorted(choices)
        self.choices = {name: list(choices[name]) for name in self.names}
        self.seed = seed
        self.model: Pipeline | None = None
        self.trained_on = 0

    def features(self, params: Sequence[Mapping[str, Any]], latency_ms: Sequence[float]) -> np.ndarray:
        rows = [[encode_value(p[name], self.choices[name]) for name in self.names] + [math.log(max(lat, 1e-9))]
                for p, lat in zip(params, latency_ms, strict=True)]
        return np.asarray(rows, dtype=float).reshape(len(rows), len(self.names) + 1)

    def _new_model(self) -> Pipeline:
        kernel = ConstantKernel() * Matern(nu=2.5) + WhiteKernel()
        return make_pipeline(StandardScaler(), GaussianProcessRegressor(
            kernel, normalize_y=True, n_restarts_optimizer=2, random_state=self.seed))

    def fit(self, params: Sequence[Mapping[str, Any]], latency_ms: Sequence[float],
            accuracy: Sequence[float]) -> AccuracyPredictor:
        with warnings.catch_warnings():  # a length scale at its bound is a fit, not an error
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model = self._new_model().fit(self.features(params, latency_ms), np.asarray(accuracy, dtype=float))
        self.trained_on = len(accuracy)
        return self

    def predict(self, params: Sequence[Mapping[str, Any]],
                latency_ms: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of the predicted accuracy."""
        if self.model is None:
            raise RuntimeError("the predictor is not fitted")
        mean, std = self.model.predict(self.features(params, latency_ms), return_std=True)
        return np.asarray(mean), np.asarray(std)

    def cross_validated(self, params: Sequence[Mapping[str, Any]], latency_ms: Sequence[float],
                        accuracy: Sequence[float]) -> dict[str, float] | None:
        """Kendall tau and mean absolute error of 5-fold out-of-fold predictions (None if too few)."""
        if len(accuracy) < MIN_CV_TRIALS:
            return None
        folds = KFold(n_splits=min(5, len(accuracy)), shuffle=True, random_state=self.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            predicted = cross_val_predict(self._new_model(), self.features(params, latency_ms),
                                          np.asarray(accuracy, dtype=float), cv=folds)
        return quality(predicted, accuracy)

    def save(self, path: Path) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(pickle.dumps(self))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> AccuracyPredictor:
        try:
            predictor = pickle.loads(Path(path).read_bytes())
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError) as error:
            raise UserInputError(f"{path}: not a readable accuracy predictor ({type(error).__name__})") from None
        if not isinstance(predictor, cls):
            raise UserInputError(f"{path}: holds a {type(predictor).__name__}, not an accuracy predictor")
        return predictor


def quality(predicted: Sequence[float], measured: Sequence[float]) -> dict[str, float]:
    """Kendall tau (rank agreement), mean absolute error and count of predictions vs measurements."""
    predicted, measured = np.asarray(predicted, dtype=float), np.asarray(measured, dtype=float)
    tau = kendalltau(predicted, measured).statistic if len(measured) > 1 else float("nan")
    return {"kendall_tau": round(float(tau), 4), "mae": round(float(np.mean(np.abs(predicted - measured))), 4),
            "trials": len(measured)}
