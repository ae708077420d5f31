"""Training, inheritance and distillation on the digits data (CPU, seconds to a minute each)."""

from __future__ import annotations

import copy

import torch

from autocompress.base import subnet_logits
from autocompress.compress.quantize import calibrate_activations
from autocompress.models.family import family_of
from autocompress.models.mobilenet import MobileNet
from autocompress.models.mobilenet_space import StageArch
from autocompress.pipeline import evaluate_candidate
from autocompress.train import accuracy, eval_batches, finetune, recalibrate_batchnorm


def _accuracy_without_finetune(space, splits, base, **policy):
    family = family_of(space)
    model = family.build_compressed(family.uniform_candidate(family.largest_arch(), **policy), base)
    calibrate_activations(model, [splits.train_x[:256]])
    return accuracy(model, splits.val_x, splits.val_y)


def test_base_reaches_90_percent(trained_base):
    """20 epochs on 988 training images, its initial weights drawn from seed 0 whatever ran
    before. Float rounding alone moves where 20 epochs end by several points (docs/decisions.md,
    "The demo space's base is shipped"), so the bar is below the lowest such variant measured.
    Its training time is a benchmark figure (bench/knobs_accuracy.py), not a timed test."""
    _, info = trained_base
    assert info["accuracy"] >= 0.90


def test_uniform_8bit_loses_at_most_one_point_without_finetune(default_space, digits_splits, trained_base):
    base, info = trained_base
    acc8 = _accuracy_without_finetune(default_space, digits_splits, base, weight_bits=8, activation_bits=8)
    assert acc8 >= info["accuracy"] - 0.01


def test_2bit_loses_clearly_more_and_distillation_recovers(default_space, digits_task, trained_base):
    base, info = trained_base
    family = family_of(default_space)
    candidate = family.uniform_candidate(family.largest_arch(), weight_bits=2, activation_bits=8)
    _, result = evaluate_candidate(default_space, candidate, base, digits_task, seed=0, epochs=1)
    assert result.accuracy_before < info["accuracy"] - 0.10
    assert result.accuracy > result.accuracy_before + 0.10


def test_inherited_subnet_beats_random_weights_after_same_finetune(default_space, digits_splits, trained_base):
    base, _ = trained_base
    arch = [StageArch(1, 3, 3, False) for _ in default_space.network.stages]
    inherited = family_of(default_space).inherit_weights(MobileNet(default_space, arch), base)
    scratch = MobileNet(default_space, arch)
    results = {}
    for name, model in (("inherited", inherited), ("random", scratch)):
        finetune(model, base, digits_splits, default_space.training, epochs=1, seed=0)
        results[name] = accuracy(model, digits_splits.val_x, digits_splits.val_y)
    assert results["inherited"] > results["random"] + 0.05, results


def test_a_trial_is_reproducible_from_its_seed(default_space, digits_task, trained_base):
    base, _ = trained_base
    arch = [StageArch(1, 3, 4, True) for _ in default_space.network.stages]
    candidate = family_of(default_space).uniform_candidate(arch, weight_bits=4, activation_bits=8, sparsity=0.25)
    runs = [evaluate_candidate(default_space, candidate, copy.deepcopy(base), digits_task, seed=7, epochs=1)
            for _ in range(2)]
    assert runs[0][1].accuracy == runs[1][1].accuracy
    assert runs[0][1].size_bytes == runs[1][1].size_bytes


def test_a_fine_tune_shows_each_epoch_and_can_end_after_one(default_space, digits_splits, trained_base):
    """``after_epoch`` sees the fine-tune between epochs (what a rung fidelity measures) and can
    end it there: the model it leaves is the one the full fine-tune went on from."""
    base, _ = trained_base
    family = family_of(default_space)
    candidate = family.uniform_candidate(family.largest_arch(), weight_bits=4, activation_bits=8, sparsity=0.25)
    students = [family.build_compressed(candidate, base) for _ in range(2)]
    seen: list[int] = []
    after_first = {}

    def keep_going(epoch: int) -> bool:
        seen.append(epoch)
        if epoch == 1:
            after_first.update({k: v.clone() for k, v in students[0].named_parameters()})
        return True

    finetune(students[0], base, digits_splits, default_space.training, epochs=3, seed=3, after_epoch=keep_going)
    stopped: list[int] = []
    finetune(students[1], base, digits_splits, default_space.training, epochs=3, seed=3,
             after_epoch=lambda epoch: stopped.append(epoch) or False)
    assert seen == [1, 2, 3] and stopped == [1]
    assert all(torch.equal(after_first[k], v) for k, v in students[1].named_parameters())
    assert not all(torch.equal(after_first[k], v) for k, v in students[0].named_parameters())


def test_subnet_trained_through_inheritance_sends_gradients_to_the_base(default_space, digits_splits):
    base = MobileNet(default_space, family_of(default_space).largest_arch())
    arch = family_of(default_space).smallest_arch()
    logits = subnet_logits(default_space, arch, base, digits_splits.train_x[:16])
    logits.sum().backward()
    expand = base.stages[0][0].expand.conv.weight.grad
    hidden = MobileNet(default_space, arch).stages[0][0].expand.conv.out_channels
    assert (expand.abs().sum(dim=(1, 2, 3)) > 0).sum() == hidden  # only the inherited filters
    assert base.stages[1][1].expand.conv.weight.grad is None  # a block the subnet does not have
    running = base.head.bn.running_mean.clone()
    subnet_logits(default_space, arch, base.train(), digits_splits.train_x[:16])
    assert torch.equal(base.head.bn.running_mean, running)  # the base's statistics are its own


def test_supernet_training_makes_the_smallest_subnet_work_before_any_finetune(default_space, digits_splits,
                                                                              trained_base):
    """Trained as the largest network alone, the smallest subnet inherited ~0.1-0.3 here."""
    base, _ = trained_base
    family = family_of(default_space)
    smallest = family.inherit_weights(MobileNet(default_space, family.smallest_arch()), base)
    recalibrate_batchnorm(smallest, eval_batches(digits_splits.train_x))
    assert accuracy(smallest, digits_splits.val_x, digits_splits.val_y) >= 0.85
