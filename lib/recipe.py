"""The training recipe: the report's settings, the loss in words, and one training step.

The report's recipe is Adam (lr 1e-3, weight decay 1e-4), cosine annealing, 5 epochs, batch 8,
horizontal flips, loss pCE on the clicks. `DEFAULTS` holds it, with the run's other settings;
lib/config.py builds train.py's command line from them and checks them; experiments.py and the run
records (records.py) identify a run by them. It stays the recipe of the synthetic scenes, whose
tables reproduce the report. A run on a folder of real tiles (--data) starts from `DATA_DEFAULTS`
instead: the tile recipe, measured against the report's on the validation splits of real aerial
sets (docs/recipe.md), with what learning from the unclicked pixels chose (docs/unclicked.md).
`train_step` is the one training step: train.py trains with it and bench.py times it, so the
benchmark measures exactly what training does.
"""

import torch

from lib import tiles
from lib.crf import crf_energy
from lib.device import autocast, memory_format
from lib.distributed import label_share
from pce import partial_cross_entropy

# pCE + CRF's settings, chosen on the validation splits of three seeds (docs/crf.md)
CRF_WEIGHT, CRF_SIGMA_XY, CRF_SIGMA_BAND = 2.0, 6.0, 2.0

DEFAULTS = dict(
    points=None,  # random clicks per training image ...
    points_per_class=None,  # ... or clicks per class present in the image
    strategy="random",  # how per-class clicks are placed: random | stratified
    class_balanced=False,  # weight each class by the inverse of its share of the clicks
    image_skip=False,  # give the U-Net's full-resolution block the image itself (unet.py)
    prior_shift=0.0,  # shift the logits this far towards the pixels' class shares (lib/prior.py)
    prior_estimate="em",  # ... the shares by EM, the mean posterior or their geometric mean
    paste=0,  # boxes around other crops' clicks pasted into each training crop (lib/crops.py)
    ema=False,  # validate, test and save the mean teacher, an average of the weights (lib/teacher.py)
    ema_decay=0.99,  # its decay, warmed up: min(decay, (1 + step) / (10 + step))
    consistency=0.0,  # weight of pCE on the teacher's sure pixels (0: off)
    sure_per_class=0,  # ... at most this many of them per class and crop (0: all)
    grow=False,  # grow each click's label over the teacher's sure pixels of its class
    confidence=0.9,  # how sure the teacher must be for a pixel to become a target
    dense=False,  # train on the full masks instead (the upper bound)
    points_file=None,  # ... or the clicks of a GIS point layer (GeoPackage, GeoJSON, shapefile)
    class_field="class",  # the layer's attribute that holds each point's class
    loss="pce",  # pce, or pce+crf: pCE + crf_weight * R, R the local CRF energy (crf.py)
    crf_weight=CRF_WEIGHT,
    crf_sigma_xy=CRF_SIGMA_XY,
    crf_sigma_band=CRF_SIGMA_BAND,
    epochs=5,
    batch_size=8,
    lr=1e-3,
    weight_decay=1e-4,
    extra_targets=None,  # class maps of the training tiles, trained on as extra targets ...
    extra_weight=0.5,  # ... with this weight beside the clicks' pCE (docs/recipe.md)
    augment="hflip",  # training crops: hflip (the report's) or dihedral (flips and quarter turns)
    tta=False,  # test-time augmentation: average the 8 dihedral views at test time
    train_zoom_out=1,  # when > 1, half the training crops cut this many times larger and shrunk
    tta_zoom_out=1,  # ... and, when > 1, those of the tile shrunk this many times (lib/evaluation.py)
    image_size=128,  # synthetic scenes are this size; folder tiles are cropped to it
    crops_per_epoch=None,  # default: cover the training area once (one crop per synthetic scene)
    seed=0,  # one seed picks the scenes, the clicks, the init and the batches
    device="auto",
    weights="imagenet",
    precision="auto",  # bf16 autocast where the device computes bf16 natively, else fp32
    train_size=200,
    val_size=60,
    test_size=60,
    data=None,  # a folder of your own tiles instead of synthetic scenes
    out=None,  # default runs/<name>
)

# real tiles (--data): the tile recipe of docs/recipe.md (every crop in any of the 8 orientations,
# the 8 averaged at test time) with what docs/unclicked.md chose on the validation splits: 15
# epochs, the logits shifted all the way to the pixels' class shares (their mean posterior), each
# test tile also seen shrunk 3x. Each flag can still be given, and then wins.
DATA_DEFAULTS = dict(
    augment="dihedral", epochs=15, tta=True, prior_shift=1.0, prior_estimate="mean", tta_zoom_out=3
)


def settings(given):
    """A run's full config: what was given (a None in place of a DATA_DEFAULTS key: not given),
    over DATA_DEFAULTS for a --data run, over DEFAULTS. The zoom is test-time augmentation, so
    a run without TTA is not zoomed; dense labels are the pixels, so their shares need no shift,
    and a run not shifted has no shares to pick."""
    given = {k: v for k, v in given.items() if not (k in DATA_DEFAULTS and v is None)}
    if not given.get("data"):
        return {**DEFAULTS, **given}
    merged = {**DEFAULTS, **DATA_DEFAULTS, **given}
    if "tta_zoom_out" not in given and not merged["tta"]:
        merged["tta_zoom_out"] = 1
    if "prior_shift" not in given and merged["dense"]:
        merged["prior_shift"] = 0.0
    return without_idle_estimate(merged, given)


def without_idle_estimate(config, given):
    """A run not shifted has no shares to pick: EM's, the default, stands in its config unless
    --prior-estimate was given (which check_config then refuses). settings applies it, and so
    does lib/checkpoint.open_run to a finished run scored again with other flags."""
    if "prior_estimate" not in given and not config["prior_shift"]:
        config = {**config, "prior_estimate": DEFAULTS["prior_estimate"]}
    return config


def label_mode(config):
    """How a run's training labels are made, decided here and nowhere else. Returns (how, what,
    name): how is "dense", the keyword arguments of clicks.sample_points, or None (a tile folder
    whose training tiles all bring their own clicks); `what` is said in the log, `name` names the
    run."""
    given = [
        k for k in ("points", "points_per_class", "points_file") if config.get(k) is not None
    ] + (["dense"] if config["dense"] else [])
    if len(given) > 1 or not (given or config["data"]):
        raise ValueError(
            f"choose exactly one of --points N, --points-per-class K, --dense, --points-file (got "
            f"{given or 'none'})"
        )
    if config.get("points_file"):
        files = config["points_file"]
        return (
            None,
            f"clicks from {', '.join([files] if isinstance(files, str) else files)}",
            "layer",
        )
    if config["dense"]:
        return "dense", "dense masks", "dense"
    if config["points"] is not None:
        return (
            dict(points_per_image=config["points"]),
            f"{config['points']} random points/image",
            f"points{config['points']}",
        )
    if config["points_per_class"] is not None:
        k, strategy = config["points_per_class"], config["strategy"]
        return (
            dict(points_per_class=k, strategy=strategy),
            f"{k} {strategy} points/class",
            f"{k}perclass-{strategy}",
        )
    return None, "clicks from points/*.csv", "clicks"


def load_run_data(config):
    """What a run with this config trains and scores on (tiles.load_data): train.py, baseline.py
    and lib.checkpoint.open_run (a finished run scored again) read it here, so the same flags and
    seed give them the same tiles and clicks."""
    sizes = [config[f"{split}_size"] for split in ("train", "val", "test")]
    layer = config["points_file"] and (config["points_file"], config["class_field"])
    how, folder = label_mode(config)[0], config["data"]
    return tiles.load_data(how, config["seed"], folder, config["image_size"], sizes, layer)


def run_name(config):
    """runs/<name>: the labels, the loss and the seed, e.g. points200-seed0,
    10perclass-random-crf-seed1."""
    crf = "-crf" if config["loss"] == "pce+crf" else ""
    return f"{label_mode(config)[2]}{crf}-seed{config['seed']}"


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
