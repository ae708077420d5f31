"""Every bad input gets one clear line and exit 2, and leaves nothing behind (issue 16).

A corpus of broken inputs of each kind the tool reads, each run through the real CLI in a
fresh working folder: exit status 2, at most three lines, the file or option named, no
traceback, and not one file or folder added, changed or removed. Every case fails before
any base training or Ray start, so the whole corpus takes seconds. (Data files, ``.npz``
and image folders, are covered with ``autocompress/data.py``'s own tests.)
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from autocompress.cli import app
from autocompress.hw.accelerator import modelled_profile
from autocompress.hw.bundle_runner import CSV_FIELDS
from autocompress.hw.ops import BitsRule
from autocompress.hw.profile import save_profile
from autocompress.hw.signatures import space_signatures
from autocompress.models.family import family_of
from autocompress.models.space_file import load_space
from autocompress.run.config import SearchConfig
from autocompress.run.files import RunFiles
from autocompress.run.run import Run
from autocompress.run.trial import Kind, State, Trial
from autocompress.search import cluster

TINY = Path(__file__).parent / "spaces" / "tiny.yaml"
SHIPPED_FP32 = Path(__file__).parents[1] / "hw_profiles" / "cpu-torch-fp32.json"
RUN = "results/r"
FILES = RunFiles(Path(RUN))
"""The run folder's files, relative to the test's working folder."""


# -- valid inputs, each case breaks one thing ---------------------------------------------------
def _make_inputs(root: Path) -> None:
    """tiny.yaml, its complete modelled profile acc.json, a runner CSV for onnxruntime
    (lat.csv) and a finished run ``results/r`` written by hand (no search, no training)."""
    space = load_space(TINY)
    shutil.copy(TINY, root / "tiny.yaml")
    save_profile(modelled_profile(space, "tiny.yaml", "acc", 32), root / "acc.json")
    with (root / "lat.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for signature in space_signatures(space, BitsRule.of_runtime("onnxruntime")):
            writer.writerow({"key": signature.key, "median_ms": 0.2, "min_ms": 0.1, "spread_ms": 0.01,
                             "samples": 30, "runtime": "onnxruntime", "threads": 1, "clock": "thread-cpu",
                             "batch_size": 32, "host_cpu": "test CPU", "host_threads": 2})
    folder = RunFiles(root / RUN)
    folder.models.mkdir(parents=True)
    shutil.copy(root / "acc.json", folder.profile)
    family = family_of(space)
    model = family.build(family.largest_arch())
    torch.save({"state_dict": model.state_dict(), "info": {"accuracy": 0.1}}, folder.base)
    candidate = family.uniform_candidate(family.largest_arch())
    torch.save({"state_dict": model.state_dict(), "candidate": candidate.to_json()}, folder.model_path(0))
    objectives = ["accuracy", "latency_ms"]
    SearchConfig(run="r", space_path="tiny.yaml", space=space.model_dump(), profile_path="acc.json",
                 profile_device="acc", objectives=objectives, sampler="random", trials=1,
                 base_path=str(folder.base)).write(folder.config)
    trial = Trial(number=0, kind=Kind.BASELINE, label="float", state=State.COMPLETE, accuracy=0.5,
                  accuracy_before=0.5, latency_ms=1.0, size_kb=10.0, candidate_hash=candidate.hash,
                  candidate=candidate.to_json(), duration_s=1.0, finetune_s=0.5)
    Run.open(folder.path).write_tables([trial])
    folder.report.write_text("<html>the good report of yesterday</html>")
    with sqlite3.connect(folder.database) as db:  # the tables Optuna reads first
        db.execute("CREATE TABLE studies (study_id INTEGER PRIMARY KEY, study_name TEXT)")


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("valid")
    _make_inputs(root)
    return root


# -- helpers that break one file --------------------------------------------------------------------
def _write(path: str, content: str | bytes) -> Callable[[Path], None]:
    def change(root: Path) -> None:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    return change


def _bytes(source: str, change: Callable[[bytes], bytes], path: str | None = None) -> Callable[[Path], None]:
    def write(root: Path) -> None:
        (root / (path or source)).write_bytes(change((root / source).read_bytes()))
    return write


def _yaml(change: Callable[[dict], None], path: str = "bad.yaml") -> Callable[[Path], None]:
    def write(root: Path) -> None:
        data = yaml.safe_load(TINY.read_text())
        change(data)
        (root / path).write_text(yaml.safe_dump(data))
    return write


def _text(source: str, old: str, new: str, path: str) -> Callable[[Path], None]:
    def write(root: Path) -> None:
        text = (root / source).read_text()
        assert old in text
        (root / path).write_text(text.replace(old, new, 1))
    return write


def _json(source: str, change: Callable[[dict], object], path: str | None = None) -> Callable[[Path], None]:
    def write(root: Path) -> None:
        data = json.loads((root / source).read_text())
        change(data)
        (root / (path or source)).write_text(json.dumps(data))
    return write


def _entries(change: Callable[[dict], None]) -> Callable[[dict], None]:
    def on_profile(data: dict) -> None:
        change(data["entries"])
    return on_profile


def _first_entry(field: str, value: object) -> Callable[[dict], None]:
    return _entries(lambda entries: next(iter(entries.values())).update({field: value}))


def _csv(change: Callable[[list[dict]], list[dict]], path: str = "bad.csv") -> Callable[[Path], None]:
    def write(root: Path) -> None:
        with (root / "lat.csv").open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        rows = change(rows)
        with (root / path).open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
            writer.writeheader()
            writer.writerows(rows)
    return write


def _cell(column: str, value: str, row: int = 0) -> Callable[[list[dict]], list[dict]]:
    def change(rows: list[dict]) -> list[dict]:
        rows[row][column] = value
        return rows
    return change


def _trials(change: Callable[[str], str]) -> Callable[[Path], None]:
    def write(root: Path) -> None:
        path = root / FILES.trials
        path.write_text(change(path.read_text()))
    return write


def _sqlite(statement: str) -> Callable[[Path], None]:
    def write(root: Path) -> None:
        (root / FILES.database).unlink()
        with sqlite3.connect(root / FILES.database) as db:
            db.execute(statement)
    return write


def _nothing(root: Path) -> None:
    """The valid inputs as they are (the case is in its arguments)."""


# -- the corpus ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    kind: str
    name: str
    setup: Callable[[Path], None]
    args: list[str]
    named: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


def _search(space: str = "tiny.yaml", profile: str = "acc.json", *extra: str) -> list[str]:
    return ["search", space, "--profile", profile, "--trials", "1", "--results-dir", "results", *extra]


RESUME = ["search", "--run", "r", "--resume", "--results-dir", "results"]
IMPORT = ["profile", "tiny.yaml", "--runtime", "onnxruntime", "--import", "bad.csv", "--out", "out.json"]
LATIN1 = "# caf\xe9\n".encode("latin-1")

SPACE_CASES = [
    Case("space", "latin-1 comment", _write("bad.yaml", LATIN1 + TINY.read_bytes()), _search("bad.yaml"), "bad.yaml"),
    Case("space", "binary", _write("bad.yaml", bytes(range(256))), _search("bad.yaml"), "bad.yaml"),
    Case("space", "duplicate top key", _write("bad.yaml", TINY.read_text() + "name: other\n"),
         _search("bad.yaml"), "duplicate key 'name'"),
    Case("space", "duplicate nested key", _text("tiny.yaml", "image_size: 8,", "image_size: 8, image_size: 16,",
                                                "bad.yaml"), _search("bad.yaml"), "duplicate key 'image_size'"),
    Case("space", "inf temperature", _yaml(lambda d: d.update(training={"distill_temperature": float("inf")})),
         _search("bad.yaml"), "training.distill_temperature"),
    Case("space", "nan lr", _yaml(lambda d: d.update(training={"lr": float("nan")})),
         _search("bad.yaml"), "training.lr"),
    Case("space", "inf val_fraction", _yaml(lambda d: d["data"].update(val_fraction=float("-inf"))),
         _search("bad.yaml"), "data.val_fraction"),
    Case("space", "nan sparsity", _yaml(lambda d: d["choices"]["layer"].update(sparsity=[0.0, float("nan")])),
         _search("bad.yaml"), "choices.layer.sparsity"),
    Case("space", "negative seed", _yaml(lambda d: d["data"].update(seed=-1)), _search("bad.yaml"), "data.seed"),
    Case("space", "huge seed", _yaml(lambda d: d["data"].update(seed=2**40)), _search("bad.yaml"), "data.seed"),
    Case("space", "unhashable key", _write("bad.yaml", TINY.read_text() + "? [a, b]\n: 1\n"), _search("bad.yaml"),
         "bad.yaml"),
    Case("space", "unknown key", _yaml(lambda d: d.update(colour="red")), _search("bad.yaml"), "colour"),
    Case("space", "a list", _write("bad.yaml", "- 1\n- 2\n"), _search("bad.yaml"), "bad.yaml"),
    Case("space", "empty", _write("bad.yaml", ""), _search("bad.yaml"), "bad.yaml"),
    Case("space", "YAML syntax", _write("bad.yaml", "name: [tiny\n"), _search("bad.yaml"), "bad.yaml"),
    Case("space", "missing", _nothing, _search("nowhere.yaml"), "nowhere.yaml"),
    Case("space", "a folder", _write("folder.yaml/x", ""), _search("folder.yaml"), "folder.yaml"),
    Case("space", "profile command, duplicate key", _write("bad.yaml", TINY.read_text() + "name: other\n"),
         ["profile", "bad.yaml", "--runtime", "bitfusion-model", "--out", "out.json"], "bad.yaml"),
    Case("space", "train-base, inf", _yaml(lambda d: d.update(training={"lr": float("inf")})),
         ["train-base", "bad.yaml", "--base-dir", "results/_base"], "training.lr"),
]

PROFILE_CASES = [
    Case("profile", "not JSON", _write("bad.json", '{"schema_version": 1,'), _search(profile="bad.json"), "bad.json"),
    Case("profile", "not UTF-8", _write("bad.json", b'{"device": "caf\xe9"}'), _search(profile="bad.json"),
         "bad.json"),
    Case("profile", "a list", _write("bad.json", "[1, 2]"), _search(profile="bad.json"), "bad.json"),
    Case("profile", "Infinity latency", _json("acc.json", _first_entry("median_ms", float("inf")), "bad.json"),
         _search(profile="bad.json"), "bad.json"),
    Case("profile", "overflowing latency", _text("acc.json", '"min_ms": ', '"min_ms": 1e999, "x": ', "bad.json"),
         _search(profile="bad.json"), "bad.json"),
    Case("profile", "NaN correction",
         _json("acc.json", lambda d: d.update(corrections={"median": {
             "intercept": float("nan"), "per_lut_ms": 1, "per_op": 0, "per_transition": 0}}), "bad.json"),
         _search(profile="bad.json"), "bad.json"),
    Case("profile", "negative latency", _json("acc.json", _first_entry("median_ms", -1.0), "bad.json"),
         _search(profile="bad.json"), "median_ms"),
    Case("profile", "zero latency", _json("acc.json", _first_entry("min_ms", 0.0), "bad.json"),
         _search(profile="bad.json"), "min_ms"),
    Case("profile", "zero samples", _json("acc.json", _first_entry("samples", 0), "bad.json"),
         _search(profile="bad.json"), "samples"),
    Case("profile", "measured but modelled", _json("acc.json", lambda d: d["device"].update(kind="measured"),
                                                   "bad.json"), _search(profile="bad.json"), "device.kind"),
    Case("profile", "modelled but a CPU runtime",
         _json("acc.json", lambda d: d["device"].update(runtime="torch-fp32"), "bad.json"),
         _search(profile="bad.json"), "device.kind"),
    Case("profile", "modelled without a formula", _json("acc.json", lambda d: d.update(model={}), "bad.json"),
         _search(profile="bad.json"), "formula"),
    Case("profile", "negative native bits", _json("acc.json", lambda d: d.update(native_weight_bits=[-4, 8]),
                                                  "bad.json"), _search(profile="bad.json"), "native_weight_bits"),
    Case("profile", "no threads", _json("acc.json", lambda d: d["device"].update(threads=0), "bad.json"),
         _search(profile="bad.json"), "device.threads"),
    Case("profile", "entries missing", _json("acc.json", _entries(lambda e: [e.pop(k) for k in list(e)[::3]]),
                                             "bad.json"), _search(profile="bad.json"), "bad.json"),
    Case("profile", "made for another space", _nothing, _search(profile=str(SHIPPED_FP32)), "cpu-torch-fp32.json"),
    Case("profile", "schema 3", _json("acc.json", lambda d: d.update(schema_version=3), "bad.json"),
         _search(profile="bad.json"), "schema_version"),
    Case("profile", "missing", _nothing, _search(profile="nowhere.json"), "nowhere.json"),
]

CSV_CASES = [
    Case("csv", "missing", _nothing, [*IMPORT[:5], "nowhere.csv", *IMPORT[6:]], "nowhere.csv"),
    Case("csv", "not UTF-8", _bytes("lat.csv", lambda b: LATIN1 + b, "bad.csv"), IMPORT, "bad.csv"),
    Case("csv", "another table", _write("bad.csv", "name,score\nada,3\n"), IMPORT, "missing columns"),
    Case("csv", "no rows", _write("bad.csv", ",".join(CSV_FIELDS) + "\n"), IMPORT, "no rows"),
    Case("csv", "inf time", _csv(_cell("median_ms", "inf")), IMPORT, "median_ms"),
    Case("csv", "nan time", _csv(_cell("min_ms", "nan", 3)), IMPORT, "line 5"),
    Case("csv", "negative time", _csv(_cell("min_ms", "-0.1")), IMPORT, "min_ms"),
    Case("csv", "zero time", _csv(_cell("median_ms", "0")), IMPORT, "median_ms"),
    Case("csv", "text time", _csv(_cell("median_ms", "fast")), IMPORT, "median_ms"),
    Case("csv", "zero samples", _csv(_cell("samples", "0")), IMPORT, "samples"),
    Case("csv", "unknown signature", _csv(_cell("key", "conv/9x9x9/o9/k9/s1/g1/bn")), IMPORT, "unknown op"),
    Case("csv", "half the signatures", _csv(lambda rows: rows[::2]), IMPORT, "without a row"),
    Case("csv", "unknown runtime", _csv(_cell("runtime", "tpu")), IMPORT, "bad.csv"),
    Case("csv", "unknown clock", _csv(_cell("clock", "sundial")), IMPORT, "clock"),
    Case("csv", "threads not a number", _csv(_cell("threads", "many")), IMPORT, "threads"),
    Case("csv", "network rows with a gap",
         _csv(lambda rows: rows + [{**rows[0], "key": "net/0"}, {**rows[0], "key": "net/2"}]), IMPORT, "net/"),
    Case("csv", "bad --device name", _nothing, [*IMPORT[:5], "lat.csv", "--device", "my device"], "--device"),
]


def _learning_run(prior_table: str | None) -> Callable[[Path], None]:
    """Run ``r`` as if made with ``--learn-from``, its frozen table of earlier trials as given (None: missing)."""
    def write(root: Path) -> None:
        _json(str(FILES.config), lambda d: d.update(learn_from=["results/earlier"]))(root)
        if prior_table is not None:
            (root / FILES.prior_trials).write_text(prior_table)
    return write


RUN_CASES = [
    Case("run", "resume: table of earlier trials missing", _learning_run(None), RESUME, FILES.prior_trials.name),
    Case("run", "resume: table of earlier trials broken",
         _learning_run('run,number,params,latency_ms,accuracy\nearlier,0,{"x": 1},1.0,0.5\n'), RESUME,
         f"{FILES.prior_trials.name}: line 2"),
    Case("run", "resume: config a list", _write(str(FILES.config), "[]"), RESUME, FILES.config.name),
    Case("run", "resume: config empty", _write(str(FILES.config), ""), RESUME, FILES.config.name),
    Case("run", "resume: config truncated", _bytes(str(FILES.config), lambda b: b[:50]), RESUME, FILES.config.name),
    Case("run", "resume: config missing fields", _json(str(FILES.config), lambda d: d.pop("space")),
         RESUME, FILES.config.name),
    Case("run", "resume: config not UTF-8", _write(str(FILES.config), b"\xff\xfe{}"), RESUME, FILES.config.name),
    Case("run", "resume: config gone", lambda r: (r / FILES.config).unlink(), RESUME, "results/r"),
    Case("run", "resume: corrupt storage", _write(str(FILES.database), b"SQLite format 2\x00" + bytes(200)),
         RESUME, FILES.database.name),
    Case("run", "resume: storage of something else", _sqlite("CREATE TABLE invoices (id INTEGER)"),
         RESUME, FILES.database.name),
    Case("run", "resume: corrupt base", _write(str(FILES.base), b"PK\x03\x04 not a torch file"),
         RESUME, FILES.base.name),
    Case("run", "resume: base of another network",
         lambda r: torch.save({"state_dict": {"w": torch.zeros(1)}, "info": {}}, r / FILES.base),
         RESUME, FILES.base.name),
    Case("run", "resume: base gone", lambda r: (r / FILES.base).unlink(), RESUME, FILES.base.name),
    Case("run", "resume: profile broken", _write(str(FILES.profile), "{"), RESUME, FILES.profile.name),
    Case("run", "report: config a list", _write(str(FILES.config), "[1]"), ["report", RUN], FILES.config.name),
    Case("run", "report: config missing fields", _json(str(FILES.config), lambda d: d.pop("objectives")),
         ["report", RUN], FILES.config.name),
    Case("run", "report: trial table another table", _write(str(FILES.trials), "name,score\nada,3\n"),
         ["report", RUN], FILES.trials.name),
    Case("run", "report: trial table not UTF-8", _bytes(str(FILES.trials), lambda b: b + b"\xe9\n"),
         ["report", RUN], FILES.trials.name),
    Case("run", "report: unknown state", _trials(lambda t: t.replace("COMPLETE", "DONE")), ["report", RUN],
         FILES.trials.name),
    Case("run", "report: trial number text", _trials(lambda t: t.replace("\n0,", "\nzero,")), ["report", RUN],
         FILES.trials.name),
    Case("run", "report: candidate not JSON", _trials(lambda t: t.replace('"{', '"<', 1)), ["report", RUN],
         FILES.trials.name),
    Case("run", "report: trial table emptied", _write(str(FILES.trials), ""), ["report", RUN], FILES.trials.name),
    Case("run", "report: profile not JSON", _write(str(FILES.profile), "{"), ["report", RUN],
         FILES.profile.name),
    Case("run", "export: corrupt trial model", _write(str(FILES.model_path(0)), b"\x80\x04garbage"),
         ["export", RUN, "--trial", "0"], FILES.model_path(0).name),
    Case("run", "export: trial model of another network",
         lambda r: torch.save({"state_dict": {}, "candidate": "{}"}, r / FILES.model_path(0)),
         ["export", RUN, "--trial", "0"], FILES.model_path(0).name),
    Case("run", "export: --out is a file", _write("out.txt", "x"), ["export", RUN, "--trial", "0", "--out", "out.txt"],
         "--out"),
    Case("run", "export: not a trial", _nothing, ["export", RUN, "--trial", "99"], "trial 99"),
    Case("run", "compare: --out is a file", _write("out.txt", "x"), ["compare", RUN, RUN, "--out", "out.txt"],
         "--out"),
    Case("run", "report: not a run", _nothing, ["report", "results/nothing"], "results/nothing"),
]

OPTION_CASES = [
    Case("option", "time budget 0", _nothing, _search("tiny.yaml", "acc.json", "--time-budget", "0"), "--time-budget"),
    Case("option", "time budget 0m0s", _nothing, _search("tiny.yaml", "acc.json", "--time-budget", "0m0s"),
         "--time-budget"),
    Case("option", "time budget words", _nothing, _search("tiny.yaml", "acc.json", "--time-budget", "soon"),
         "--time-budget"),
    Case("option", "max latency -5", _nothing, _search("tiny.yaml", "acc.json", "--max-latency-ms", "-5"),
         "--max-latency-ms"),
    Case("option", "max latency nan", _nothing, _search("tiny.yaml", "acc.json", "--max-latency-ms", "nan"),
         "--max-latency-ms"),
    Case("option", "max latency inf", _nothing, _search("tiny.yaml", "acc.json", "--max-latency-ms", "inf"),
         "--max-latency-ms"),
    Case("option", "max size 0", _nothing, _search("tiny.yaml", "acc.json", "--max-size-kb", "0"), "--max-size-kb"),
    Case("option", "negative seed", _nothing, _search("tiny.yaml", "acc.json", "--seed", "-1"), "--seed"),
    Case("option", "huge seed", _nothing, _search("tiny.yaml", "acc.json", "--seed", str(2**33)), "--seed"),
    Case("option", "run outside", _nothing, _search("tiny.yaml", "acc.json", "--run", "../../etc"), "--run"),
    Case("option", "nested run", _nothing, _search("tiny.yaml", "acc.json", "--run", "a/b"), "--run"),
    Case("option", "run _base", _nothing, _search("tiny.yaml", "acc.json", "--run", "_base"), "--run"),
    Case("option", "hidden run", _nothing, _search("tiny.yaml", "acc.json", "--run", ".r"), "--run"),
    Case("option", "resume outside", _nothing, ["search", "--run", "../r", "--resume"], "--run"),
    Case("option", "address port out of range", _nothing,
         _search("tiny.yaml", "acc.json", "--address", "nonsense:99999"), "--address"),
    Case("option", "address without port", _nothing, _search("tiny.yaml", "acc.json", "--address", "head"),
         "--address"),
    Case("option", "address nobody answers", _nothing,
         _search("tiny.yaml", "acc.json", "--address", "127.0.0.1:9"), "--address"),
    Case("option", "results dir a file", _write("res.txt", "x"),
         ["search", "tiny.yaml", "--profile", "acc.json", "--trials", "1", "--results-dir", "res.txt"],
         "--results-dir"),
    Case("option", "run exists", _nothing, _search("tiny.yaml", "acc.json", "--run", "r"), "results/r"),
    Case("option", "learn from no run", _nothing, _search("tiny.yaml", "acc.json", "--learn-from", "results/no"),
         "--learn-from results/no"),
    Case("option", "learn from a run on another base", _nothing,
         _search("tiny.yaml", "acc.json", "--learn-from", RUN), "another base network"),
    Case("option", "learn with another sampler", _nothing,
         _search("tiny.yaml", "acc.json", "--sampler", "random", "--learn-from", RUN), "--learn-from"),
    Case("option", "learn from on resume", _nothing, ["search", "--run", "r", "--resume", "--learn-from", RUN],
         "--learn-from"),
    Case("option", "unknown sampler", _nothing, _search("tiny.yaml", "acc.json", "--sampler", "genius"), "--sampler"),
    Case("option", "profile --out a folder", _write("outdir/keep", ""),
         ["profile", "tiny.yaml", "--runtime", "bitfusion-model", "--out", "outdir"], "--out"),
    Case("option", "profile --validate 3", _nothing,
         ["profile", "tiny.yaml", "--runtime", "torch-fp32", "--validate", "3", "--out", "o.json"], "--validate"),
    Case("option", "bundle into a file", _write("bundle", "x"),
         ["profile", "tiny.yaml", "--runtime", "onnxruntime", "--export-bundle", "bundle"], "--export-bundle"),
]

CORPUS = SPACE_CASES + PROFILE_CASES + CSV_CASES + RUN_CASES + OPTION_CASES


def _snapshot(root: Path) -> dict[str, str]:
    """Every file (by content) and folder under ``root``."""
    return {str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
            for path in root.rglob("*")}


@pytest.fixture()
def workdir(template, tmp_path, monkeypatch) -> Path:
    root = tmp_path / "work"
    shutil.copytree(template, root)
    monkeypatch.chdir(root)
    return root


def _invoke(args: list[str]):
    return CliRunner().invoke(app, args)


@pytest.mark.parametrize("case", CORPUS, ids=str)
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(case: Case, workdir: Path) -> None:
    case.setup(workdir)
    before = _snapshot(workdir)
    result = _invoke(case.args)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, (result.output, result.exception)
    assert "Traceback" not in result.output
    assert 1 <= len(lines) <= 3, result.output
    assert case.named in result.output, result.output
    assert _snapshot(workdir) == before


SUBPROCESS = ["profile:Infinity latency", "run:export: corrupt trial model"]


@pytest.mark.parametrize("name", SUBPROCESS)
def test_the_real_command_prints_just_the_line(name: str, workdir: Path) -> None:
    """As a user runs it (no test runner catching warnings): stderr is the one line."""
    case = next(case for case in CORPUS if str(case) == name)
    case.setup(workdir)
    result = subprocess.run([sys.executable, "-m", "autocompress", *case.args], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}, timeout=120)
    assert result.returncode == 2 and result.stdout == "", result
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr


def test_corpus_covers_every_kind() -> None:
    counts = {kind: sum(case.kind == kind for case in CORPUS) for kind in ("space", "profile", "csv", "run", "option")}
    assert sum(counts.values()) >= 60 and min(counts.values()) >= 10, counts


def test_the_valid_inputs_pass(workdir: Path) -> None:
    """The corpus breaks valid inputs: unbroken, the same CSV imports and the run reads."""
    result = _invoke(["profile", "tiny.yaml", "--runtime", "onnxruntime", "--import", "lat.csv", "--out", "o.json"])
    assert result.exit_code == 0, result.output

    from autocompress.hw.predict import check_covers
    from autocompress.hw.profile import load_profile
    from autocompress.search.setup import open_run

    check_covers(load_profile(workdir / "o.json"), load_space(TINY), workdir / "o.json")
    check_covers(load_profile(workdir / "acc.json"), load_space(TINY), workdir / "acc.json")
    assert len(Run.open(workdir / RUN).complete) == 1
    open_run(workdir / RUN)


def test_yaml_anchors_and_merge_keys_are_no_duplicates(tmp_path: Path) -> None:
    from autocompress.inputs import load_yaml

    path = tmp_path / "merge.yaml"
    path.write_text("base: &b {x: 1, y: 1}\nother:\n  <<: *b\n  x: 2\n")
    assert load_yaml(path, "file") == {"base": {"x": 1, "y": 1}, "other": {"x": 2, "y": 1}}


def test_locked_study_db_is_named(workdir: Path) -> None:
    with sqlite3.connect(workdir / FILES.database, isolation_level=None) as db:
        db.execute("BEGIN EXCLUSIVE")
        result = _invoke(RESUME)
        db.execute("ROLLBACK")
    assert result.exit_code == 2 and "study.db: locked by another process" in result.output, result.output


def test_a_refused_second_driver_keeps_the_running_ones_pid(workdir: Path) -> None:
    lock = workdir / RUN / ".lock"
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        handle.write("4242\n")
        handle.flush()
        result = _invoke(RESUME)
        assert lock.read_text() == "4242\n"
    assert result.exit_code == 2 and "another search (pid 4242) is running" in result.output, result.output


def test_nothing_is_left_when_setup_fails_after_creating_the_folder(workdir: Path, monkeypatch) -> None:
    """A failure (here Ctrl-C) while the base is trained removes the new run folder."""
    from autocompress.search import setup

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(setup, "ensure_base", interrupted)
    before = _snapshot(workdir)
    result = _invoke(_search("tiny.yaml", "acc.json", "--run", "new"))
    assert result.exit_code == 130, result.output  # what typer gives Ctrl-C
    assert _snapshot(workdir) == before


_DRIVER = """
import os, subprocess, sys, time
from pathlib import Path
from autocompress.search import cluster
cluster.record_driver(Path(sys.argv[1]))
# Killed before Ray is up: a stand-in for one of its agents, in a session Ray names session_<date>_<driver pid>.
agent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)",
                          f"--session-dir=/tmp/ray/session_2026-01-01_00-00-00_000000_{os.getpid()}"])
print(agent.pid, flush=True)
time.sleep(120)
"""


def test_ray_left_by_a_driver_killed_during_start_up_is_killed_by_the_next(tmp_path: Path) -> None:
    record = tmp_path / "ray_processes.json"
    driver = subprocess.Popen([sys.executable, "-c", _DRIVER, str(record)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    agent = int(driver.stdout.readline())
    other_session = f"--session-dir=/tmp/ray/session_2026-01-01_00-00-00_000000_{driver.pid}1"
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", other_session])
    try:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        assert _alive(agent)
        assert cluster.kill_leftovers(record) == 1 and not record.exists()
        deadline = time.monotonic() + 5
        while _alive(agent) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(agent) and _alive(bystander.pid)
    finally:
        for pid in (agent, bystander.pid):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        bystander.wait()


def _alive(pid: int) -> bool:
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
