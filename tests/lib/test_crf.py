"""crf.py: the local CRF energy R rewards predictions that follow the image's edges."""

import pytest
import torch

from lib.crf import crf_energy
from lib.recipe import train_step
from pce import partial_cross_entropy

SIGMAS = dict(sigma_xy=4.0, sigma_band=0.5)


def halves(left_to_right=True, size=16):
    """Two-class logits, class 0 on one half and class 1 on the other (left/right or top/bottom)."""
    one_hot = torch.zeros(1, 2, size, size, dtype=torch.float64)
    if left_to_right:
        one_hot[:, 0, :, : size // 2], one_hot[:, 1, :, size // 2 :] = 1, 1
    else:
        one_hot[:, 0, : size // 2], one_hot[:, 1, size // 2 :] = 1, 1
    return 40 * one_hot  # softmax ~ one-hot


def test_a_constant_one_hot_prediction_on_a_uniform_image_costs_nothing():
    logits = torch.zeros(2, 3, 16, 16, dtype=torch.float64)
    logits[:, 1] = 40
    assert (
        crf_energy(logits, torch.full((2, 4, 16, 16), 0.7, dtype=torch.float64), **SIGMAS) < 1e-12
    )


def test_cutting_a_uniform_region_costs_more_than_following_a_colour_edge():
    image = torch.zeros(1, 3, 16, 16, dtype=torch.float64)
    image[..., 8:] = 3.0  # a vertical colour edge in the middle
    follows, cuts = (
        crf_energy(halves(True), image, **SIGMAS),
        crf_energy(halves(False), image, **SIGMAS),
    )
    assert cuts > 10 * follows and follows < 0.01


def test_pixels_outside_the_image_never_pair():
    # a constant prediction pays nothing whatever the zero padding around the image looks like
    logits = torch.zeros(1, 2, 8, 8, dtype=torch.float64)
    logits[:, 0] = 40
    image = torch.randn(1, 3, 8, 8, dtype=torch.float64) + 10
    assert crf_energy(logits, image, **SIGMAS) < 1e-12


def test_gradient_is_exact_in_float64():
    logits = torch.randn(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    image = torch.randn(2, 2, 8, 8, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: crf_energy(x, image, 3.0, 0.7, radius=1), (logits,))


def test_without_clicks_only_the_regulariser_acts_and_its_gradients_are_finite():
    logits = torch.randn(2, 5, 32, 32, requires_grad=True)
    no_clicks = torch.full((2, 32, 32), -1)
    loss = partial_cross_entropy(logits, no_clicks) + 0.5 * crf_energy(
        logits, torch.randn(2, 3, 32, 32), **SIGMAS
    )
    loss.backward()
    assert (
        torch.isfinite(loss) and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    )


def test_the_training_step_gives_the_crf_term_the_image_the_network_sees():
    """recipe.train_step: pCE + λ·R with R over the standardised bands (the σ_band the CLI takes
    is in standard deviations of the bands), not over the raw pixel values."""

    class Standardising(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 1)
            self.register_buffer("mean", torch.tensor([120.0, 90.0, 60.0]).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor([30.0, 20.0, 10.0]).view(1, 3, 1, 1))

        def standardise(self, x):
            return (x - self.mean) / self.std

        def forward(self, x):
            return self.conv(self.standardise(x))

    torch.manual_seed(0)
    model, images = Standardising(), torch.rand(2, 3, 16, 16) * 255
    clicks = torch.full((2, 16, 16), -1)
    clicks[0, 3, 4], clicks[1, 9, 2] = 1, 3
    with torch.no_grad():
        logits = model(images)
        expected = partial_cross_entropy(logits, clicks) + 2.0 * crf_energy(
            logits, model.standardise(images), 4.0, 0.5
        )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    loss = train_step(model, optimizer, images, clicks, "fp32", crf=(2.0, 4.0, 0.5))
    assert loss == pytest.approx(expected.item(), rel=1e-6)
