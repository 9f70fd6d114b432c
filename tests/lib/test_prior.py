"""lib/prior.py: EM for the pixels' class shares (and the two other estimates), and the logit shift
folded into the head's bias."""

import numpy as np
import pytest
import torch

from clicks import Clicks
from lib.prior import ESTIMATES, pixel_shares, shift_to_pixel_prior
from unet import UNet


def test_em_finds_the_pixels_class_shares_from_posteriors_made_under_the_clicks_shares():
    # two classes, a pixel's value x ~ N(0, 1) for class 0 and N(2, 1) for class 1; the pixels
    # are 20 % class 0, the clicks half and half: a network trained on the clicks says
    # p(c | x) ∝ 0.5 N(x; mu_c, 1)
    torch.manual_seed(0)
    x = torch.cat([torch.randn(4_000), torch.randn(16_000) + 2]).double()
    likelihoods = torch.stack([(-0.5 * x**2).exp(), (-0.5 * (x - 2) ** 2).exp()])
    posteriors = likelihoods / likelihoods.sum(0)
    clicks = torch.tensor([0.5, 0.5])
    shares = pixel_shares(posteriors, clicks)
    assert shares.tolist() == pytest.approx([0.2, 0.8], abs=0.015)
    assert posteriors.mean(1)[0] > 0.25  # the plain mean of the posteriors is further off
    # posteriors that say nothing but the clicks' shares: nothing to shift
    flat = clicks.double()[:, None].expand(2, 100)
    assert pixel_shares(flat, clicks).tolist() == pytest.approx([0.5, 0.5])


def test_the_mean_and_geometric_estimates_are_em_stopped_after_one_step_and_halfway_in_log():
    torch.manual_seed(0)
    posteriors = torch.rand(3, 500).double() ** 3
    clicks = torch.tensor([0.5, 0.3, 0.2])
    em, mean, geometric = (pixel_shares(posteriors, clicks, e) for e in ESTIMATES)
    assert mean.tolist() == pytest.approx((posteriors / posteriors.sum(0)).mean(1).tolist())
    assert em.sub(mean).abs().max() > 0.01  # EM went on from there
    halfway = (em.log() + mean.log()) / 2
    assert geometric.log().tolist() == pytest.approx((halfway - halfway.exp().sum().log()).tolist())


def test_the_prior_shift_is_folded_into_the_head_bias_and_spares_classes_without_clicks():
    torch.manual_seed(0)
    model = UNet(3, weights=None).eval()
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8).numpy()
    clicks = [Clicks(*(np.array(v) for v in ([1, 5, 9], [2, 6, 10], [0, 0, 1])))] * 2
    config = dict(image_size=64, batch_size=2, prior_shift=0.5)
    probe = torch.rand(1, 3, 64, 64) * 255
    before = model(probe)
    said = shift_to_pixel_prior(model, (images, clicks), config, "fp32")
    shift = torch.tensor(said["logit_shift"], dtype=torch.float32)
    assert said["click_shares"] == pytest.approx([2 / 3, 1 / 3])  # class 2 has no click
    assert shift[2] == 0 and shift[:2].abs().sum() > 0
    expected = 0.5 * torch.log(torch.tensor(said["pixel_shares"]) / torch.tensor([2 / 3, 1 / 3]))
    assert shift[:2] == pytest.approx(expected.tolist(), abs=1e-5)
    assert torch.allclose(model(probe), before + shift[None, :, None, None], atol=1e-4)
