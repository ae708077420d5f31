"""Profiles: loading errors are one clear line; a missing entry names itself and the fix."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from autocompress.errors import MissingSignaturesError, UserInputError
from autocompress.hw.accelerator import RULE, modelled_profile
from autocompress.hw.ops import BitsRule
from autocompress.hw.predict import lut_sum, predict
from autocompress.hw.profile import load_profile, save_profile
from autocompress.hw.signatures import candidate_signatures
from autocompress.hw.validate import by_set, flat, score, validation_sets
from autocompress.models.family import family_of
from autocompress.models.space_file import load_space

TINY = Path(__file__).parent / "spaces" / "tiny.yaml"


@pytest.fixture(scope="module")
def tiny():
    return load_space(TINY)


@pytest.fixture()
def saved(tiny, tmp_path):
    path = tmp_path / "acc.json"
    save_profile(modelled_profile(tiny, str(TINY), "acc", 32), path)
    return path


def _rewrite(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_round_trip_and_flags(saved):
    profile = load_profile(saved)
    assert profile.device.name == "acc" and not profile.measured
    assert profile.native_weight_bits == [2, 4, 8, 16]


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(schema_version=99), "schema_version is 99"),
    (lambda d: d.pop("entries"), "entries: Field required"),
    (lambda d: d["device"].pop("name"), "device.name: Field required"),
    (lambda d: d["device"].update(kind="guessed"), "device.kind"),
])
def test_invalid_profiles_get_one_line(saved, change, message):
    _rewrite(saved, change)
    with pytest.raises(UserInputError) as error:
        load_profile(saved)
    text = str(error.value)
    assert "\n" not in text and str(saved) in text and message in text


def test_malformed_and_missing_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": 1, ')
    with pytest.raises(UserInputError, match=r"bad.json: not valid JSON"):
        load_profile(bad)
    with pytest.raises(UserInputError, match=r"nowhere.json: hardware profile not found"):
        load_profile(tmp_path / "nowhere.json")


def test_missing_entries_are_listed_with_the_command(tiny, saved):
    profile = load_profile(saved)
    candidate = family_of(tiny).uniform_candidate(family_of(tiny).largest_arch(), weight_bits=2, activation_bits=8)
    assert predict(candidate, profile, tiny) > 0
    dropped = candidate_signatures(tiny, candidate, RULE)[1:3]
    for signature in dropped:
        del profile.entries[signature.key]
    with pytest.raises(MissingSignaturesError) as error:
        predict(candidate, profile, tiny)
    text = str(error.value)
    assert "\n" not in text and "2 op signature(s)" in text
    assert all(s.key in text for s in dropped)
    assert (f"autocompress profile {TINY} --runtime bitfusion-model --device acc "
            "--threads 1 --batch-size 32 --out hw_profiles/acc.json") in text


def test_the_median_correction_weighs_the_entries_minima(tiny, saved):
    """Ops whose medians were timed in a slow spell: whole networks' medians follow the minima."""
    profile = load_profile(saved)
    rng = random.Random(0)
    entries = {key: entry.model_copy(update={"median_ms": entry.min_ms * rng.uniform(1.0, 2.0)})
               for key, entry in profile.entries.items()}
    profile = profile.model_copy(update={"entries": entries})
    rule = BitsRule.of(profile)
    # the uniform set's 4-bit baselines have no entry in this modelled table of a 2/8-bit space
    sets = {name: candidates for name, candidates in validation_sets(tiny, 12, seed=0).items() if name != "uniform"}
    best_case = [lut_sum(candidate_signatures(tiny, c, rule), profile, tiny, "min") for c in flat(sets)]
    measured = by_set(sets, [{"median": 1.25 * ms + 0.1, "min": ms} for ms in best_case])
    validation, corrections = score(tiny, profile, sets, measured, seconds=0.0)
    assert corrections["min"].per_best_case_lut_ms == 0.0
    assert corrections["median"].per_best_case_lut_ms == pytest.approx(1.25, rel=1e-6)
    for candidate_set in validation.sets.values():
        median = candidate_set.statistics["median"]
        assert median.corrected.kendall_tau == pytest.approx(1.0) and median.corrected.within_10 == 1.0
    fitted = profile.model_copy(update={"corrections": corrections})
    candidate = family_of(tiny).random_candidate(rng)
    expected = 1.25 * lut_sum(candidate_signatures(tiny, candidate, rule), profile, tiny, "min") + 0.1
    assert predict(candidate, fitted, tiny, "median") == pytest.approx(expected, rel=1e-6)
