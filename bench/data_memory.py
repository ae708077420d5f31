"""Peak memory of the driver and of a worker reading a generated image folder.

Generates a folder of ``--images`` PNG images (64x64 grey, 10 classes, in a temporary
directory), then, each in a fresh process whose peak resident memory (VmHWM of
/proc/self/status) is read at its end:

- ``driver``: opens the data as ``search``/``train-base`` do (every image decoded once to
  check it and to compute the training split's statistics);
- ``worker``: opens the data as a Ray worker does, runs one epoch of training batches
  through the data loader, trains a small network for one epoch and measures it on the
  validation split.

Both run on the full folder and on its first half (symlinks), so that the growth of the
peak with the data set is measured, not assumed. For comparison, the folder held in
memory as one float32 tensor (what every process did before) is also stated. Prints the
figures and writes bench/results/data_memory.json.

    .venv/bin/python bench/data_memory.py [--images 20000]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SIZE = 64
CLASSES = 10
SPACE = {
    "name": "bench_folder",
    "data": {"source": "", "image_size": SIZE, "channels": 1, "num_classes": CLASSES, "seed": 0},
    "network": {"stem_channels": 8, "head_channels": 32,
                "stages": [{"channels": 8, "stride": 2, "max_depth": 1},
                           {"channels": 16, "stride": 2, "max_depth": 1}]},
    "choices": {"block": {"depth": [1], "kernel_size": [3], "expand_ratio": [3], "squeeze_excite": [False]},
                "layer": {"weight_bits": [8, 32], "activation_bits": [8, 32], "sparsity_kind": ["channel"],
                          "sparsity": [0.0], "rank_ratio": [1.0]}},
    "training": {"base_epochs": 1, "finetune_epochs": 1, "batch_size": 128, "subnets_per_step": 0},
}


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _child(role: str, space_path: str) -> None:
    """One measured process: prints its figures as JSON."""
    import torch

    from autocompress.base import build_base
    from autocompress.data import load_splits
    from autocompress.models.space_file import load_space
    from autocompress.train import accuracy, train

    torch.set_num_threads(1)
    space = load_space(space_path)
    figures = {"peak_rss_after_imports_mb": _peak_rss_mb()}
    start = time.perf_counter()
    splits = load_splits(space.data)
    figures["open_s"] = time.perf_counter() - start
    if role == "worker":
        start = time.perf_counter()
        batches = sum(1 for _ in splits.batches(space.training.batch_size, torch.Generator().manual_seed(0)))
        figures |= {"loader_epoch_s": time.perf_counter() - start, "loader_batches": batches}
        start = time.perf_counter()
        model = train(build_base(space), splits, 1, space.training)
        figures["validation_accuracy"] = accuracy(model, splits.val_x, splits.val_y)
        figures["train_and_evaluate_s"] = time.perf_counter() - start
    figures |= {"images": len(splits.train_y) + len(splits.val_y) + len(splits.test_y),
                "peak_rss_mb": _peak_rss_mb()}
    print(json.dumps(figures))


def _generate(folder: Path, count: int) -> None:
    rng = np.random.default_rng(0)
    for label in range(CLASSES):
        (folder / f"class_{label}").mkdir(parents=True)
    for index in range(count):
        label = index % CLASSES
        image = rng.integers(0, 64, (SIZE, SIZE), dtype=np.uint8)
        image[label * 6 : label * 6 + 6] += 150  # a class-dependent stripe, so that training learns something
        Image.fromarray(image).save(folder / f"class_{label}" / f"{index}.png")


def _half(folder: Path, target: Path) -> None:
    """The first half of each class of ``folder`` as symlinks in ``target``."""
    for cls in sorted(folder.iterdir()):
        (target / cls.name).mkdir(parents=True)
        files = sorted(cls.iterdir())
        for file in files[: len(files) // 2]:
            (target / cls.name / file.name).symlink_to(file)


def _measure(role: str, folder: Path, work: Path) -> dict:
    space = work / f"space-{folder.name}.yaml"
    space.write_text(yaml.safe_dump(SPACE | {"data": SPACE["data"] | {"source": f"folder:{folder}"}}))
    result = subprocess.run([sys.executable, __file__, "--child", role, str(space)], capture_output=True, text=True,
                            cwd=ROOT, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--child", nargs=2, metavar=("ROLE", "SPACE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        _generate(work / "full", args.images)
        generated_s = time.perf_counter() - start
        _half(work / "full", work / "half")
        figures = {folder: {role: _measure(role, work / folder, work) for role in ("driver", "worker")}
                   for folder in ("half", "full")}
    in_memory_mb = args.images * SIZE * SIZE * 4 / 2**20
    result = {
        "images": args.images, "image_size": SIZE, "channels": 1, "classes": CLASSES,
        "generate_s": round(generated_s, 1), "folder_as_float32_tensor_mb": round(in_memory_mb, 1),
        "measured": figures,
        "peak_growth_half_to_full_mb": {role: round(figures["full"][role]["peak_rss_mb"]
                                                    - figures["half"][role]["peak_rss_mb"], 1)
                                        for role in ("driver", "worker")},
        "host": platform.node(), "python": platform.python_version(),
    }
    out = ROOT / "bench" / "results" / "data_memory.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    for folder in ("half", "full"):
        for role, values in figures[folder].items():
            print(f"{folder:>4} ({values['images']:>6} images) {role:<6} peak RSS {values['peak_rss_mb']:7.1f} MB "
                  f"(after imports {values['peak_rss_after_imports_mb']:.1f} MB), opened in {values['open_s']:.1f} s"
                  + (f", loader epoch {values['loader_epoch_s']:.1f} s, train+evaluate "
                     f"{values['train_and_evaluate_s']:.1f} s (accuracy {values['validation_accuracy']:.3f})"
                     if role == "worker" else ""))
    print(f"the full folder as one float32 tensor: {in_memory_mb:.0f} MB; peak growth from half to full: "
          f"{result['peak_growth_half_to_full_mb']}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
