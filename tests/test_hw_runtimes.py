"""The runtime registry: names, precision rules, settings, fusion rules; old tables refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from autocompress.candidate import FLOAT_BITS
from autocompress.errors import MissingSignaturesError, UserInputError
from autocompress.hw.predict import check_covers
from autocompress.hw.profile import load_profile
from autocompress.hw.runtimes import MeasuredRuntime, runtime_named, runtime_names
from autocompress.models.space_file import load_space

REPO = Path(__file__).resolve().parents[1]


def test_unknown_runtime_is_one_line_listing_the_names():
    with pytest.raises(UserInputError) as error:
        runtime_named("tpu")
    assert str(error.value) == (f"--runtime: unknown runtime 'tpu' (allowed: {', '.join(runtime_names())})")


@pytest.mark.parametrize(("name", "weight", "follow", "fused", "settings"), [
    ("torch-fp32", (FLOAT_BITS,), False, 0, {"torch", "allocator"}),
    ("onnxruntime", (FLOAT_BITS,), False, 2, {"onnxruntime", "onnx_opset"}),
    ("onnxruntime-int8", (8, FLOAT_BITS), True, 0, {"onnxruntime", "onnx_opset", "int8_weights", "int8_export"}),
    ("bitfusion-model", (2, 4, 8, 16), False, 0, set()),
])
def test_each_runtime_has_its_rule_and_settings(name, weight, follow, fused, settings):
    runtime = runtime_named(name)
    rule = runtime.bits_rule
    assert (rule.weight, rule.follow, len(rule.fusion)) == (weight, follow, fused)
    assert set(runtime.settings()) == settings
    assert runtime.modelled == (name == "bitfusion-model") != isinstance(runtime, MeasuredRuntime)


def test_a_float_onnx_runtime_table_without_kernel_entries_asks_to_reprofile(tmp_path):
    shipped = load_profile(REPO / "hw_profiles" / "cpu-onnxruntime.json")
    op_level = {key: entry for key, entry in shipped.entries.items() if ">" not in key}
    profile = shipped.model_copy(update={"entries": op_level})
    with pytest.raises(MissingSignaturesError, match=r"conv/.*>add/.*autocompress profile .* --runtime onnxruntime"):
        check_covers(profile, load_space(REPO / "search_spaces" / "mobilenet_digits.yaml"), Path("p.json"))


def test_an_int8_onnx_runtime_table_with_precision_free_gates_asks_to_reprofile():
    """Squeeze-excite gates are keyed by their convs' precision since ONNX Runtime was seen
    to run them as ``QLinearConv``: a table from before (``se/...`` keys without bits) is one
    error naming the command that measures it again."""
    shipped = load_profile(REPO / "hw_profiles" / "cpu-onnxruntime-int8.json")
    before = {re.sub(r"^(se/[^/]+/o\d+)/w\d+a\d+$", r"\1", key): entry for key, entry in shipped.entries.items()}
    profile = shipped.model_copy(update={"entries": before})
    with pytest.raises(MissingSignaturesError,
                       match=r"se/[^,]+/w(8a8|32a32).*autocompress profile .* --runtime onnxruntime-int8"):
        check_covers(profile, load_space(REPO / "search_spaces" / "mobilenet_digits.yaml"), Path("p.json"))
