"""Write scikit-learn's digits (8x8, grey, 10 classes) as ``digits.npz`` (arrays x, y) here,
the form a user's own data takes (``data.source: npz:examples/byo_model/digits.npz``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

if __name__ == "__main__":
    digits = load_digits()
    out = Path(__file__).with_name("digits.npz")
    np.savez_compressed(out, x=(digits.images / 16.0).astype(np.float32), y=digits.target.astype(np.int64))
    print(f"wrote {out} ({len(digits.target)} images)")
