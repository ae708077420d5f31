"""Fixed ops: every op of a traced CNN has a latency-table entry, and the module a profile
times for that entry computes exactly what the op computes inside the built model."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import fx, nn

from autocompress.hw.accelerator import modelled_ms
from autocompress.hw.fixed_ops import stored_shape
from autocompress.hw.kernels import op_module
from autocompress.hw.ops import FIXED, BitsRule, OpSignature
from autocompress.models.graph_ops import UnsupportedOpError, graph_ops, model_sites


class EveryOp(nn.Module):
    """One of each op kind torchvision's CNN classifiers run, on a 3x32x32 image."""

    def __init__(self) -> None:
        super().__init__()
        self.patchify = nn.Conv2d(3, 16, 4, stride=4)  # ConvNeXt's stem: 4x4/4, no padding
        self.unpadded = nn.Conv2d(3, 16, 7, stride=2)  # SqueezeNet's stem
        self.dilated = nn.Conv2d(16, 16, 3, padding=2, dilation=2, bias=False)
        self.max_pool = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.avg_pool = nn.AvgPool2d(2, 2)
        self.adaptive = nn.AdaptiveAvgPool2d((3, 3))
        self.acts = nn.ModuleList([nn.ReLU6(inplace=True), nn.Hardswish(), nn.Hardsigmoid(), nn.SiLU(), nn.GELU(),
                                   nn.Sigmoid(), nn.Tanh()])
        self.bn = nn.BatchNorm2d(16)
        self.group_norm = nn.GroupNorm(4, 16)
        self.layer_norm = nn.LayerNorm(16)
        self.scale = nn.Parameter(torch.rand(16, 1, 1))
        self.fc = nn.Linear(16 * 9, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patches = self.patchify(x)  # 16x8x8
        y = self.max_pool(self.unpadded(x))  # 16x7x7 (ceil mode)
        y = self.dilated(F.interpolate(y, size=(8, 8), mode="nearest"))
        for act in self.acts:
            y = act(y)
        y = self.bn(y) * self.scale + patches * torch.sigmoid(patches.mean((2, 3), keepdim=True))
        y = self.group_norm(y)
        a, b = y.chunk(2, dim=1)
        y = torch.cat([b, a], dim=1)
        batch, channels, height, width = y.shape
        y = y.view(batch, 2, channels // 2, height, width).transpose(1, 2).contiguous().view(batch, -1, height, width)
        y = self.layer_norm(y.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        y = self.adaptive(self.avg_pool(y) + 1.0)
        return self.fc(torch.flatten(y, 1))


EXPECTED_CALLEES = {"nn.MaxPool2d", "F.interpolate", "nn.ReLU6", "nn.Hardswish", "nn.Hardsigmoid", "nn.SiLU",
                    "nn.GELU", "nn.Sigmoid", "nn.Tanh", "nn.BatchNorm2d", "operator.mul", "torch.sigmoid",
                    "Tensor.mean", "nn.GroupNorm", "torch.cat", "Tensor.contiguous", "nn.LayerNorm", "nn.AvgPool2d",
                    "operator.add", "nn.AdaptiveAvgPool2d", "torch.flatten"}
"""``torch.flatten`` among them: the pools keep the channels-last layout of the permuted
tensor, so flattening their output copies it (a flatten of a contiguous tensor is a free view)."""


def _node_io(model: nn.Module, image: torch.Tensor) -> dict[str, tuple[list[torch.Tensor], torch.Tensor, object]]:
    """Every call node's tensor inputs, output and target when ``model`` runs ``image``."""
    from autocompress.compress.coupling import trace

    module = fx.GraphModule(model, trace(model))
    seen: dict[str, tuple[list[torch.Tensor], torch.Tensor, object]] = {}

    class Recorder(fx.Interpreter):
        def run_node(self, node: fx.Node):
            args, kwargs = self.fetch_args_kwargs_from_env(node)
            inputs = [self.env[n].clone() for n in node.all_input_nodes
                      if n.op != "get_attr" and isinstance(self.env[n], torch.Tensor)]
            result = super().run_node(node)
            if isinstance(result, torch.Tensor):
                seen[node.name] = (inputs, result.clone(), node.target)
            return result

    with torch.no_grad():
        Recorder(module).run(image)
    return seen


def test_every_op_of_a_cnn_has_an_entry_that_computes_what_the_model_computes():
    torch.manual_seed(0)
    model = EveryOp().eval()
    image = torch.randn(2, 3, 32, 32)
    ops = graph_ops(model, (3, 32, 32), BitsRule(), "every_op")
    fixed = [op for op in ops if op.op == FIXED]
    assert {op.call.callee for op in fixed} == EXPECTED_CALLEES
    assert {op.key for op in ops if op.op == "conv"} >= {"conv/3x32x32/o16/k4/s4/g1/p0/bias",
                                                          "conv/3x32x32/o16/k7/s2/g1/p0/bias",
                                                          "conv/16x8x8/o16/k3/s1/g1/p2/d2/none"}
    for op in ops:
        assert OpSignature.from_key(op.key) == op
    io = _node_io(model, image)
    sites = [site for site in model_sites(model, (3, 32, 32), "every_op") if site.op == FIXED]
    assert len(sites) == len(fixed)
    for site, op in zip(sites, fixed, strict=True):
        inputs, expected, target = io[site.name]
        timed = op_module(op).eval()
        if op.call.concat:
            continue  # timed on slices of its output: compared below
        orders = op.call.input_orders(len(inputs))
        stored = [x if order is None else x.permute(*order).contiguous() for x, order in zip(inputs, orders,
                                                                                                strict=True)]
        assert [tuple(x.shape) for x in stored] == [stored_shape((2, *shape), order) for shape, order in zip(
            op.input_shapes, orders, strict=True)]
        if '"param"' in op.call.arguments:  # the model's parameter is random in the timed module
            timed.params[0].data.copy_(model.scale)
        if timed.target is not None:
            timed.target.load_state_dict(model.get_submodule(target).state_dict())
        with torch.no_grad():
            torch.testing.assert_close(timed(*stored), expected, msg=op.key)
    concat = next(op for op in fixed if op.call.concat)
    assert concat.key == 'fixed/16x8x8/n2/torch.cat//[[[{"tensor":0},{"tensor":1}]],{"dim":1}]'
    assert op_module(concat).eval()(torch.ones(2, 16, 8, 8)).shape == (2, 16, 8, 8)


def test_views_shape_queries_and_inference_no_ops_are_free():
    class Views(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.drop, self.identity, self.fc = nn.Dropout(0.5), nn.Identity(), nn.Linear(4 * 4 * 4, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            torch._assert(x.dim() == 4, "an image batch")
            y = self.identity(self.drop(x)).reshape(x.size(0), -1)
            return self.fc(y.view(y.shape[0], 4, 4, 4).flatten(1))

    ops = graph_ops(Views(), (4, 4, 4), BitsRule(), "views")
    assert [op.key for op in ops] == ["linear/64/o10/bias"]


def test_a_model_that_fails_in_inference_is_one_line_naming_it():
    class Broken(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x @ torch.ones(3, 3)

    with pytest.raises(UnsupportedOpError, match=r"^broken: the model cannot be traced and run on one \(1, 4, 4\) "
                                                 r"image in inference mode: RuntimeError"):
        graph_ops(Broken(), (1, 4, 4), BitsRule(), "broken")


def test_the_modelled_accelerator_costs_a_fixed_op_by_the_elements_it_reads_and_writes():
    ops = [op for op in graph_ops(EveryOp().eval(), (3, 32, 32), BitsRule(), "every_op") if op.op == FIXED]
    by_callee = {op.call.callee: op for op in ops}
    small, large = by_callee["nn.MaxPool2d"], by_callee["nn.SiLU"]
    assert 0 < modelled_ms(small, 1) and modelled_ms(large, 8) > modelled_ms(large, 1)
