"""Write a small colour image data set as an .npz of arrays x (N, 3, 8, 8) and y (N,).

scikit-learn's bundled digits, each drawn in a random colour (three channels, as the
torchvision networks expect); the loader resizes them to the space's ``data.image_size``
(64x64 in the example spaces). Nothing is downloaded.

    .venv/bin/python examples/torchvision/make_data.py                   # all 1797 images
    .venv/bin/python examples/torchvision/make_data.py --per-class 20 --out small.npz
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits


def colour_digits(per_class: int | None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 8, 8) in 0..1 and their labels; ``per_class`` images of each digit (all if None)."""
    digits = load_digits()
    rng = np.random.default_rng(seed)
    keep = np.sort(np.concatenate([np.flatnonzero(digits.target == label)[:per_class] for label in range(10)]))
    grey = digits.images[keep] / 16.0
    colours = rng.uniform(0.3, 1.0, size=(len(keep), 3))
    return (grey[:, None] * colours[:, :, None, None]).astype(np.float32), digits.target[keep].astype(np.int64)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("digits_rgb.npz"))
    parser.add_argument("--per-class", type=int, default=None, help="images of each digit (default: all)")
    args = parser.parse_args()
    x, y = colour_digits(args.per_class)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, x=x, y=y)
    print(f"wrote {args.out} ({len(y)} images)")
