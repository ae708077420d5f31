"""Accuracy predictor: a candidate's fine-tuned accuracy from its features, with an uncertainty.

Three feature sets (``encoding``), one per moment of the search:

- ``ParamEncoding``, before a candidate is evaluated: the search's own parameters
  (architecture knobs per stage, policy knobs per layer group; numbers as they are,
  booleans 0/1, categories by their index) plus the log of its predicted latency. The
  predictor-guided sampler screens thousands of candidates with it.
- ``CheapFidelityEncoding``, once the cheap fidelity is measured (accuracy with inherited
  weights and recalibrated batch norm, about a second): that accuracy alone. The fine-tune
  gate uses it to decide whether a proposed candidate is worth its fine-tune.
- ``FirstEpochEncoding``, once the first epoch of the fine-tune has run: the accuracy then
  (a rung, as in successive halving). The gate uses it to decide whether the rest of the
  fine-tune is worth running.

Each encoding names its model. For the search parameters a Gaussian process (scikit-learn;
Matern 5/2 kernel plus noise on standardised features), whose predictive standard deviation
is the uncertainty the search explores with: from a few dozen trials it ranks better than
tree ensembles, and it bends where accuracy collapses at 2 bits, which a line cannot
(``docs/decisions.md``); given earlier runs' trials on the same base (``--learn-from``,
``prior.py``), gradient boosting on those and this run's trials gives the mean
(``PriorInformed``). For the cheap accuracy and the accuracy after the first epoch a
Bayesian linear regression (its predictive standard deviation the uncertainty). A
predictor's quality on trials it has not seen is measured two ways: k-fold
cross-validation on the trials it is fitted on, and, more honestly, its prediction for each
trial made *before* that trial's fine-tune (recorded with the trial) against what the trial
measured.
"""

from __future__ import annotations

import math
import pickle
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.stats import kendalltau
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
from sklearn.linear_model import BayesianRidge
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from autocompress.errors import UserInputError

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from autocompress.search.prior import PriorTrials

MIN_CV_TRIALS = 6


def encode_value(value: Any, choices: Sequence) -> float:
    if isinstance(value, (bool, int, float)):
        return float(value)
    return float(list(choices).index(value))


def _log_latency(latency_ms: Sequence[float]) -> list[float]:
    return [math.log(max(lat, 1e-9)) for lat in latency_ms]


def gaussian_process(seed: int) -> Pipeline:
    kernel = ConstantKernel() * Matern(nu=2.5) + WhiteKernel()
    return make_pipeline(StandardScaler(), GaussianProcessRegressor(
        kernel, normalize_y=True, n_restarts_optimizer=2, random_state=seed))


class PriorInformed(RegressorMixin, BaseEstimator):
    """Mean from gradient boosting on earlier runs' trials and this run's together; spread from
    the Gaussian process on this run's trials alone (how far a candidate lies from what this
    run measured: what the search explores by). The earlier runs' many trials rank the
    space far better than this run's few do (``docs/decisions.md``).
    """

    def __init__(self, prior_features: np.ndarray | None = None, prior_accuracy: np.ndarray | None = None,
                 seed: int = 0) -> None:
        self.prior_features = prior_features
        self.prior_accuracy = prior_accuracy
        self.seed = seed

    def fit(self, features: np.ndarray, accuracy: np.ndarray) -> PriorInformed:
        self.boosting_ = GradientBoostingRegressor(n_estimators=300, max_depth=3, learning_rate=0.05, subsample=0.8,
                                                   random_state=self.seed).fit(
            np.vstack([self.prior_features, features]), np.concatenate([self.prior_accuracy, accuracy]))
        self.process_ = gaussian_process(self.seed).fit(features, accuracy)
        return self

    def predict(self, features: np.ndarray, return_std: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        mean = self.boosting_.predict(features)
        if not return_std:
            return mean
        return mean, self.process_.predict(features, return_std=True)[1]


class ParamEncoding:
    """Features known before a candidate is evaluated: its search parameters and log latency;
    with ``prior`` (earlier runs' trials, ``--learn-from``) the model learns from those too."""

    def __init__(self, choices: Mapping[str, list], prior: PriorTrials | None = None) -> None:
        self.names = sorted(choices)
        self.choices = {name: list(choices[name]) for name in self.names}
        self.prior_features = None if prior is None else self.matrix(prior.params, prior.latency_ms)
        self.prior_accuracy = None if prior is None else np.asarray(prior.accuracy, dtype=float)

    @property
    def description(self) -> str:
        features = "standardised search parameters + log latency"
        if self.prior_features is None:
            return f"Gaussian process (Matern 5/2 + noise) on {features}"
        return (f"gradient boosting on {features}, fitted on {len(self.prior_features)} trials of earlier runs "
                "and this run's (mean), Gaussian process on this run's (spread)")

    def matrix(self, params: Sequence[Mapping[str, Any]], latency_ms: Sequence[float],
               measured_accuracy: Sequence[float] | None = None) -> np.ndarray:
        rows = [[encode_value(p[name], self.choices[name]) for name in self.names] + [log_lat]
                for p, log_lat in zip(params, _log_latency(latency_ms), strict=True)]
        return np.asarray(rows, dtype=float).reshape(len(rows), len(self.names) + 1)

    def new_model(self, seed: int) -> Pipeline | PriorInformed:
        if self.prior_features is None:
            return gaussian_process(seed)
        return PriorInformed(self.prior_features, self.prior_accuracy, seed)


class CheapFidelityEncoding:
    """The one feature known once the cheap fidelity is measured: the accuracy before
    fine-tuning, in a Bayesian linear regression: that accuracy carries the signal, and a
    line in it ranks the fine-tuned accuracy better than a Gaussian process on it and a
    compression summary (``docs/decisions.md``).
    """

    measured = "before fine-tuning"
    description = "Bayesian linear regression on the accuracy before fine-tuning"

    def matrix(self, params: Sequence[Mapping[str, Any]], latency_ms: Sequence[float],
               measured_accuracy: Sequence[float] | None = None) -> np.ndarray:
        if measured_accuracy is None:
            raise ValueError(f"this predictor needs each candidate's accuracy {self.measured}")
        return np.asarray(measured_accuracy, dtype=float).reshape(-1, 1)

    @staticmethod
    def new_model(seed: int) -> BayesianRidge:
        return BayesianRidge()


class FirstEpochEncoding(CheapFidelityEncoding):
    """The accuracy after the first epoch of the candidate's own fine-tune (batch norm
    recalibrated on a copy), in the same Bayesian line: it ranks the fine-tuned accuracy
    better than the accuracy before fine-tuning does, or as well (``docs/decisions.md``).
    """

    measured = "after the first fine-tune epoch"
    description = "Bayesian linear regression on the accuracy after the first fine-tune epoch"


Encoding = ParamEncoding | CheapFidelityEncoding


class AccuracyPredictor:
    """Fine-tuned accuracy from a candidate's features (``encoding``); see the module docstring."""

    def __init__(self, encoding: Encoding, seed: int = 0) -> None:
        self.encoding, self.seed = encoding, seed
        self.model: Pipeline | BayesianRidge | PriorInformed | None = None
        self.trained_on = 0

    @property
    def description(self) -> str:
        return self.encoding.description

    def fit(self, params: Sequence[Mapping[str, Any]], latency_ms: Sequence[float], accuracy: Sequence[float],
            measured_accuracy: Sequence[float] | None = None) -> AccuracyPredictor:
        features = self.encoding.matrix(params, latency_ms, measured_accuracy)
        with warnings.catch_warnings():  # a length scale at its bound is a fit, not an error
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model = self.encoding.new_model(self.seed).fit(features, np.asarray(accuracy, dtype=float))
        self.trained_on = len(accuracy)
        return self

    def predict(self, params: Sequence[Mapping[str, Any]], latency_ms: Sequence[float],
                measured_accuracy: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of the predicted accuracy."""
        if self.model is None:
            raise RuntimeError("the predictor is not fitted")
        mean, std = self.model.predict(self.encoding.matrix(params, latency_ms, measured_accuracy), return_std=True)
        return np.asarray(mean), np.asarray(std)

    def cross_validated(self, params: Sequence[Mapping[str, Any]], latency_ms: Sequence[float],
                        accuracy: Sequence[float],
                        measured_accuracy: Sequence[float] | None = None) -> dict[str, float] | None:
        """Kendall tau and mean absolute error of 5-fold out-of-fold predictions (None if too few)."""
        if len(accuracy) < MIN_CV_TRIALS:
            return None
        folds = KFold(n_splits=min(5, len(accuracy)), shuffle=True, random_state=self.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            features = self.encoding.matrix(params, latency_ms, measured_accuracy)
            predicted = cross_val_predict(self.encoding.new_model(self.seed), features,
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


@dataclass(frozen=True)
class FineTuned:
    """What the fine-tuned trials teach the predictors: parameters, LUT latency, fine-tuned and
    cheap-fidelity accuracy, one entry per trial."""

    params: list[dict[str, Any]]
    latency: list[float]
    accuracy: list[float]
    accuracy_before: list[float]
    accuracy_first_epoch: list[float | None]
    """None for a trial fine-tuned for one epoch, or recorded before this was measured."""

    @classmethod
    def of(cls, finished: list[FrozenTrial]) -> FineTuned:
        attrs = [t.user_attrs for t in finished]
        return cls([t.params for t in finished], [float(a["latency_ms"]) for a in attrs],
                   [float(a["accuracy"]) for a in attrs], [float(a["accuracy_before"]) for a in attrs],
                   [None if a.get("accuracy_first_epoch") is None else float(a["accuracy_first_epoch"]) for a in attrs])

    def with_first_epoch(self) -> FineTuned:
        """The trials that have an accuracy after their first epoch."""
        keep = [i for i, value in enumerate(self.accuracy_first_epoch) if value is not None]
        return FineTuned(*([column[i] for i in keep] for column in (
            self.params, self.latency, self.accuracy, self.accuracy_before, self.accuracy_first_epoch)))


def screening_predictor(encoding: ParamEncoding, seed: int, fine_tuned: FineTuned,
                        pruned: list[FrozenTrial]) -> AccuracyPredictor:
    """The predictor a proposal screens with, fitted on the fine-tuned trials and the ``pruned``
    ones at the accuracy the gate predicted for them last: without those it would keep
    proposing the region the gate just turned down."""
    pruned_accuracy = [float(t.user_attrs["predicted_accuracy_cheap"]
                             if t.user_attrs.get("predicted_accuracy_first_epoch") is None
                             else t.user_attrs["predicted_accuracy_first_epoch"]) for t in pruned]
    return AccuracyPredictor(encoding, seed).fit(
        fine_tuned.params + [t.params for t in pruned],
        fine_tuned.latency + [float(t.user_attrs["latency_ms"]) for t in pruned],
        fine_tuned.accuracy + pruned_accuracy)


def quality(predicted: Sequence[float], measured: Sequence[float]) -> dict[str, float]:
    """Kendall tau (rank agreement), mean absolute error and count of predictions vs measurements."""
    predicted, measured = np.asarray(predicted, dtype=float), np.asarray(measured, dtype=float)
    tau = kendalltau(predicted, measured).statistic if len(measured) > 1 else float("nan")
    return {"kendall_tau": round(float(tau), 4), "mae": round(float(np.mean(np.abs(predicted - measured))), 4),
            "trials": len(measured)}
