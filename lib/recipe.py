"""The training recipe in code: the data a run's config names, the loss in words, the optimizer
and one training step.

The recipe's settings live in lib/settings.py's table. `train_step` is the one training step:
train.py trains with it and scripts/bench.py times it, so the benchmark measures exactly what
training does.
"""

import torch

from lib import tiles
from lib.crf import crf_energy
from lib.device import autocast, memory_format
from lib.distributed import label_share
from lib.settings import label_mode
from pce import partial_cross_entropy


def load_run_data(config):
    """What a run with this config trains and scores on: the synthetic scenes of data.py, or a
    folder of tiles (lib/tiles.py). train.py, baseline.py and lib.checkpoint.open_run (a finished
    run scored again) read it here, so the same flags and seed give them the same tiles and
    clicks."""
    sizes = [config[f"{split}_size"] for split in ("train", "val", "test")]
    layer = config["points_file"] and (config["points_file"], config["class_field"])
    how, folder = label_mode(config)[0], config["data"]
    return tiles.load_data(how, config["seed"], folder, config["image_size"], sizes, layer)


def crf_settings(config):
    """(weight, sigma_xy, sigma_band) of the CRF term, or None for pCE alone."""
    return (
        (config["crf_weight"], config["crf_sigma_xy"], config["crf_sigma_band"])
        if config["loss"] == "pce+crf"
        else None
    )


def describe_loss(config):
    """The run's loss in words, for its log: what train_step adds up under this config."""
    crf = crf_settings(config)
    loss = (
        ("class-balanced " if config["class_balanced"] else "")
        + config["loss"]
        + (f" (weight {crf[0]:g}, sigma xy {crf[1]:g} px, band {crf[2]:g})" if crf else "")
    )
    if config["extra_targets"]:
        loss += f" + {config['extra_weight']:g} x pCE on the maps of {config['extra_targets']}"
    sure = f"where the mean teacher is >= {config['confidence']:g} sure, ramped up"
    if config["consistency"]:
        most = config["sure_per_class"]
        loss += f" + {config['consistency']:g} x pCE on the pixels {sure}"
        loss += f" (at most {most} a class and crop)" if most else ""
    if config["grow"]:
        loss += f" + pCE on the clicks grown {sure}"
    if config["ema"]:
        loss += f"; scored: the mean teacher (EMA {config['ema_decay']:g})"
    return loss


def make_optimizer(model, config):
    """Adam with weight decay, and cosine annealing of its learning rate over the epochs."""
    optimizer = torch.optim.Adam(
        model.parameters(), lr=config["lr"], weight_decay=config["weight_decay"]
    )
    return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config["epochs"])


def train_step(
    model, optimizer, images, point_labels, precision, crf=None, extras=(), class_weights=None
):
    """One step on a batch: the forward pass in the run's precision, pCE on the clicks in fp32
    (class-balanced with class_weights; plus crf[0] * R, the CRF energy of crf.py, when crf is
    given; plus weight * pCE on each (target_labels, weight) of `extras`: another model's labels,
    or the teacher's of lib/teacher.py), backward, optimizer step.
    Returns the loss. Under torchrun `model` is DistributedDataParallel and each pCE is scaled by
    distributed.label_share, so the averaged gradient is that of pCE over the global batch."""
    device = next(model.parameters()).device
    with autocast(device, precision):
        logits = model(images.to(device, memory_format=memory_format(model)))
    point_labels = point_labels.to(device)
    # the loss in fp32
    share = label_share(point_labels, class_weights)
    loss = partial_cross_entropy(logits.float(), point_labels, class_weights) * share
    if crf is not None:  # the image's edges speak where no click does
        weight, sigma_xy, sigma_band = crf
        loss = loss + weight * crf_energy(
            logits,
            getattr(model, "module", model).standardise(images.to(device)),
            sigma_xy,
            sigma_band,
        )
    for target_labels, weight in extras:  # e.g. the forest's map: many labels, less sure
        target_labels = target_labels.to(device)
        loss = loss + weight * partial_cross_entropy(logits.float(), target_labels) * label_share(
            target_labels
        )
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()
