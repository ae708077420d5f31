"""The exported model's ONNX files: float, and int8 (ONNX Runtime static QDQ) where quantized.

Both go through the hardware profiles' own export and int8 path (``hw.onnx_export``), so
the int8 file runs the same kernels the ``onnxruntime-int8`` profile measured. Layers
whose weights are at 8 bits or fewer run as int8 (below 8 bits, int8 is the narrowest
kernel the CPU has); float layers stay float.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from autocompress.data import Images, chunks
from autocompress.hw.onnx_export import quantize_onnx_int8
from autocompress.hw.runtimes.onnx import OnnxRuntimeInt8, float_nodes, int8_layers

CALIBRATION_IMAGES = 256


def write_int8(model: nn.Module, float_path: Path, path: Path, calibration: torch.Tensor) -> Path | None:
    """The int8 file of ``model`` (exported at ``float_path``); None if no layer is quantized."""
    quantized = int8_layers(model, OnnxRuntimeInt8().bits_rule)
    if not quantized:
        return None
    return quantize_onnx_int8(float_path, path, calibration[:CALIBRATION_IMAGES].numpy(),
                              nodes_to_exclude=float_nodes(float_path, quantized))


class OnnxModule(nn.Module):
    """An ONNX Runtime session of a fixed batch size as a torch module (on the CPU), so that a
    task's ``score`` measures an exported file as it measures the torch model."""

    def __init__(self, session: ort.InferenceSession) -> None:
        super().__init__()
        self.session = session

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feed = self.session.get_inputs()[0]
        batch = feed.shape[0]
        outputs = []
        for images in x.split(batch):
            array = images.detach().cpu().numpy().astype(np.float32)
            padded = np.concatenate([array, np.zeros((batch - len(array), *array.shape[1:]), np.float32)])
            outputs.append(torch.from_numpy(self.session.run(None, {feed.name: padded})[0][: len(array)]))
        return torch.cat(outputs)


def onnx_predict(session: ort.InferenceSession, x: Images) -> torch.Tensor:
    """Class predictions of an ONNX model with a fixed batch size (the last batch padded)."""
    module = OnnxModule(session)
    return torch.cat([module(images).argmax(1) for images in chunks(x, session.get_inputs()[0].shape[0])])
