"""The accuracy predictor, the predictor-guided sampler and the fine-tune gate, without Ray (an in-memory study)."""

from __future__ import annotations

import csv
import json
import random

import numpy as np
import optuna
import pytest
from scipy.stats import kendalltau

from autocompress.base import build_base
from autocompress.hw.predict import predict
from autocompress.hw.profile import load_profile
from autocompress.models.family import family_of
from autocompress.models.space_file import load_space
from autocompress.pipeline import evaluate_candidate
from autocompress.run.config import Constraints
from autocompress.run.files import RunFiles
from autocompress.search.acquisition import fastest_keeping, hypervolume_gain
from autocompress.search.gate import FinetuneGate, required_accuracy
from autocompress.search.params import search_params, suggest_candidate
from autocompress.search.pool import Screened
from autocompress.search.predictor import AccuracyPredictor, CheapFidelityEncoding, FirstEpochEncoding, ParamEncoding
from autocompress.search.prior import PriorTrials
from autocompress.search.screening import PredictorGuidedSampler
from autocompress.search.worker import TrialEvaluator
from autocompress.tasks.classification import ClassificationTask
from tests.conftest import REPO, bitfusion_profile

SPACE = REPO / "tests" / "spaces" / "search_tiny.yaml"


@pytest.fixture(scope="module")
def space():
    return load_space(SPACE)


@pytest.fixture(scope="module")
def profile(tmp_path_factory):
    return load_profile(bitfusion_profile(SPACE, tmp_path_factory.mktemp("profiles")))


def _synthetic_accuracy(params: dict) -> float:
    """A made-up accuracy that falls with fewer bits and more pruning (what the predictor must learn)."""
    bits = np.mean([v for k, v in params.items() if k.endswith("bits")])
    pruned = np.mean([v for k, v in params.items() if k.endswith(".sparsity")])
    return float(0.5 + 0.4 * bits / 32 - 0.2 * pruned)


def _random_params(space, count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [{name: rng.choice(choices) for name, choices in search_params(space).items()} for _ in range(count)]


def _latencies(space, profile, params: list[dict]) -> list[float]:
    return [predict(suggest_candidate(space, lambda n, _c, p=p: p[n]), profile, space) for p in params]


def test_predictor_learns_the_order_and_round_trips_through_the_run_folder(space, profile, tmp_path):
    params = _random_params(space, 60, seed=0)
    latency = _latencies(space, profile, params)
    accuracy = [_synthetic_accuracy(p) for p in params]
    predictor = AccuracyPredictor(ParamEncoding(search_params(space)), seed=0).fit(
        params[:40], latency[:40], accuracy[:40])
    mean, std = predictor.predict(params[40:], latency[40:])
    assert np.all(std >= 0) and std.max() > 0
    assert kendalltau(mean, accuracy[40:]).statistic > 0.5  # ranks trials it has not seen
    predictor.save(tmp_path / "predictor.pkl")
    loaded = AccuracyPredictor.load(RunFiles(tmp_path).predictor_model("predictor"))
    again, again_std = loaded.predict(params[40:], latency[40:])
    assert np.array_equal(again, mean) and np.array_equal(again_std, std)


def test_a_predictor_that_learns_from_earlier_runs_ranks_unseen_candidates_from_few_of_its_own(
        space, profile, tmp_path):
    """Six trials of its own tell a Gaussian process little; 300 of earlier runs (same base)
    beside them let it rank unseen candidates. Its spread is still this run's: smallest at
    what this run measured."""
    choices = search_params(space)
    earlier, own, unseen = (_random_params(space, count, seed) for count, seed in ((300, 5), (6, 6), (100, 7)))
    prior = PriorTrials(["earlier"] * 300, list(range(300)), earlier, _latencies(space, profile, earlier),
                        [_synthetic_accuracy(p) for p in earlier])
    own_latency, unseen_latency = _latencies(space, profile, own), _latencies(space, profile, unseen)
    truth = [_synthetic_accuracy(p) for p in unseen]
    taus = {}
    for name, encoding in {"alone": ParamEncoding(choices), "learnt": ParamEncoding(choices, prior)}.items():
        predictor = AccuracyPredictor(encoding, seed=0).fit(own, own_latency, [_synthetic_accuracy(p) for p in own])
        taus[name] = kendalltau(predictor.predict(unseen, unseen_latency)[0], truth).statistic
    assert taus["learnt"] > 0.7 and taus["learnt"] > taus["alone"] + 0.2, taus
    assert "300 trials of earlier runs" in predictor.description
    _, own_std = predictor.predict(own, own_latency)
    mean, std = predictor.predict(unseen, unseen_latency)
    assert own_std.max() < np.median(std)
    predictor.save(tmp_path / "predictor.pkl")
    again, again_std = AccuracyPredictor.load(tmp_path / "predictor.pkl").predict(unseen, unseen_latency)
    assert np.array_equal(again, mean) and np.array_equal(again_std, std)
    assert predictor.cross_validated(own, own_latency, [_synthetic_accuracy(p) for p in own]) is not None


def test_a_broken_predictor_file_is_one_clear_error(tmp_path):
    from autocompress.errors import UserInputError

    (tmp_path / "predictor.pkl").write_bytes(b"not a pickle")
    with pytest.raises(UserInputError, match="predictor.pkl: not a readable accuracy predictor"):
        AccuracyPredictor.load(RunFiles(tmp_path).predictor_model("predictor"))


def test_hypervolume_gain_counts_only_what_a_point_adds():
    front = np.array([[0.2, 0.8], [0.6, 0.3]])
    reference = np.array([1.0, 1.0])
    gains = hypervolume_gain(np.array([[0.3, 0.9], [0.1, 0.2], [0.5, 0.5]]), front, reference)
    # the front covers 0.16 + 0.28 - 0.08 = 0.36 of the unit box
    assert gains[0] == 0.0  # dominated by (0.2, 0.8)
    assert gains[1] == pytest.approx(0.9 * 0.8 - 0.36)  # dominates both: its whole box less what they had
    assert gains[2] == pytest.approx(0.1 * 0.3)  # only the strip between the two front points


def test_accuracy_keeping_proposal_is_the_fastest_predicted_within_a_point_of_the_best():
    measured_accuracy = np.array([0.95, 0.90])  # known rows: (1 - accuracy, latency ms)
    known = np.array([[0.05, 10.0], [0.10, 5.0]])
    pool = Screened([{}] * 4, ["a", "b", "c", "d"], latency_ms=np.array([9.0, 6.0, 4.0, 3.0]),
                    mean=np.array([0.945, 0.942, 0.930, 0.945]), std=np.zeros(4))
    assert fastest_keeping(pool, measured_accuracy, known) == 3  # 3 ms at 0.945 beats 6 ms at 0.942
    pool.mean[3] = 0.939  # below 0.95 - 1 point: not keeping
    assert fastest_keeping(pool, measured_accuracy, known) == 1
    in_flight = np.vstack([known, [[0.055, 5.5]]])  # a trial in flight predicted to keep it at 5.5 ms
    assert fastest_keeping(pool, measured_accuracy, in_flight) is None  # nothing predicted faster keeps it


def _told(study: optuna.Study, space, profile, params: dict, kind: str, first_epoch: bool = True) -> None:
    study.enqueue_trial(params, user_attrs={"kind": kind})
    _measured(study, study.ask(), space, profile, first_epoch)


def _measured(study: optuna.Study, trial: optuna.Trial, space, profile, first_epoch: bool = True,
              folder=None) -> None:
    """Tells ``trial`` with its synthetic accuracies, as the driver stores a finished trial
    (without an accuracy after the first epoch if not ``first_epoch``: a one-epoch fine-tune,
    or a run recorded before that was measured), keeping the sampler's output in ``folder``
    after the proposal and after the tell as the driver does."""
    candidate = suggest_candidate(space, trial.suggest_categorical)
    if folder is not None:
        _kept(study, trial, folder)
    accuracy = _synthetic_accuracy(trial.params)
    latency = predict(candidate, profile, space)
    for key, value in {"candidate_hash": candidate.hash, "state": "COMPLETE", "accuracy": accuracy,
                       "accuracy_before": accuracy - 0.1, "latency_ms": latency,
                       **({"accuracy_first_epoch": accuracy - 0.03} if first_epoch else {})}.items():
        trial.set_user_attr(key, value)
    study.tell(trial, [accuracy, latency])
    if folder is not None:
        _kept(study, trial, folder)


def _kept(study: optuna.Study, trial: optuna.Trial, folder) -> None:
    """What the driver does after each ask and tell: the sampler's output set on ``trial`` and
    written to the run ``folder``."""
    output = study.sampler.take_output()
    if output is not None:
        for key, value in output.trial_attrs.items():
            trial.set_user_attr(key, value)
        output.write(RunFiles(folder))


def test_sampler_proposes_an_unseen_candidate_and_hands_over_its_screening(space, profile, tmp_path):
    study = optuna.create_study(directions=["maximize", "minimize"])
    evaluated = _random_params(space, 12, seed=1)
    for params in evaluated:
        _told(study, space, profile, params, "search")
    study.sampler = PredictorGuidedSampler(space, profile, seed=0)
    trial = study.ask()
    trial.set_user_attr("kind", "search")
    proposed = suggest_candidate(space, trial.suggest_categorical)  # the sampler proposes at the first suggest
    assert not list(tmp_path.iterdir())  # and writes nothing itself: the driver keeps its output
    _kept(study, trial, tmp_path)
    seen = {suggest_candidate(space, lambda n, _c, p=p: p[n]).hash for p in evaluated}
    assert proposed.hash not in seen
    predicted = study.trials[-1].user_attrs
    assert 0 < predicted["predicted_accuracy"] < 1 and predicted["predicted_std"] >= 0
    assert trial.user_attrs["predicted_accuracy"] == predicted["predicted_accuracy"]  # what trials.csv is made from
    assert predicted["proposed_by"] in ("accuracy-keeping", "hypervolume", "uncertainty")
    with open(RunFiles(tmp_path).screened) as handle:
        screened = list(csv.DictReader(handle))
    assert [r["candidate_hash"] for r in screened if r["chosen"] == "1"] == [proposed.hash]
    summary = json.loads(RunFiles(tmp_path).predictor_summary.read_text())
    assert summary["fitted_on_trials"] == 12 and summary["last_screening"]["candidates"] > 500
    assert summary["cheap_fidelity"]["fitted_on_trials"] == 12
    assert AccuracyPredictor.load(RunFiles(tmp_path).predictor_model("predictor")).trained_on == 12
    assert AccuracyPredictor.load(RunFiles(tmp_path).predictor_model("cheap_predictor")).trained_on == 12
    assert summary["first_epoch"]["fitted_on_trials"] == 12
    first_epoch = AccuracyPredictor.load(RunFiles(tmp_path).predictor_model("first_epoch_predictor"))
    assert first_epoch.trained_on == 12 and isinstance(first_epoch.encoding, FirstEpochEncoding)
    gate = study.sampler.finetune_gate(trial.number)  # handed to the worker once, with the proposal
    assert gate is not None and gate.params == study.trials[-1].params
    assert gate.first_epoch_predictor is not None
    assert study.sampler.finetune_gate(trial.number) is None


def test_predictor_quality_at_proposal_counts_trials_finished_after_the_last_proposal(space, profile, tmp_path):
    """predictor.json is written at each proposal; the trials in flight then are scored once they finish."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    for params in _random_params(space, 12, seed=1):
        _told(study, space, profile, params, "search")
    study.sampler = PredictorGuidedSampler(space, profile, seed=0)
    for _ in range(2):
        trial = study.ask()
        trial.set_user_attr("kind", "search")
        _measured(study, trial, space, profile, folder=tmp_path)
    summary = json.loads(RunFiles(tmp_path).predictor_summary.read_text())
    assert summary["fitted_on_trials"] == 13  # written at the second proposal, before its trial finished
    assert summary["before_evaluation"]["trials"] == 2


def test_the_gate_judges_after_the_first_epoch_only_once_enough_trials_measured_it(space, profile, tmp_path):
    """A resumed run whose earlier trials have no first-epoch accuracy: the gate has no
    first-epoch line until three finished trials have one."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    for index, params in enumerate(_random_params(space, 12, seed=4)):
        _told(study, space, profile, params, "search", first_epoch=index >= 10)
    study.sampler = PredictorGuidedSampler(space, profile, seed=0)
    trial = study.ask()
    trial.set_user_attr("kind", "search")
    _measured(study, trial, space, profile, folder=tmp_path)  # proposed (its parameters sampled), then finished
    assert study.sampler.finetune_gate(trial.number).first_epoch_predictor is None
    assert json.loads(RunFiles(tmp_path).predictor_summary.read_text())["first_epoch"] is None
    trial = study.ask()
    suggest_candidate(space, trial.suggest_categorical)
    gate = study.sampler.finetune_gate(trial.number)
    assert gate.first_epoch_predictor is not None and gate.first_epoch_predictor.trained_on == 3


def test_fine_tune_gate_turns_down_what_the_cheap_accuracy_shows_cannot_pay(space, profile):
    """Fine-tuned accuracy is the cheap accuracy + 0.1 here: with 0.9 to beat, a candidate
    whose cheap accuracy is 0.5 is not fine-tuned, one at 0.85 is."""
    params = _random_params(space, 30, seed=3)
    latency = _latencies(space, profile, params)
    before = list(np.linspace(0.3, 0.85, len(params)))
    cheap = AccuracyPredictor(CheapFidelityEncoding(), seed=0).fit(
        params, latency, [b + 0.1 for b in before], before)
    gate = FinetuneGate(cheap, params[0], latency[0], required_accuracy=0.9)
    low, high = gate.judge(0.5), gate.judge(0.85)
    assert not low.finetune and "0.9000" in low.reason
    assert high.finetune and high.predicted_accuracy > low.predicted_accuracy
    # the gate judges the expected fine-tuned accuracy: a candidate predicted just below the
    # front is not fine-tuned, however wide its spread (the proposal was the optimistic step)
    noisy = AccuracyPredictor(CheapFidelityEncoding(), seed=0).fit(
        params, latency, [b + 0.1 + e for b, e in zip(before, np.random.default_rng(0).normal(0, 0.02, len(before)),
                                                       strict=True)], before)
    grid = np.linspace(0.7, 0.85, 301)
    mean, std = noisy.predict([params[0]] * len(grid), [latency[0]] * len(grid), list(grid))
    below = float(grid[np.flatnonzero(mean < 0.9)[-1]])
    verdict = FinetuneGate(noisy, params[0], latency[0], required_accuracy=0.9).judge(below)
    assert not verdict.finetune and verdict.predicted_accuracy + verdict.predicted_std > 0.9
    # after the first fine-tune epoch the gate judges again, by its own line, against the same front
    first_epoch = AccuracyPredictor(FirstEpochEncoding(), seed=0).fit(
        params, latency, [b + 0.02 for b in before], before)
    rung = FinetuneGate(cheap, params[0], latency[0], 0.9, first_epoch)
    assert rung.judge(0.85).finetune and not rung.judge_first_epoch(0.85).finetune
    assert rung.judge_first_epoch(0.85).reason.startswith("accuracy after epoch 1 0.8500 predicts 0.8700")
    assert rung.judge_first_epoch(0.89).finetune and gate.judge_first_epoch(0.85) is None
    assert required_accuracy(np.array([0.8, 0.9, 0.95]), np.array([1.0, 2.0, 3.0]), 2.5) == 0.9
    assert required_accuracy(np.array([0.8]), np.array([1.0]), 0.5) == 0.0  # nothing as fast: anything adds


def test_sampler_leaves_queued_baselines_alone(space, profile, tmp_path):
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.sampler = PredictorGuidedSampler(space, profile, seed=0)
    fixed = _random_params(space, 1, seed=2)[0]
    study.enqueue_trial(fixed, user_attrs={"kind": "baseline"})
    trial = study.ask()
    assert suggest_candidate(space, trial.suggest_categorical) == suggest_candidate(space, lambda n, _c: fixed[n])
    _kept(study, trial, tmp_path)
    assert not RunFiles(tmp_path).screened.exists()


def _constant(value: float, space, profile) -> AccuracyPredictor:
    """A gate line that predicts ``value`` whatever it is shown."""
    params = _random_params(space, 4, seed=5)
    latency = _latencies(space, profile, params)
    return AccuracyPredictor(CheapFidelityEncoding(), seed=0).fit(params, latency, [value] * 4, [0.2, 0.4, 0.6, 0.8])


def test_a_worker_stops_a_fine_tune_after_its_first_epoch_when_the_gate_says_it_cannot_pay(space, profile):
    """Two fine-tune epochs: the accuracy after the first is measured on every trial without
    changing the fine-tune, and a gate that judges it too low ends the trial there, PRUNED."""
    family = family_of(space)
    candidate = family.uniform_candidate(family.largest_arch(), weight_bits=8, activation_bits=8)
    base = build_base(space)
    task = ClassificationTask(space)
    evaluator = TrialEvaluator(space, profile.model_dump_json(), task, base.state_dict(), Constraints(), seed=3,
                               finetune_epochs=2, threads=1)
    latency = predict(candidate, profile, space)
    params = {}  # the gate's lines do not read the candidate's parameters

    def gate(first_epoch_says: float) -> FinetuneGate:
        return FinetuneGate(_constant(2.0, space, profile), params, latency, 0.5,
                            _constant(first_epoch_says, space, profile))

    ungated = evaluator.evaluate(candidate.to_json())
    kept = evaluator.evaluate(candidate.to_json(), gate=gate(2.0))
    stopped = evaluator.evaluate(candidate.to_json(), gate=gate(-1.0))
    _, unmeasured = evaluate_candidate(space, candidate, base, task, seed=3, epochs=2)
    assert ungated.state == kept.state == "COMPLETE" and ungated.accuracy == kept.accuracy == unmeasured.accuracy
    assert 0 <= ungated.accuracy_first_epoch == kept.accuracy_first_epoch == stopped.accuracy_first_epoch <= 1
    assert ungated.predicted_accuracy_first_epoch is None and kept.predicted_accuracy_first_epoch == pytest.approx(2.0)
    assert stopped.state == "PRUNED" and stopped.accuracy is None and stopped.state_dict is None
    assert stopped.predicted_accuracy_first_epoch == pytest.approx(-1.0)
    assert stopped.error.startswith("fine-tune stopped after epoch 1: accuracy after epoch 1")
    assert 0 < stopped.finetune_s < kept.finetune_s
    one_epoch = TrialEvaluator(space, profile.model_dump_json(), task, base.state_dict(), Constraints(), seed=3,
                               finetune_epochs=1, threads=1)
    alone = one_epoch.evaluate(candidate.to_json(), gate=gate(-1.0))  # no first epoch to judge before the last
    assert alone.state == "COMPLETE" and alone.accuracy_first_epoch is None
