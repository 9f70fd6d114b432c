"""The project's proof: pce.partial_cross_entropy equals CrossEntropyLoss(ignore_index=-1).

Checked in float64 for the value and for the gradient w.r.t. the logits, over random shapes, class
counts and label densities, plus the edge cases: one labeled pixel, every pixel labeled (= plain
CE),
an image without labels inside a labeled batch, and a batch with no labels at all.
"""

import pytest
import torch

from pce import partial_cross_entropy


def random_case(generator, n, c, h, w, density):
    logits = torch.randn(n, c, h, w, dtype=torch.float64, generator=generator)
    dense = torch.randint(0, c, (n, h, w), generator=generator)
    labeled = torch.rand(n, h, w, generator=generator, dtype=torch.float64) < density
    return logits, torch.where(labeled, dense, torch.full_like(dense, -1))


def value_and_grad(loss_fn, logits, point_labels):
    logits = logits.clone().requires_grad_(True)
    loss = loss_fn(logits, point_labels)
    loss.backward()
    return loss.detach(), logits.grad


def assert_matches_builtin(logits, point_labels):
    ours, our_grad = value_and_grad(partial_cross_entropy, logits, point_labels)
    builtin, builtin_grad = value_and_grad(
        torch.nn.CrossEntropyLoss(ignore_index=-1), logits, point_labels
    )
    torch.testing.assert_close(ours, builtin, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(our_grad, builtin_grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", range(12))
def test_equals_builtin_on_random_shapes_classes_and_densities(seed):
    g = torch.Generator().manual_seed(seed)
    n, c = int(torch.randint(1, 5, (1,), generator=g)), int(torch.randint(2, 9, (1,), generator=g))
    h, w = (int(v) for v in torch.randint(1, 24, (2,), generator=g))
    density = [0.002, 0.01, 0.05, 0.2, 0.5, 0.9][seed % 6]
    logits, point_labels = random_case(g, n, c, h, w, density)
    if (point_labels >= 0).sum() == 0:  # keep the comparison meaningful (builtin is NaN there)
        point_labels[0, 0, 0] = 0
    assert_matches_builtin(logits, point_labels)


def test_one_labeled_pixel():
    g = torch.Generator().manual_seed(1)
    logits, _ = random_case(g, 2, 5, 16, 16, 0.0)
    point_labels = torch.full((2, 16, 16), -1)
    point_labels[1, 7, 3] = 4
    assert_matches_builtin(logits, point_labels)
    loss, grad = value_and_grad(partial_cross_entropy, logits, point_labels)
    assert grad[0].abs().sum() == 0 and grad[1, :, 7, 3].abs().sum() > 0
    assert (grad[1].abs().sum(dim=0) > 0).sum() == 1  # only the clicked pixel moves


def test_all_pixels_labeled_is_plain_cross_entropy():
    g = torch.Generator().manual_seed(2)
    logits, point_labels = random_case(g, 3, 4, 9, 11, 1.01)
    assert (point_labels >= 0).all()
    ours, our_grad = value_and_grad(partial_cross_entropy, logits, point_labels)
    plain, plain_grad = value_and_grad(torch.nn.CrossEntropyLoss(), logits, point_labels)
    torch.testing.assert_close(ours, plain, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(our_grad, plain_grad, rtol=1e-12, atol=1e-12)


def test_image_without_labels_inside_a_labeled_batch():
    g = torch.Generator().manual_seed(3)
    logits, point_labels = random_case(g, 3, 5, 12, 12, 0.1)
    point_labels[1] = -1
    point_labels[0, 0, 0] = 2
    assert_matches_builtin(logits, point_labels)
    _, grad = value_and_grad(partial_cross_entropy, logits, point_labels)
    assert grad[1].abs().sum() == 0


def test_no_labels_gives_zero_loss_and_zero_finite_gradient():
    logits = torch.randn(2, 5, 8, 8, dtype=torch.float64, requires_grad=True)
    loss = partial_cross_entropy(logits, torch.full((2, 8, 8), -1))
    loss.backward()
    assert loss.item() == 0.0 and loss.requires_grad
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() == 0
    # the built-in divides 0 by 0 here; this is why pce.py spells the formula out
    assert torch.isnan(
        torch.nn.CrossEntropyLoss(ignore_index=-1)(logits, torch.full((2, 8, 8), -1))
    )


def test_int32_labels_are_accepted():
    logits = torch.randn(1, 3, 4, 4)
    labels = torch.randint(-1, 3, (1, 4, 4), dtype=torch.int32)
    labels[0, 0, 0] = 1  # at least one label
    expected = torch.nn.CrossEntropyLoss(ignore_index=-1)(logits, labels.long())
    torch.testing.assert_close(partial_cross_entropy(logits, labels), expected)


@pytest.mark.parametrize(
    "logits_shape, labels, message",
    [
        ((2, 5, 8, 8), torch.zeros(2, 8, 7, dtype=torch.long), "does not match"),
        ((2, 5, 8, 8), torch.zeros(2, 1, 8, 8, dtype=torch.long), "does not match"),
        ((5, 8, 8), torch.zeros(5, 8, dtype=torch.long), r"\(N, C, H, W\)"),
        ((2, 5, 8, 8), torch.full((2, 8, 8), -2), r"got values in \[-2, -2\]"),
        ((2, 5, 8, 8), torch.full((2, 8, 8), 5), r"\[0, 4\], got values in \[5, 5\]"),
        ((2, 5, 8, 8), torch.zeros(2, 8, 8), "integer"),
        ((2, 5, 8, 8), torch.zeros(2, 8, 8, dtype=torch.bool), "integer"),
    ],
)
def test_bad_inputs_raise_value_error_naming_the_problem(logits_shape, labels, message):
    with pytest.raises(ValueError, match=message):
        partial_cross_entropy(torch.randn(*logits_shape), labels)


def test_class_balanced_pce_equals_the_builtin_with_class_weights():
    """pCE with class weights w: Σ w_{gt_i}·CE_i·MASK_i / Σ w_{gt_i}·MASK_i, which is PyTorch's
    weighted mean, in value and gradient; still 0 (not NaN) without labels."""
    torch.manual_seed(1)
    logits = torch.randn(3, 4, 9, 7, dtype=torch.float64, requires_grad=True)
    point_labels = torch.randint(-1, 4, (3, 9, 7))
    weights = torch.tensor([0.5, 2.0, 1.0, 0.5], dtype=torch.float64)
    ours = partial_cross_entropy(logits, point_labels, weights)
    (grad_ours,) = torch.autograd.grad(ours, logits)
    builtin = torch.nn.CrossEntropyLoss(weight=weights, ignore_index=-1)(logits, point_labels)
    (grad_builtin,) = torch.autograd.grad(builtin, logits)
    assert torch.allclose(ours, builtin) and torch.allclose(grad_ours, grad_builtin)
    unweighted = partial_cross_entropy(logits, point_labels, torch.ones(4, dtype=torch.float64))
    assert torch.allclose(unweighted, partial_cross_entropy(logits, point_labels))
    empty = partial_cross_entropy(logits, torch.full((3, 9, 7), -1), weights)
    assert empty.item() == 0.0
