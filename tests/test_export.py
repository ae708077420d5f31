"""Exporting a trial: sizes, agreement with the search-time model, ONNX and int8 files."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnx.numpy_helper
import pytest
import torch
from typer.testing import CliRunner

from autocompress.cli import app
from autocompress.compress.freeze import freeze
from autocompress.compress.quantize import quantize_weight_int
from autocompress.data import load_splits
from autocompress.errors import UserInputError
from autocompress.export.exporter import export_trial, search_model
from autocompress.export.packing import pack_ints, packed_length, unpack_ints
from autocompress.export.weights import decode, encode
from autocompress.hw import onnx_export
from autocompress.hw.bundle_runner import open_session
from autocompress.run.run import Run
from autocompress.run.trial import Kind
from tests.report_run import finished_run  # noqa: F401

SIZE_TOLERANCE = 0.05


@pytest.mark.parametrize("bits", range(2, 9))
def test_packing_round_trips_at_every_width(bits):
    values = np.random.default_rng(bits).integers(-(2 ** (bits - 1)), 2 ** (bits - 1), size=1001)
    data = pack_ints(values, bits)
    assert len(data) == packed_length(1001, bits)
    assert np.array_equal(unpack_ints(data, bits, 1001), values)


def test_eight_bits_pack_as_plain_int8():
    values = np.array([-128, -1, 0, 5, 127])
    assert pack_ints(values, 8) == values.astype(np.int8).tobytes()


def test_weights_file_of_every_trial_has_the_reported_size_and_the_same_outputs(finished_run):  # noqa: F811
    run = Run.open(finished_run)
    x = load_splits(run.space.data).val_x[:64]
    for trial in run.complete:
        candidate, model, row = search_model(run, trial.number)
        reported_bytes = row.size_kb * 1024
        blob = encode(model)
        assert abs(len(blob) / reported_bytes - 1) <= SIZE_TOLERANCE
        with torch.no_grad():
            torch.testing.assert_close(decode(run.space, candidate, blob)(x), model(x))


def _mixed_trial(run: Run) -> int:
    """A search trial with quantized layers and unstructured sparsity, if the run has one."""
    for row in (t for t in run.complete if t.kind is Kind.SEARCH):
        policy = json.loads(row.candidate)["policy"].values()
        if any(p["weight_bits"] < 32 for p in policy) and any(p["sparsity_kind"] == "unstructured"
                                                              and p["sparsity"] > 0 for p in policy):
            return row.number
    raise AssertionError("the test run has no trial mixing quantization and unstructured sparsity")


@pytest.fixture(scope="module")
def exported(finished_run, tmp_path_factory):  # noqa: F811
    run = Run.open(finished_run)
    return run, export_trial(run, _mixed_trial(run), tmp_path_factory.mktemp("export"))


def test_export_matches_the_search(exported):
    run, result = exported
    folder = result.directory
    assert {"weights.bin", "candidate.json", "space.yaml", "model.onnx", "model.int8.onnx"} <= set(result.files)
    assert abs(result.size_ratio - 1) <= SIZE_TOLERANCE
    assert result.files["weights.bin"] == result.weights_bytes
    assert result.agreement_with_search >= 0.99
    assert result.accuracy["weights.bin (torch)"] == pytest.approx(result.search_accuracy, abs=0.01)
    assert result.onnx_agreement_with_torch >= 0.99
    assert result.measured_ms > 0 and result.predicted_ms > 0
    assert json.loads((run.path / folder / "export.json").read_text())["trial"] == result.trial


def test_onnx_file_computes_what_the_frozen_torch_model_computes(exported):
    run, result = exported
    candidate, model, _ = search_model(run, result.trial)
    session = open_session(f"{result.directory}/model.onnx", 1)
    feed = session.get_inputs()[0]
    x = load_splits(run.space.data).val_x[: feed.shape[0]]
    with torch.no_grad():
        expected = freeze(model)(x).numpy()
    np.testing.assert_allclose(session.run(None, {feed.name: x.numpy()})[0], expected, rtol=1e-4, atol=1e-4)


def test_int8_file_holds_int8_weights(exported):
    _, result = exported
    graph = onnx.load(f"{result.directory}/model.int8.onnx").graph
    assert any(t.data_type == onnx.TensorProto.INT8 for t in graph.initializer)
    assert any(n.op_type == "DequantizeLinear" for n in graph.node)
    assert 0.0 <= result.accuracy["model.int8.onnx"] <= 1.0


def test_export_command_prints_sizes_accuracy_and_latency(finished_run, tmp_path):  # noqa: F811
    result = CliRunner().invoke(app, ["export", str(finished_run), "--trial", "0", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "weights.bin" in result.output and "validation accuracy" in result.output
    assert "test accuracy: the search's measurement 0." in result.output  # a baseline: measured on test
    assert "measured" in result.output and "predicted" in result.output
    assert not (tmp_path / "model.int8.onnx").exists()  # the float baseline has no quantized layer


def test_export_of_an_unfinished_trial_is_a_user_error(finished_run):  # noqa: F811
    with pytest.raises(UserInputError, match="not a finished trial"):
        export_trial(Run.open(finished_run), 999)


def _int8_weight_codes(path) -> np.ndarray:
    graph = onnx.load(str(path)).graph
    weights = [onnx.numpy_helper.to_array(t) for t in graph.initializer
               if t.data_type == onnx.TensorProto.INT8 and len(t.dims) >= 2]
    return np.concatenate([np.abs(w.astype(np.int64)).ravel() for w in weights])


def _uniform_8bit_export(run_dir, tmp_path, monkeypatch, reduce_range: bool):
    monkeypatch.setattr(onnx_export, "int8_weights_need_reduce_range", lambda: reduce_range)
    run = Run.open(run_dir)
    number = next(t.number for t in run.complete if t.label == "uniform-8bit")
    return run, number, export_trial(run, number, tmp_path)


def test_int8_file_at_full_range_holds_the_same_int8_codes_as_weights_bin(finished_run, tmp_path,  # noqa: F811
                                                                          monkeypatch):
    """For a uniform 8-bit model, ONNX Runtime's int8 weights are weights.bin's codes: the
    frozen weights are code x scale with the largest code 127, so its symmetric per-channel
    quantization finds the same scales (batch-norm folding only rescales channels)."""
    run, number, result = _uniform_8bit_export(finished_run, tmp_path, monkeypatch, reduce_range=False)
    _, model, _ = search_model(run, number)
    ours = np.concatenate([quantize_weight_int(m.weight.detach(), 8)[0].abs().flatten().numpy()
                           for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))])
    theirs = _int8_weight_codes(f"{result.directory}/model.int8.onnx")
    np.testing.assert_array_equal(np.sort(theirs), np.sort(ours.astype(np.int64)))


def test_int8_file_with_7_bit_weights_keeps_the_float_accuracy(finished_run, tmp_path, monkeypatch):  # noqa: F811
    """What a CPU without VNNI gets: 7-bit weights, which its int8 kernels cannot overflow.
    With 8-bit weights the default space's uniform-8-bit net lost 12 points on such a host."""
    _, _, result = _uniform_8bit_export(finished_run, tmp_path, monkeypatch, reduce_range=True)
    assert _int8_weight_codes(f"{result.directory}/model.int8.onnx").max() <= 64
    assert result.accuracy["model.int8.onnx"] >= result.accuracy["model.onnx"] - 0.02
