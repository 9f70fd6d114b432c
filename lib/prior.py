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
saved model carries it; S = 1 is Bayes' rule. --prior-estimate picks the shares: EM's (em), the
posteriors' plain mean, which is EM's first step (mean), or the geometric mean of the two
(geometric). EM on an overconfident network's posteriors pushes the small classes too far (to 0 %
on some seeds); the mean at S = 1 is what validation chooses for --data (docs/unclicked.md).
"""

import torch

from clicks import class_counts
from lib import distributed
from lib.evaluation import predict_tile

# --prior-estimate's choices, and how a run's log names them
ESTIMATES = ("em", "mean", "geometric")
ESTIMATE_NAMES = dict(em="EM", mean="mean posterior", geometric="geometric mean of EM and mean")


def pixel_shares(posteriors, click_shares, estimate="em", steps=100, tolerance=1e-6):
    """The classes' shares among the pixels whose posteriors (C, P) a network trained on
    `click_shares` gives: EM for a shift of the class prior (Saerens et al. 2002). Each step
    re-weights every pixel's posterior by (shares / click_shares) and takes the mean. Under
    torchrun the pixels are split over the processes and the sums gathered. estimate "mean" stops
    after the first step (the posteriors' mean); "geometric" is the normalised geometric mean of
    the two, halfway between them in log share (EM drifts where the network is overconfident,
    the mean stays near the clicks' shares)."""
    if estimate == "geometric":
        em = pixel_shares(posteriors, click_shares, "em", steps, tolerance)
        mean = pixel_shares(posteriors, click_shares, "mean")
        both = (em * mean).sqrt()
        return both / both.sum()
    steps = 1 if estimate == "mean" else steps
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
def training_posteriors(model, train, window, batch_size, precision, stride=4):
    """The model's posteriors of the clicked classes (C', P) on every `stride`-th pixel each way
    of the training tiles `train` (images, point labels), one pass, no test-time augmentation;
    with which classes have clicks (C,) and the clicks' shares among them (C',)."""
    images, point_labels = train
    counts = torch.tensor(class_counts(point_labels, model.head.bias.shape[0]))
    clicked = counts > 0
    model.eval()
    posteriors = [
        predict_tile(model, image, window, batch_size, precision)
        .softmax(0)[clicked][:, ::stride, ::stride]
        .flatten(1)
        for image in distributed.share(list(images))
    ]
    return clicked, counts[clicked] / counts.sum(), torch.cat(posteriors, 1)


def log_ratios(clicked, click_shares, shares):
    """Each class's log(pixel share / click share), (C,); a class without clicks gets 0, and one
    the network never paints a share floored at 1e-4."""
    ratios = torch.zeros(len(clicked), dtype=torch.float64)
    ratios[clicked] = (shares.clamp_min(1e-4) / click_shares).log()
    return ratios


def prior_log_ratios(model, train, window, batch_size, precision, estimate="em"):
    """Each class's log(pixel share / click share) on the training tiles: the pixel shares
    estimated (pixel_shares) from the model's training_posteriors. Returns (click shares, pixel
    shares) of the clicked classes and the (C,) log ratios."""
    clicked, click_shares, posteriors = training_posteriors(
        model, train, window, batch_size, precision
    )
    shares = pixel_shares(posteriors, click_shares, estimate)
    return click_shares, shares, log_ratios(clicked, click_shares, shares)


def take_out_shift(model, metrics):
    """Undo the prior shift a finished run folded into its head's bias (its metrics.json records
    it), to estimate the shares again; returns the shift taken out, (C,), zeros if none."""
    shift = torch.tensor(
        metrics.get("prior_shift", {}).get("logit_shift", [0.0] * len(model.head.bias))
    )
    with torch.no_grad():
        model.head.bias -= shift.to(model.head.bias)
    return shift


def shift_to_pixel_prior(model, train, config, precision):
    """--prior-shift: add strength·log(pixel share / click share) to the head's bias (classes
    without clicks are left as they are), the shares by --prior-estimate. Returns what it did, for
    the run's metrics, and says it in one line."""
    estimate = config.get("prior_estimate", "em")
    click_shares, shares, ratios = prior_log_ratios(
        model, train, config["image_size"], config["batch_size"], precision, estimate
    )
    shift = config["prior_shift"] * ratios
    with torch.no_grad():
        model.head.bias += shift.to(model.head.bias)
    print(
        f"prior shift {config['prior_shift']:g}: pixel shares ({ESTIMATE_NAMES[estimate]} on the "
        "training tiles) "
        + ", ".join(f"{s:.3f}" for s in shares)
        + " against the clicks' "
        + ", ".join(f"{s:.3f}" for s in click_shares)
        + "; logits shifted by "
        + ", ".join(f"{s:+.2f}" for s in shift),
        flush=True,
    )
    said = dict(
        click_shares=click_shares.tolist(), pixel_shares=shares.tolist(), logit_shift=shift.tolist()
    )
    return said if estimate == "em" else dict(said, estimate=estimate)  # em: as recorded before
