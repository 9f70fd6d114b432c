"""The command line and config plumbing of train.py and baseline.py: their flags, one line a flag
(defaults from recipe.DEFAULTS), and `check_config`, which checks every value of a run's config
before any work, so that a bad one is refused in one line naming it and what is allowed."""

import argparse

from clicks import STRATEGIES, check_choice
from lib.cli import add_device_options
from lib.crops import AUGMENTATIONS
from lib.prior import ESTIMATES
from lib.recipe import DATA_DEFAULTS, DEFAULTS, label_mode
from unet import DIVISOR, check_weights


def add_data_options(parser):
    """The flags that say what a run learns from: the labels, the seed and the data (train.py's and
    baseline.py's alike, so the same flags give both the same clicks)."""
    parser.add_argument("--points", type=int, help="random clicks per training image")
    parser.add_argument(
        "--points-per-class", type=int, help="clicks per class present in each image"
    )
    parser.add_argument("--strategy", default=DEFAULTS["strategy"], choices=STRATEGIES)
    parser.add_argument(
        "--dense", action="store_true", help="train on the full masks (upper bound)"
    )
    for key in ("seed", "image_size", "train_size", "val_size", "test_size"):
        parser.add_argument(f"--{key.replace('_', '-')}", type=int, default=DEFAULTS[key])
    parser.add_argument("--data", help="folder of your own tiles (docs/own-data.md)")
    parser.add_argument(
        "--points-file",
        nargs="+",
        help="GIS point layers (GeoPackage, GeoJSON, shapefile): clicks "
        "on the --data GeoTIFF tiles, reference points on val/test tiles without masks "
        "(docs/gis.md)",
    )
    parser.add_argument(
        "--class-field", default=DEFAULTS["class_field"], help="the layer's class attribute"
    )


def add_training_options(parser):
    """train.py's flags beyond the data's: the recipe, the levers of lib/teacher.py, the device."""
    # one line a flag, so that the command line reads as a table
    # fmt: off
    add = parser.add_argument
    add("--epochs", type=int,
        help=f"default {DEFAULTS['epochs']}; with --data {DATA_DEFAULTS['epochs']}")
    add("--batch-size", type=int, default=DEFAULTS["batch_size"])
    add("--image-skip", action="store_true", help="give the U-Net's full-resolution block the "
        "image itself, every pixel's own values (unet.py)")
    add("--paste", type=int, default=DEFAULTS["paste"], help="boxes, each around a click of "
        "another crop of the batch, pasted into each training crop: context decoupling; 0: off")
    add("--prior-shift", type=float, help="after training, shift the logits by this x log(pixel "
        "share / click share) of each class (lib/prior.py); default 0, with --data 1 (not --dense)")
    add("--prior-estimate", choices=ESTIMATES, help="the pixels' shares it shifts to: EM's "
        "(default), the mean posterior (with --data) or their geometric mean")
    add("--class-balanced", action="store_true", help="weight each class by the inverse of its "
        "share of the training clicks (weights averaging 1)")
    add("--ema", action="store_true", help="validate, test and save the mean teacher: an average "
        "of the weights that does not swing from step to step (lib/teacher.py)")
    add("--ema-decay", type=float, default=DEFAULTS["ema_decay"], help="its decay (warmed up)")
    add("--consistency", type=float, default=DEFAULTS["consistency"], help="weight of pCE on the "
        "pixels the mean teacher is sure of, learnt on a strong view (CutMix, jitter); 0: off")
    add("--sure-per-class", type=int, default=DEFAULTS["sure_per_class"], help="at most this "
        "many of the teacher's sure pixels per class and crop, drawn at random; 0: all")
    add("--grow", action="store_true", help="grow each click's label over the connected pixels "
        "the mean teacher is sure are its class")
    add("--confidence", type=float, default=DEFAULTS["confidence"], help="how sure the teacher "
        "must be for a pixel to become a target")
    add("--augment", choices=AUGMENTATIONS, help="training crops: hflip (default) or dihedral, "
        "all 8 flips and quarter turns (default with --data)")
    add("--tta", action=argparse.BooleanOptionalAction, help="average the 8 orientations at test "
        "time (default with --data; --no-tta to turn off)")
    add("--train-zoom-out", type=int, default=DEFAULTS["train_zoom_out"], help="cut half the "
        "training crops K times larger and shrink them K times (lib/crops.py), the view of "
        "--tta-zoom-out K; 1: off")
    add("--tta-zoom-out", type=int, help="with --tta, also see each test tile shrunk K times (K x "
        "K pixels averaged) and average; default 1 (off), with --data and TTA 3")
    add("--crops-per-epoch", type=int, help="training crops per epoch (default: cover the training "
        "area once, ceil(total tile area / image-size^2))")
    add("--loss", default=DEFAULTS["loss"], choices=["pce", "pce+crf"],
        help="pce+crf adds the local CRF energy of crf.py, weighted by --crf-weight")
    add("--crf-weight", type=float, default=DEFAULTS["crf_weight"])
    add("--crf-sigma-xy", type=float, default=DEFAULTS["crf_sigma_xy"], help="kernel width, px")
    add("--crf-sigma-band", type=float, default=DEFAULTS["crf_sigma_band"],
        help="kernel width, in standard deviations of the bands")
    add("--extra-targets", help="folder of <stem>_classes.png maps of the training tiles (255: "
        "none), e.g. baseline.py --predict-train or predict.py --min-confidence: extra targets")
    add("--extra-weight", type=float, default=DEFAULTS["extra_weight"],
        help="their pCE's weight beside the clicks'")
    add("--lr", type=float, default=DEFAULTS["lr"])
    add("--weight-decay", type=float, default=DEFAULTS["weight_decay"])
    add_device_options(parser)
    add("--weights", default=DEFAULTS["weights"], help="imagenet, none or a resnet34 weights file")
    add("--out", help="output folder (default runs/<name>)")
    add("--resume", action="store_true", help="go on from <out>/resume.pt, the state an "
        "interrupted run with the same flags left after its last saved epoch")
    # fmt: on


def add_train_options(parser):
    """train.py's whole command line: the data's flags and the training's."""
    add_data_options(parser)
    add_training_options(parser)
    return parser


def check_config(config):
    """The config with every value checked: a bad one raises ValueError naming it and what is
    allowed."""
    unknown = set(config) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown config keys {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    label_mode(config)
    for key in (
        "points",
        "points_per_class",
        "epochs",
        "batch_size",
        "image_size",
        "train_size",
        "test_size",
        "crops_per_epoch",
        "train_zoom_out",
    ):
        if config[key] is not None and (not isinstance(config[key], int) or config[key] < 1):
            raise ValueError(
                f"--{key.replace('_', '-')} must be a positive integer, got {config[key]}"
            )
    for key in ("val_size", "seed", "paste", "sure_per_class"):
        if not isinstance(config[key], int) or config[key] < 0:
            raise ValueError(
                f"--{key.replace('_', '-')} must be a non-negative integer, got {config[key]}"
            )
    check_choice("strategy", config["strategy"], STRATEGIES)
    if config["strategy"] != "random" and config["points_per_class"] is None:
        raise ValueError(f"--strategy {config['strategy']} applies to --points-per-class only")
    for key in ("image_skip", "class_balanced", "ema", "grow", "tta"):
        if not isinstance(config[key], bool):
            raise ValueError(f"{key} must be True or False, got {config[key]!r}")
    if not 0 <= config["ema_decay"] < 1:
        raise ValueError(f"--ema-decay must be in [0, 1), got {config['ema_decay']}")
    if not 0 < config["confidence"] < 1:
        raise ValueError(f"--confidence must be in (0, 1), got {config['confidence']}")
    check_tta_zoom_out(config["tta_zoom_out"], config["tta"])
    if not 0 <= config["prior_shift"] <= 1:
        raise ValueError(f"--prior-shift must be in [0, 1], got {config['prior_shift']}")
    check_choice("prior_estimate", config["prior_estimate"], ESTIMATES)
    if config["prior_estimate"] != "em" and not config["prior_shift"]:
        raise ValueError(
            f"--prior-estimate {config['prior_estimate']} picks the shares --prior-shift S "
            "shifts to: it needs --prior-shift"
        )
    if not config["consistency"] >= 0:
        raise ValueError(f"--consistency must be >= 0, got {config['consistency']}")
    if config["sure_per_class"] and not config["consistency"]:
        raise ValueError("--sure-per-class caps --consistency's targets: it needs --consistency W")
    check_choice("augment", config["augment"], AUGMENTATIONS)
    if config["loss"] not in ("pce", "pce+crf"):
        raise ValueError(f"unknown loss {config['loss']!r}: use pce or pce+crf")
    if (
        not config["crf_weight"] >= 0
        or not config["crf_sigma_xy"] > 0
        or not config["crf_sigma_band"] > 0
    ):
        raise ValueError(
            f"--crf-weight must be >= 0 and the CRF sigmas > 0, got {config['crf_weight']}, "
            f"{config['crf_sigma_xy']} and {config['crf_sigma_band']}"
        )
    if not config["extra_weight"] > 0:
        raise ValueError(f"--extra-weight must be > 0, got {config['extra_weight']}")
    if config["extra_targets"] and not config["data"]:
        raise ValueError(
            "--extra-targets needs a tile folder (--data DIR): its maps are found by tile name"
        )
    if config["image_size"] % DIVISOR:
        raise ValueError(
            f"--image-size must be a multiple of {DIVISOR}, got {config['image_size']}"
        )
    if not config["lr"] > 0 or not config["weight_decay"] >= 0:
        raise ValueError(
            f"--lr must be > 0 and --weight-decay >= 0, got {config['lr']} and "
            f"{config['weight_decay']}"
        )
    check_weights(config["weights"])
    return config


def check_tta_zoom_out(zoom_out, tta):
    """--tta-zoom-out, as train.py and predict.py take it: a positive integer, above 1 only with
    --tta (it is part of the test-time augmentation)."""
    if not isinstance(zoom_out, int) or zoom_out < 1:
        raise ValueError(f"--tta-zoom-out must be a positive integer, got {zoom_out}")
    if zoom_out > 1 and not tta:
        raise ValueError(f"--tta-zoom-out {zoom_out} is test-time augmentation: it needs --tta")
