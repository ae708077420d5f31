"""Search a segmentation network with its own data, loss and metric through the Python API.

    .venv/bin/python examples/segmentation/search.py [--trials 12] [--results-dir results]

Profiles the network on this CPU (torch eager, float), searches it (the base network is
trained first with the given loss, then every trial is fine-tuned by distillation mixed
with it, and scored by IoU), writes the report and exports the front's fastest model.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import shapes  # noqa: E402  (the example's own module, beside this script)

import autocompress as ac  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--results-dir", default="results")
    parser.add_argument("--run", default="shapes")
    parser.add_argument("--validate", type=int, default=10, help="candidates measured to validate the profile")
    args = parser.parse_args()

    space = HERE / "space.yaml"
    profile = Path(args.results_dir) / "cpu-torch-fp32-shapes.json"
    if not profile.is_file():
        ac.profile(space, "torch-fp32", device="cpu-torch-fp32-shapes", out=profile, model=shapes.build,
                   validate=args.validate)
    train, val, test = shapes.splits()
    run = ac.search(space, profile, trials=args.trials, workers=args.workers, run=args.run,
                    results_dir=args.results_dir, model=shapes.build, train_data=train, val_data=val,
                    test_data=test, evaluate=shapes.iou, metric="IoU", loss=shapes.mask_loss, batch_size=32)
    front = run.front.sort_values("latency_ms")
    print(front[["number", "label", "IoU", "test_IoU", "latency_ms", "size_kb"]].to_string(index=False))
    print(f"report: {run.report()}")
    exported = run.export(int(front.number.iloc[0]))
    print(f"exported trial {exported.trial} to {exported.directory}: test IoU {exported.test_accuracy}")


if __name__ == "__main__":
    main()
