"""torchvision's CNN classifiers traced, profiled, 50% channel-pruned and searched end to end.

Each model (random weights, 10 classes, 64x64 colour images) runs in a fresh process with a
time limit, so that one failure or hang never stops the rest, through four stages:

(a) ops: the kernels the torch-model family traces for the base network on torch-fp32 (how
    many, their op kinds, how many are fixed ops, i.e. carry no knob) and its channel groups
    (the search groups of its compressible layers; how many can be channel-pruned);
(b) profile: ``autocompress profile`` on torch-fp32, validated on ``--validate`` candidates
    of each set; quoted: the random per-layer set's share within +-10% of the measured
    median and Kendall tau (cross-validated corrected prediction of the median);
(c) pruning: the base network with 50% channel pruning on every prunable layer against the
    unpruned one, timed end to end in interleaved rounds on the profile's runtime, threads
    and batch size (``hw.validate.measure_models``); speed-up = unpruned / pruned median;
(d) search: ``autocompress search --trials 2 --workers 1`` with 1 base epoch and no fine-tune
    (each trial built, its weights inherited from the base, compressed, its batch norm
    recalibrated and evaluated; a fine-tune epoch of every trial at 64x64 would make the
    benchmark hours on two cores) on 200 images; searched = exit status 0 and both trials
    complete.

Every model gets a small space (channel sparsity [0, 0.5], bits [8, 32], full rank) so that
profiling takes minutes: a low-rank factorisation is a truncated SVD of each layer at every
candidate's build, minutes for the 4096x25088 classifier of VGG at 64x64 on this machine.
Prints one table and the bars (``BARS``), writes bench/results/model_zoo.json; each model's
files (space, profile, logs, run) stay in bench/.work/model_zoo/<model>/. A timing benchmark:
run it on an otherwise idle machine.

    .venv/bin/python bench/model_zoo.py                          # the 18 models of MODELS
    .venv/bin/python bench/model_zoo.py --models resnet18 mobilenet_v2
    .venv/bin/python bench/model_zoo.py --models all             # every CNN classifier of torchvision
    .venv/bin/python bench/model_zoo.py --model-file my_model.py:build   # a user's network (3x64x64 input)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / ".work" / "model_zoo"
RUNTIME = "torch-fp32"
MODELS = ("resnet18", "resnet50", "resnext50_32x4d", "wide_resnet50_2", "mobilenet_v2", "mobilenet_v3_small",
          "mobilenet_v3_large", "mnasnet0_5", "shufflenet_v2_x0_5", "squeezenet1_0", "efficientnet_b0",
          "regnet_x_400mf", "regnet_y_400mf", "vgg11_bn", "densenet121", "googlenet", "alexnet", "convnext_tiny")
"""The CNN classifiers of issue 32, benchmarked by default."""
NOT_CNN_AT_64 = re.compile(r"^(vit_|swin_|maxvit_|inception_v3$)")
"""Classifiers ``--models all`` leaves out: transformers, and Inception-v3 (needs 75x75 or more)."""
KNOB_OPS = frozenset({"conv", "linear"})
"""Op kinds that carry a compression knob; every other op is a fixed op."""
STAGES = ("ops", "profile", "pruning", "search")
PER_CLASS = 20
"""Images of each digit in the benchmark's data set (200 in all)."""
SEARCH_TRIALS = 2

SEARCH_BAR = 17 / 18
WITHIN_10_BAR = 0.90
SPEEDUP_BAR = 1.3
SPEEDUP_SHARE_BAR = 0.80
BARS = {
    "search": f"at least {SEARCH_BAR:.1%} of the models (17 of the 18) profile and search end to end",
    "lut": f"on each profiled model, >= {WITHIN_10_BAR:.0%} of the random validation candidates within +-10%",
    "pruning": f"50% channel pruning measures >= {SPEEDUP_BAR}x faster on at least {SPEEDUP_SHARE_BAR:.0%} "
               f"of the models",
}


@dataclass(frozen=True)
class Settings:
    threads: int
    batch_size: int
    validate: int
    timeout_s: int


class StageFailed(Exception):
    """A stage's command failed: the message is the line saying why."""


def last_line(text: str) -> str:
    """The last non-empty line of a command's output (where a CLI's error or a traceback's
    exception is), progress bars' carriage returns counted as line ends."""
    lines = [line.strip() for line in re.split(r"[\r\n]+", text) if line.strip()]
    return lines[-1] if lines else "(no output)"


def one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}" if not isinstance(error, StageFailed) else str(error)


def environment() -> dict[str, str]:
    """This process's environment with this checkout first on the path, for the commands it runs."""
    return os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))}


def cli(args: list[str], log: Path, cwd: Path) -> subprocess.CompletedProcess:
    """``autocompress ARGS`` run to its end, its output kept in ``log``."""
    done = subprocess.run([sys.executable, "-m", "autocompress", *args], cwd=cwd, env=environment(),
                          capture_output=True, text=True)
    log.write_text(f"$ autocompress {' '.join(args)}\n{done.stdout}\n{done.stderr}\nexit status {done.returncode}\n")
    return done


# -- the stages, run in the model's own process ----------------------------------------------------
def traced_ops(space_path: Path) -> dict:
    from autocompress.hw.ops import BitsRule
    from autocompress.models.family import family_of
    from autocompress.models.space_file import load_space

    family = family_of(load_space(space_path))
    ops = family.model_ops(family.build([]), BitsRule.of_runtime(RUNTIME))
    groups: dict[str, bool] = {}
    for spec in family.compressible_layers([]):
        group = family.layer_group(spec.name)
        groups[group] = groups.get(group, True) and spec.channel_prunable
    kinds = {part.call.callee if part.call is not None else part.op for op in ops for part in (op, *op.fused)}
    return {"ops": len(ops), "op_kinds": sorted(kinds),
            "fixed_ops": sum(op.op not in KNOB_OPS for op in ops),
            "channel_groups": len(groups), "prunable_groups": sum(groups.values())}


def profiled(folder: Path, settings: Settings) -> dict:
    from autocompress.hw.profile import load_profile

    out = folder / "profile.json"
    done = cli(["profile", str(folder / "space.yaml"), "--runtime", RUNTIME, "--device", f"zoo-{folder.name}",
                "--out", str(out), "--validate", str(settings.validate), "--threads", str(settings.threads),
                "--batch-size", str(settings.batch_size)], folder / "profile.log", folder)
    if done.returncode != 0:
        raise StageFailed(last_line(done.stderr or done.stdout))
    profile = load_profile(out)
    sets = {name: {"within_10": figures.statistics["median"].corrected.within_10,
                   "kendall_tau": figures.statistics["median"].corrected.kendall_tau,
                   "candidates": figures.candidates}
            for name, figures in profile.validation.sets.items()}
    return {"entries": len(profile.entries), "profiling_seconds": profile.profiling_seconds, "sets": sets,
            "within_10": sets["random"]["within_10"], "kendall_tau": sets["random"]["kendall_tau"]}


def pruning_speedup(space_path: Path, settings: Settings) -> dict:
    from autocompress.hw.validate import measure_models
    from autocompress.models.family import family_of
    from autocompress.models.space_file import load_space

    space = load_space(space_path)
    family = family_of(space)
    candidate = family.uniform_candidate([], sparsity=0.5, sparsity_kind="channel")
    models = [family.build([]), family.build_compressed(candidate)]
    params = [sum(p.numel() for p in model.parameters()) for model in models]
    unpruned, pruned = measure_models(models, RUNTIME, space.input_shape(settings.batch_size), settings.threads)
    return {"pruned_layers": sum(policy.sparsity > 0 for policy in candidate.policy.values()),
            "layers": len(candidate.policy), "params": params, "unpruned_ms": unpruned["median"],
            "pruned_ms": pruned["median"], "speedup": unpruned["median"] / pruned["median"]}


def searched(folder: Path) -> dict:
    from autocompress.run.files import RunFiles
    from autocompress.run.run import Run
    from autocompress.run.trial import Kind, State

    results = folder / "results"
    done = cli(["search", str(folder / "space.yaml"), "--profile", str(folder / "profile.json"),
                "--trials", str(SEARCH_TRIALS), "--workers", "1", "--run", "search", "--results-dir", str(results)],
               folder / "search.log", folder)
    if not RunFiles(results / "search").trials.is_file():
        raise StageFailed(last_line(done.stderr or done.stdout))
    trials = Run.open(results / "search").trials
    states = Counter(str(trial.state) for trial in trials)
    search_complete = sum(t.kind is Kind.SEARCH and t.state is State.COMPLETE for t in trials)
    completed = done.returncode == 0 and search_complete == SEARCH_TRIALS
    failures = [t.error for t in trials if t.state is State.FAIL and t.error]
    reason = None if completed else (
        f"{states.get('FAIL', 0)} trial(s) failed: {last_line(failures[0])}" if failures
        else f"exit status {done.returncode}, {search_complete} of {SEARCH_TRIALS} search trials complete: "
             f"{last_line(done.stderr or done.stdout)}")
    return {"completed": completed, "exit_status": done.returncode, "states": dict(states), "reason": reason}


def bench_one(folder: Path) -> None:
    """Run the stages on the model of ``folder`` (prepared by ``prepare``), in that folder,
    recording each in ``result.json`` as soon as it ends, so that a time-out keeps what was done."""
    os.chdir(folder)
    settings = Settings(**json.loads((folder / "settings.json").read_text()))
    torch.set_num_threads(settings.threads)
    space_path = folder / "space.yaml"
    record: dict = {}
    stages: dict[str, Callable[[], dict]] = {
        "ops": lambda: traced_ops(space_path),
        "profile": lambda: profiled(folder, settings),
        "pruning": lambda: pruning_speedup(space_path, settings),
        "search": lambda: searched(folder),
    }
    for stage, run in stages.items():
        start = time.monotonic()
        if stage == "search" and "error" in record["profile"]:
            record[stage] = {"error": "not run: no profile"}
        else:
            try:
                record[stage] = run()
            except Exception as error:  # a stage's failure is a result, and the next stage still runs
                record[stage] = {"error": one_line(error)}
        record[stage]["seconds"] = round(time.monotonic() - start, 1)
        (folder / "result.json").write_text(json.dumps(record, indent=2))


# -- the driver ------------------------------------------------------------------------------------
MODEL_FILE = '''"""torchvision's {name} as bench/model_zoo.py names it in its space."""

from autocompress.models.torchvision_zoo import build as torchvision_model


def build():
    return torchvision_model({name!r}, num_classes=10)
'''


def prepare(name: str, model_spec: str | None, data: Path, settings: Settings) -> Path:
    """A fresh folder for one model: its model file (unless the user's), space and settings."""
    folder = WORK / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    if model_spec is None:
        (folder / "model.py").write_text(MODEL_FILE.format(name=name))
        model_spec = "model.py:build"  # relative to the folder, where the model's process runs
    space = {
        "name": f"zoo_{name}",
        "data": {"source": f"npz:{data}", "image_size": 64, "channels": 3, "num_classes": 10, "seed": 0},
        "network": {"family": "torch-model", "model": model_spec},
        "choices": {"layer": {"weight_bits": [8, 32], "activation_bits": [8, 32], "sparsity_kind": ["channel"],
                              "sparsity": [0.0, 0.5], "rank_ratio": [1.0], "first_last_min_bits": 8}},
        "training": {"base_epochs": 1, "finetune_epochs": 0, "batch_size": 32},
    }
    (folder / "space.yaml").write_text(yaml.safe_dump(space, sort_keys=False))
    (folder / "settings.json").write_text(json.dumps(asdict(settings)))
    return folder


def finished(name: str, settings: Settings) -> dict | None:
    """The row of ``name`` from an earlier run with the same settings that ended every stage
    (``--reuse``: a benchmark split over processes, or stopped, is assembled without rerunning)."""
    folder = WORK / name
    result, saved = folder / "result.json", folder / "settings.json"
    if not (result.is_file() and saved.is_file()) or json.loads(saved.read_text()) != asdict(settings):
        return None
    record = json.loads(result.read_text())
    if not all(stage in record for stage in STAGES):
        return None
    return {"model": name, "seconds": round(sum(record[stage].get("seconds", 0.0) for stage in STAGES), 1), **record}


def isolated(folder: Path, settings: Settings) -> dict:
    """The stages of one model in a fresh process (and its own process group, killed whole at
    the time limit); a stage it did not finish says why."""
    start = time.monotonic()
    with (folder / "bench.log").open("w") as log:
        process = subprocess.Popen([sys.executable, __file__, "--one", str(folder)], stdout=log,
                                   stderr=subprocess.STDOUT, env=environment(), start_new_session=True)
        try:
            status = process.wait(timeout=settings.timeout_s)
            stopped = f"its process exited with status {status}: {last_line((folder / 'bench.log').read_text())}"
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            stopped = f"timed out after {settings.timeout_s} s"
    result = folder / "result.json"
    record = json.loads(result.read_text()) if result.is_file() else {}
    for stage in STAGES:
        record.setdefault(stage, {"error": f"not finished: {stopped}"})
    return {"model": folder.name, "seconds": round(time.monotonic() - start, 1), **record}


def first_error(row: dict) -> str:
    for stage in STAGES:
        error = row[stage].get("error") or row[stage].get("reason")
        if error:
            return f"{stage}: {error}"
    return ""


def searched_end_to_end(row: dict) -> bool:
    return bool(row["search"].get("completed"))


def cells(row: dict) -> list[str]:
    """The table's figures of one model ('-' where its stage failed)."""
    ops, profile, pruning = row["ops"], row["profile"], row["pruning"]
    traced = "error" not in ops
    return [str(ops["ops"]) if traced else "-", str(len(ops["op_kinds"])) if traced else "-",
            str(ops["fixed_ops"]) if traced else "-",
            f"{ops['prunable_groups']}/{ops['channel_groups']}" if traced else "-",
            f"{profile['within_10']:.0%}" if "within_10" in profile else "-",
            f"{profile['kendall_tau']:.2f}" if "kendall_tau" in profile else "-",
            f"{pruning['speedup']:.2f}x" if "speedup" in pruning else "-"]


def table(rows: list[dict]) -> str:
    widths = (4, 5, 5, 7, 9, 5, 12)
    titles = ("ops", "kinds", "fixed", "groups", "LUT +-10%", "tau", "50% speed-up")
    header = f"{'model':20s} " + " ".join(f"{t:>{w}s}" for t, w in zip(titles, widths, strict=True))
    header += f" {'searched':8s} first error"
    lines = [header, "-" * len(header)]
    for row in rows:
        figures = " ".join(f"{c:>{w}s}" for c, w in zip(cells(row), widths, strict=True))
        lines.append(f"{row['model']:20s} {figures} {'yes' if searched_end_to_end(row) else 'no':8s} "
                     f"{first_error(row)}")
    return "\n".join(lines)


def summary(rows: list[dict]) -> dict:
    """Each bar (``BARS``): the figure and whether it is met, over the models benchmarked."""
    count = len(rows)
    searched_count = sum(searched_end_to_end(row) for row in rows)
    profiled_rows = [row for row in rows if "within_10" in row["profile"]]
    lut_met = sum(row["profile"]["within_10"] >= WITHIN_10_BAR for row in profiled_rows)
    faster = sum(row["pruning"].get("speedup", 0.0) >= SPEEDUP_BAR for row in rows)
    return {
        "search": {"bar": BARS["search"], "figure": f"{searched_count} of {count}",
                   "met": searched_count >= math.ceil(SEARCH_BAR * count - 1e-9)},
        "lut": {"bar": BARS["lut"], "figure": f"{lut_met} of {len(profiled_rows)} profiled models",
                "met": bool(profiled_rows) and lut_met == len(profiled_rows)},
        "pruning": {"bar": BARS["pruning"], "figure": f"{faster} of {count}",
                    "met": faster >= math.ceil(SPEEDUP_SHARE_BAR * count - 1e-9)},
    }


def chosen_models(names: list[str]) -> list[str]:
    from autocompress.models.torchvision_zoo import classifier_names

    known = classifier_names()
    if names == ["all"]:
        return [name for name in known if not NOT_CNN_AT_64.match(name)]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SystemExit(f"--models: torchvision has no classifier {', '.join(unknown)}")
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS),
                        help="torchvision classifiers (default: the 18 of MODELS; 'all': every CNN classifier)")
    parser.add_argument("--model-file", help="benchmark a user's network instead: FILE.py:FUNCTION (3x64x64 input)")
    parser.add_argument("--threads", type=int, default=1, help="threads of the runtime (profile and pruning)")
    parser.add_argument("--batch-size", type=int, default=1, help="images per timed batch (profile and pruning)")
    parser.add_argument("--validate", type=int, default=30, help="validation candidates of each set")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds each model may take, all stages")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "model_zoo.json")
    parser.add_argument("--reuse", action="store_true",
                        help="take a model's figures from an earlier run with the same settings that finished it")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        bench_one(args.one)
        return
    settings = Settings(args.threads, args.batch_size, args.validate, args.timeout)
    if args.model_file:
        file, _, function = args.model_file.rpartition(":")
        models = {function: f"{Path(file).resolve()}:{function}"}
    else:
        models = dict.fromkeys(chosen_models(args.models))
    WORK.mkdir(parents=True, exist_ok=True)
    data = WORK / "data.npz"
    subprocess.run([sys.executable, str(ROOT / "examples" / "torchvision" / "make_data.py"),
                    "--per-class", str(PER_CLASS), "--out", str(data)], check=True, env=environment())
    rows = []
    for name, spec in models.items():
        print(f"{name}: ...", end="", flush=True)
        reused = finished(name, settings) if args.reuse else None
        rows.append(reused or isolated(prepare(name, spec, data, settings), settings))
        print(f"\r{name}: {rows[-1]['seconds']:.0f} s, {first_error(rows[-1]) or 'every stage done'}", flush=True)
    print(table(rows))
    bars = summary(rows)
    for name, bar in bars.items():
        print(f"{name:8s} {'met' if bar['met'] else 'NOT met'}: {bar['figure']} ({bar['bar']})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "runtime": RUNTIME, "settings": asdict(settings), "image_size": 64, "data_images": 10 * PER_CLASS,
        "host": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"), "bars": bars, "rows": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
