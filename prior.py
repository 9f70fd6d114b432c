"""The pixels' class prior: after training, the logits shifted towards the classes' pixel shares.

The clicks' class shares are not the pixels': ten clicks per class make a class of 1 % of the
pixels as common among the labels as one of 50 %. A network fitted to the clicks learns the clicks'
shares as its prior, and where a pixel is uncertain (an edge, a gap between two buildings) it
answers with the small class too often: it paints small classes too wide and large ones too
narrow. Bayes' rule with the pixels' shares in place of the clicks' undoes that,

    p(c | x) ∝ p_clicks(c | x) · pixel share(c) / click share(c)

The pixels' shares are not known, but the network's own posteriors on the unclicked training
pixels give them (EM for a shift of the class prior, Saerens et al. 2002). --prior-shift S adds
S·log(pixel share / click share) to every logit after training, folded into the head's bias so the
saved model carries it; S = 1 is Bayes' rule, S = 0.5 (halfway) is what validation chooses
(docs/unclicked.md): EM on an overconfident network's posteriors pushes the small classes too far.
"""

import torch

from clicks import class_counts
from evaluation import predict_tile
from lib import distributed


def pixel_shares(posteriors, click_shares, steps=100, tolerance=1e-6):
    """The classes' shares among the pixels whose posteriors (C, P) a network trained on
    `click_shares` gives: EM for a shift of the class prior (Saerens et al. 2002). Each step
    re-weights every pixel's posterior by (shares / click_shares) and takes the mean. Under
    torchrun the pixels are split over the processes and the sums gathered."""
    posteriors, click_shares = posteriors.double(), click_shares.double()
    shares = click_shares.clone()
    pixels = distributed.sum_over_processes(torch.tensor(float(posteriors.shape[1])))
    for _ in range(steps):
        weighted = posteriors * (shares / click_shares)[:, None]
        weighted = weighted / weighted.sum(0, keepdim=True).clamp_min(1e-30)
        new = distributed.sum_over_processes(weighted.sum(1)) / pixels
        if (new - shares).abs().max() < tolerance:
            return new
        shares = new
    return shares


@torch.no_grad()
def prior_log_ratios(model, train, window, batch_size, precision, stride=4):
    """Each class's log(pixel share / click share) on the training tiles `train` (images, point
    labels): the pixel shares estimated by EM (pixel_shares) from the model's posteriors on every
    `stride`-th pixel each way, one pass, no test-time augmentation. A class without clicks gets 0.
    Returns (click shares, pixel shares) of the clicked classes and the (C,) log ratios."""
    images, point_labels = train
    classes = model.head.bias.shape[0]
    counts = torch.tensor(class_counts(point_labels, classes))
    clicked = counts > 0
    click_shares = counts[clicked] / counts.sum()
    model.eval()
    posteriors = [
        predict_tile(model, image, window, batch_size, precision)
        .softmax(0)[clicked][:, ::stride, ::stride]
        .flatten(1)
        for image in distributed.share(list(images))
    ]
    shares = pixel_shares(torch.cat(posteriors, 1), click_shares)
    # a class the network never paints would get log 0: a floor of 1e-4
    log_ratios = torch.zeros(classes, dtype=torch.float64)
    log_ratios[clicked] = (shares.clamp_min(1e-4) / click_shares).log()
    return click_shares, shares, log_ratios


def shift_to_pixel_prior(model, train, config, precision):
    """--prior-shift: add strength·log(pixel share / click share) to the head's bias (classes
    without clicks are left as they are). Returns what it did, for the run's metrics, and says it
    in one line."""
    click_shares, shares, log_ratios = prior_log_ratios(
        model, train, config["image_size"], config["batch_size"], precision
    )
    shift = config["prior_shift"] * log_ratios
    with torch.no_grad():
        model.head.bias += shift.to(model.head.bias)
    print(
        f"prior shift {config['prior_shift']:g}: pixel shares (EM on the training tiles) "
        + ", ".join(f"{s:.3f}" for s in shares)
        + " against the clicks' "
        + ", ".join(f"{s:.3f}" for s in click_shares)
        + "; logits shifted by "
        + ", ".join(f"{s:+.2f}" for s in shift),
        flush=True,
    )
    return dict(
        click_shares=click_shares.tolist(), pixel_shares=shares.tolist(), logit_shift=shift.tolist()
    )
