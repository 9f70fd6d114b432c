"""A run's settings, each in one home: the table `SETTINGS`, one row a setting (its name, default,
--data default, type or choices, check and help).

Everything else is derived from it: the command line of train.py (`add_options`, baseline.py takes
the data rows), the checks every run's config passes before any work (`check_config`), the full
config of a run (`settings`), the argv that rebuilds a run (`as_argv`, for experiments.py and the
run records) and the run's folder name (`run_name`). The report's recipe is the defaults: Adam
(lr 1e-3, weight decay 1e-4), cosine annealing, 5 epochs, batch 8, horizontal flips, pCE on the
clicks; it stays the recipe of the synthetic scenes, whose tables reproduce the report. A run on a
folder of real tiles (--data) starts from the --data defaults instead: the tile recipe of
docs/recipe.md with what docs/unclicked.md chose on the validation splits. A run that starts from
another run's weights (--init: a warm round of the labelling loop) takes the warm defaults over
those, a short schedule of its own (chosen on validation: docs/suggest.md, Warm rounds). A flag
given always wins.
"""

import argparse
import json
from pathlib import Path
from typing import NamedTuple

from clicks import STRATEGIES
from lib.crops import AUGMENTATIONS
from lib.device import PRECISIONS
from lib.prior import ESTIMATES
from unet import DIVISOR, check_weights

NO_OTHER_DEFAULT = object()  # a setting whose --data (or --init) default is its default
# a warm round's schedule (--init): chosen on validation, docs/suggest.md (Warm rounds)
WARM_EPOCHS = 2
WARM_LR = 3e-4
# --data runs test the mean of the last epochs' weights: at most this many, the last third
AVERAGE_LAST = 5


def flag(name):
    """A setting's flag: prior_shift -> --prior-shift."""
    return "--" + name.replace("_", "-")


# The checks a row names: each returns what is wrong with a value, or None.
def positive_int(name, value):
    if value is not None and (not isinstance(value, int) or value < 1):
        return f"{flag(name)} must be a positive integer, got {value}"


def non_negative_int(name, value):
    if not isinstance(value, int) or value < 0:
        return f"{flag(name)} must be a non-negative integer, got {value}"


def boolean(name, value):
    if not isinstance(value, bool):
        return f"{name} must be True or False, got {value!r}"


def positive(name, value):
    if not value > 0:
        return f"{flag(name)} must be > 0, got {value}"


def non_negative(name, value):
    if not value >= 0:
        return f"{flag(name)} must be >= 0, got {value}"


def fraction_open(name, value):  # (0, 1)
    if not 0 < value < 1:
        return f"{flag(name)} must be in (0, 1), got {value}"


def fraction_from_0(name, value):  # [0, 1)
    if not 0 <= value < 1:
        return f"{flag(name)} must be in [0, 1), got {value}"


def fraction(name, value):  # [0, 1]
    if not 0 <= value <= 1:
        return f"{flag(name)} must be in [0, 1], got {value}"


class Setting(NamedTuple):
    name: str
    default: object
    help: str = ""
    type: type = None  # int, float or str; None: a switch (bool) or free text
    choices: tuple = None
    check: object = None  # one of the checks above
    data_default: object = NO_OTHER_DEFAULT
    warm_default: object = NO_OTHER_DEFAULT  # its default with --init, over the others
    group: str = "training"  # "data": what a run learns from (baseline.py takes these too)
    nargs: str = None


# fmt: off
SETTINGS = (
    # what a run learns from: the labels, the seed and the data
    Setting("points", None, "random clicks per training image", int, check=positive_int,
            group="data"),
    Setting("points_per_class", None, "clicks per class present in each image", int,
            check=positive_int, group="data"),
    Setting("strategy", "random", "how per-class clicks are placed", str, STRATEGIES, group="data"),
    Setting("dense", False, "train on the full masks (upper bound)", check=boolean, group="data"),
    Setting("seed", 0, "one seed picks the scenes, the clicks, the init and the batches", int,
            check=non_negative_int, group="data"),
    Setting("image_size", 128, "synthetic scenes are this size; folder tiles are cropped to it",
            int, check=positive_int, group="data"),
    Setting("train_size", 200, "synthetic training scenes", int, check=positive_int, group="data"),
    Setting("val_size", 60, "synthetic validation scenes", int, check=non_negative_int,
            group="data"),
    Setting("test_size", 60, "synthetic test scenes", int, check=positive_int, group="data"),
    Setting("data", None, "folder of your own tiles (docs/own-data.md)", group="data"),
    Setting("points_file", None, "GIS point layers (GeoPackage, GeoJSON, shapefile): clicks on the "
            "--data GeoTIFF tiles, reference points on val/test tiles without masks (docs/gis.md)",
            group="data", nargs="+"),
    Setting("class_field", "class", "the layer's class attribute", group="data"),
    # the recipe
    Setting("augment", "hflip", "training crops: hflip (the report's) or dihedral, all 8 flips and "
            "quarter turns", str, AUGMENTATIONS, data_default="dihedral"),
    Setting("epochs", 5, "training epochs", int, check=positive_int, data_default=15,
            warm_default=WARM_EPOCHS),
    Setting("batch_size", 8, "crops per batch (in all, under torchrun)", int, check=positive_int),
    Setting("lr", 1e-3, "Adam's learning rate, annealed by a cosine", float, check=positive,
            warm_default=WARM_LR),
    Setting("weight_decay", 1e-4, "Adam's weight decay", float, check=non_negative),
    Setting("average_last", 0, "test the mean of the weights after each of the last K epochs "
            "(stochastic weight averaging, lib/averaging.py) instead of the best epoch; 0: off; "
            "--data's K is at most the last third of the epochs, none with --ema",
            int, check=non_negative_int, data_default=AVERAGE_LAST),
    Setting("crops_per_epoch", None, "training crops per epoch (default: cover the training area "
            "once, ceil(total tile area / image-size^2))", int, check=positive_int),
    Setting("train_zoom_out", 1, "cut half the training crops K times larger and shrink them K "
            "times (lib/crops.py), the view of --tta-zoom-out K; 1: off", int, check=positive_int),
    Setting("image_skip", False, "give the U-Net's full-resolution block the image itself, every "
            "pixel's own values (unet.py)", check=boolean),
    Setting("standardise", "set", "each band standardised with the training tiles' mean and std "
            "(set), or then also with each window's own (window): scenes of another brightness "
            "or contrast (unet.py)", str, ("set", "window")),
    Setting("class_balanced", False, "weight each class by the inverse of its share of the "
            "training clicks (weights averaging 1)", check=boolean),
    Setting("loss", "pce", "pce+crf adds the local CRF energy of lib/crf.py, weighted by "
            "--crf-weight", str, ("pce", "pce+crf")),
    Setting("crf_weight", 2.0, "the CRF term's weight (chosen on validation, docs/crf.md)", float,
            check=non_negative),
    Setting("crf_sigma_xy", 6.0, "the CRF kernel's width, px", float, check=positive),
    Setting("crf_sigma_band", 2.0, "the CRF kernel's width, in standard deviations of the bands",
            float, check=positive),
    Setting("paste", 0, "boxes, each around a click of another crop of the batch, pasted into each "
            "training crop: context decoupling (lib/crops.py); 0: off", int,
            check=non_negative_int),
    Setting("photometric", 0.0, "each training crop's contrast and brightness varied by up to this "
            "fraction, its bands' gains by half of it, half of the crops blurred: another sensor, "
            "season or haze (lib/crops.py); 0: off", float, check=fraction_from_0),
    Setting("extra_targets", None, "folder of <stem>_classes.png maps of the training tiles "
            "(255: none), e.g. baseline.py --predict-train or predict.py --min-confidence: extra "
            "targets"),
    Setting("extra_weight", 0.5, "their pCE's weight beside the clicks'", float, check=positive),
    # the mean teacher (lib/teacher.py)
    Setting("ema", False, "validate, test and save the mean teacher: an average of the weights "
            "that does not swing from step to step", check=boolean),
    Setting("ema_decay", 0.99, "its decay, warmed up (lib/teacher.py)", float,
            check=fraction_from_0),
    Setting("consistency", 0.0, "weight of pCE on the pixels the mean teacher is sure of, learnt "
            "on a strong view (CutMix, jitter); 0: off", float, check=non_negative),
    Setting("sure_per_class", 0, "at most this many of the teacher's sure pixels per class and "
            "crop, drawn at random; 0: all", int, check=non_negative_int),
    Setting("grow", False, "grow each click's label over the connected pixels the mean teacher is "
            "sure are its class", check=boolean),
    Setting("confidence", 0.9, "how sure the teacher must be for a pixel to become a target",
            float, check=fraction_open),
    # scoring
    Setting("tta", False, "average the 8 orientations at test time (--no-tta to turn off)",
            check=boolean, data_default=True),
    Setting("prior_shift", 0.0, "after training, shift the logits by this x log(pixel share / "
            "click share) of each class (lib/prior.py); none on clicks read from files, not drawn",
            float, check=fraction, data_default=1.0),
    Setting("prior_estimate", "em", "the pixels' shares it shifts to: EM's, the mean posterior or "
            "their geometric mean", str, ESTIMATES, data_default="mean"),
    Setting("forest_weight", 0.0, "at test and in predict.py, fuse the pixel forest's class "
            "probabilities (baseline.py's, fitted on the same clicks) with the network's by a "
            "geometric mean of this weight; 0: off (lib/forest.fuse); none with --dense", float,
            check=fraction, data_default=0.5),
    Setting("tta_zoom_out", 1, "with --tta, also see each test tile shrunk K times (K x K pixels "
            "averaged) and average; 1: off", int, data_default=3),
    Setting("zoom_on_val", False, "with --tta-zoom-out K > 1: score val with the tile shrunk and "
            "as it is, and see test as val scored higher (a view the run's own val chooses)",
            check=boolean, data_default=True),
    Setting("tile_prior", 0.0, "weight each scored tile's map by the tile's own class shares to "
            "this power: on a tile mostly one class, its unsure pixels go to that class "
            "(lib/evaluation.tile_prior); where val is scored it chooses this or none; 0: off",
            float, check=non_negative, data_default=2.0),
    # where it runs and what it starts from
    Setting("device", "auto", "auto, cpu, cuda, cuda:N"),
    Setting("precision", "auto", "auto: bf16 where the device computes it natively, else fp32",
            str, PRECISIONS),
    Setting("weights", "imagenet", "imagenet, none or a resnet34 weights file"),
    Setting("init", None, "start from the weights of a finished run (its folder or model.pt) of "
            "the same classes and bands: a warm round of the labelling loop"),
    Setting("out", None, "output folder (default runs/<name>)"),
)
# fmt: on

DEFAULTS = {s.name: s.default for s in SETTINGS}
DATA_DEFAULTS = {s.name: s.data_default for s in SETTINGS if s.data_default is not NO_OTHER_DEFAULT}
WARM_DEFAULTS = {s.name: s.warm_default for s in SETTINGS if s.warm_default is not NO_OTHER_DEFAULT}
# the flags whose default depends on --data or --init: None in the parser, so that settings() can
# tell they were not given (in the table's order)
FLEXIBLE = tuple(s.name for s in SETTINGS if s.name in DATA_DEFAULTS or s.name in WARM_DEFAULTS)
ROWS = {s.name: s for s in SETTINGS}


def add_options(parser, group=None, names=None):
    """The settings' flags, one a row (those of `group`, or those `names` names, or all), with the
    defaults said in each help from the table."""
    for s in SETTINGS:
        if (group and s.group != group) or (names and s.name not in names):
            continue
        others = [(f"--{w}", d) for w, d in (("data", s.data_default), ("init", s.warm_default))]
        others = [f", with {w} {d}" for w, d in others if d is not NO_OTHER_DEFAULT]
        if others:
            text = f"{s.help} (default {s.default}{''.join(others)})"
        elif s.default is None or s.default is False:  # unset, or a switch left off
            text = s.help
        else:
            text = f"{s.help} (default {s.default})"
        # a --data or --init default: no default here, so that settings() can tell what was given
        default = None if s.name in FLEXIBLE else s.default
        if isinstance(s.default, bool):
            action = argparse.BooleanOptionalAction if s.data_default is True else "store_true"
            parser.add_argument(flag(s.name), action=action, default=default, help=text)
        else:
            parser.add_argument(
                flag(s.name),
                type=s.type,
                choices=s.choices,
                default=default,
                help=text,
                nargs=s.nargs,
            )
    return parser


def settings(given):
    """A run's full config: what was given (a None in place of a --data or --init default: not
    given), over the warm defaults for a run with --init, over the --data defaults for a --data
    run, over the defaults. The zoom is test-time augmentation, so a run without TTA is not zoomed;
    dense labels are the pixels, so their shares need no shift and there are no clicks to fit a
    forest on; clicks read from files (a person's, the labelling page's, proposals answered) were
    drawn by no known rule, so log(pixel share / click share) says nothing the shift can undo; a
    run not shifted has no shares to pick; the weights averaged are those of the last third of the
    epochs (a warm round's two: none), none beside the mean teacher's average; a warm round sees
    test in the view its start's val chose (start_view)."""
    given = {k: v for k, v in given.items() if not (k in FLEXIBLE and v is None)}
    warm = WARM_DEFAULTS if given.get("init") else {}
    if not given.get("data"):
        return {**DEFAULTS, **warm, **given}
    merged = {**DEFAULTS, **DATA_DEFAULTS, **warm, **given}
    if warm:
        view = start_view(given["init"])
        if {"tta_zoom_out", "zoom_on_val"} & set(given):
            view = {k: v for k, v in view.items() if k not in ("tta_zoom_out", "zoom_on_val")}
        merged.update({k: v for k, v in view.items() if k not in given})
    if "tta_zoom_out" not in given and not merged["tta"]:
        merged["tta_zoom_out"] = 1
    # label_mode's None: every training tile's clicks read from files, none drawn
    if "prior_shift" not in given and (merged["dense"] or label_mode(merged)[0] is None):
        merged["prior_shift"] = 0.0
    if "forest_weight" not in given and merged["dense"]:
        merged["forest_weight"] = 0.0
    if "average_last" not in given:  # the last third of the epochs, none beside the mean teacher
        last_third = min(AVERAGE_LAST, merged["epochs"] // 3)
        merged["average_last"] = 0 if merged["ema"] else last_third
    return without_idle_estimate(merged, given)


def without_idle_estimate(config, given):
    """A run not shifted has no shares to pick: EM's, the default, stands in its config unless
    --prior-estimate was given (which check_config then refuses). settings applies it, and so
    does lib/checkpoint.open_run to a finished run scored again with other flags."""
    if "prior_estimate" not in given and not config["prior_shift"]:
        config = {**config, "prior_estimate": DEFAULTS["prior_estimate"]}
    return config


def check_config(config):
    """The config with every value checked: a bad one raises ValueError naming it and what is
    allowed. Each row's own check or choices first, then the rules between settings."""
    unknown = set(config) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown config keys {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    label_mode(config)
    for s in SETTINGS:
        value = config[s.name]
        if s.choices and value not in s.choices:
            raise ValueError(f"unknown {s.name} {value!r}: use {' or '.join(s.choices)}")
        wrong = s.check and s.check(s.name, value)
        if wrong:
            raise ValueError(wrong)
    for rule in RULES:
        rule(config)
    return config


def strategy_needs_per_class(config):
    if config["strategy"] != "random" and config["points_per_class"] is None:
        raise ValueError(f"--strategy {config['strategy']} applies to --points-per-class only")


def estimate_needs_shift(config):
    if config["prior_estimate"] != "em" and not config["prior_shift"]:
        raise ValueError(
            f"--prior-estimate {config['prior_estimate']} picks the shares --prior-shift S "
            "shifts to: it needs --prior-shift"
        )


def sure_per_class_needs_consistency(config):
    if config["sure_per_class"] and not config["consistency"]:
        raise ValueError("--sure-per-class caps --consistency's targets: it needs --consistency W")


def extra_targets_need_data(config):
    if config["extra_targets"] and not config["data"]:
        raise ValueError(
            "--extra-targets needs a tile folder (--data DIR): its maps are found by tile name"
        )


def image_size_fits_the_network(config):
    if config["image_size"] % DIVISOR:
        raise ValueError(
            f"--image-size must be a multiple of {DIVISOR}, got {config['image_size']}"
        )


def zoom_with_tta(config):
    check_tta_zoom_out(config["tta_zoom_out"], config["tta"])


def weights_exist(config):
    check_weights(config["weights"])


def average_within_the_run(config):
    if config["average_last"] > config["epochs"]:
        raise ValueError(
            f"--average-last {config['average_last']} averages more epochs than the run's "
            f"{config['epochs']}"
        )
    if config["average_last"] and config["ema"]:
        raise ValueError("--average-last and --ema both average the weights: choose one")


def forest_needs_clicks(config):
    if config["forest_weight"] and config["dense"]:
        raise ValueError("--forest-weight fits the forest on the clicks: --dense has none")


def init_is_a_finished_run(config):
    if config["init"] is not None:
        init_checkpoint(config["init"])


RULES = (
    strategy_needs_per_class,
    zoom_with_tta,
    estimate_needs_shift,
    sure_per_class_needs_consistency,
    extra_targets_need_data,
    image_size_fits_the_network,
    weights_exist,
    init_is_a_finished_run,
    average_within_the_run,
    forest_needs_clicks,
)


def init_checkpoint(init):
    """--init's model.pt: RUN/model.pt of a finished run (its metrics.json written last), or a
    model.pt given itself; one line for a missing path, or a run still training."""
    path = Path(init)
    folder = path if path.is_dir() else path.parent
    if path.is_dir():
        path = path / "model.pt"
    if not path.is_file():
        raise ValueError(f"--init {init}: no model.pt there; give a finished train.py run")
    if (folder / "resume.pt").is_file() and not (folder / "metrics.json").is_file():
        raise ValueError(
            f"--init {init}: that run is still training, or was interrupted ({folder}/resume.pt, "
            f"no metrics.json): let it finish (--resume), or give a finished run"
        )
    return path


def start_record(init):
    """The metrics.json of --init's run ({} where there is none: a model.pt given alone, or a path
    init_checkpoint refuses); one line if it is not a run's record."""
    path = Path(init)
    record = (path if path.is_dir() else path.parent) / "metrics.json"
    if not record.is_file():
        return {}
    try:
        return json.loads(record.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"--init {init}: {record} is not a run's metrics.json ({error})") from None


def start_view(init):
    """A warm round's view of test: the one its start's own val chose (--zoom-on-val), and no
    second choice ({} if its start chose none), and its start's tile prior, as val chose it or as
    it was given. Scoring val in both views again would cost the round about a fifth of its time
    (DroneDeploy: 135 s of 618), for a choice its start, the same network a few hundred steps
    earlier, made on the same tiles (docs/suggest.md, Warm rounds)."""
    record = start_record(init)
    chosen = record.get("tta_zoom_out_chosen")
    view = dict(tta_zoom_out=chosen, zoom_on_val=False) if chosen else {}
    given = record.get("config", {}).get("tile_prior", 0.0)
    return dict(view, tile_prior=record.get("tile_prior_chosen", given))


def check_tta_zoom_out(zoom_out, tta):
    """--tta-zoom-out, as train.py and predict.py take it: a positive integer, above 1 only with
    --tta (it is part of the test-time augmentation)."""
    if not isinstance(zoom_out, int) or zoom_out < 1:
        raise ValueError(f"--tta-zoom-out must be a positive integer, got {zoom_out}")
    if zoom_out > 1 and not tta:
        raise ValueError(f"--tta-zoom-out {zoom_out} is test-time augmentation: it needs --tta")


def label_mode(config):
    """How a run's training labels are made, decided here and nowhere else. Returns (how, what,
    name): how is "dense", the keyword arguments of clicks.sample_points, or None (a tile folder
    whose training tiles all bring their own clicks); `what` is said in the log, `name` begins the
    run's name."""
    given = [k for k in ("points", "points_per_class", "points_file") if config.get(k) is not None]
    if config["dense"]:
        given.append("dense")
    if len(given) > 1 or not (given or config["data"]):
        raise ValueError(
            f"choose exactly one of --points N, --points-per-class K, --dense, --points-file (got "
            f"{given or 'none'})"
        )
    if config.get("points_file"):
        files = config["points_file"]
        names = ", ".join([files] if isinstance(files, str) else files)
        return None, f"clicks from {names}", "layer"
    if config["dense"]:
        return "dense", "dense masks", "dense"
    if config["points"] is not None:
        how = dict(points_per_image=config["points"])
        return how, f"{config['points']} random points/image", f"points{config['points']}"
    if config["points_per_class"] is not None:
        k, strategy = config["points_per_class"], config["strategy"]
        how = dict(points_per_class=k, strategy=strategy)
        return how, f"{k} {strategy} points/class", f"{k}perclass-{strategy}"
    return None, "clicks from points/*.csv", "clicks"


def as_flags(name, value):
    """train.py's flags for one setting's value: ['--epochs', '10'], ['--tta'], ['--no-tta'],
    [] for a switch left off or a setting not set."""
    if value is None or (value is False and ROWS[name].data_default is NO_OTHER_DEFAULT):
        return []
    if isinstance(value, bool):
        return [flag(name)] if value else [flag(name).replace("--", "--no-", 1)]
    if isinstance(value, float):
        return [flag(name), f"{value:g}"]
    if isinstance(value, (list, tuple)):
        return [flag(name), *map(str, value)]
    return [flag(name), str(value)]


def as_argv(config):
    """The argv of train.py that runs this config (experiments.py, and the records that say how to
    repeat a run)."""
    return [word for name, value in config.items() for word in as_flags(name, value)]


# what names a run's folder besides its labels and seed: not where its data are, where it writes or
# on which device it runs
NOT_IN_NAME = (
    "points",
    "points_per_class",
    "strategy",
    "dense",
    "points_file",
    "seed",
    "data",
    "class_field",
    "device",
    "out",
    "init",
)


def unasked(config, name):
    """What settings() gives `name` with the rest of config given as it is: a default derived
    from the others (--data's --average-last, from its epochs) names no run."""
    if name not in FLEXIBLE:
        return DEFAULTS[name]
    return settings({**config, name: None})[name]


def run_name(config):
    """runs/<name>: the labels, each setting that is neither its default nor, on a --data run, its
    --data default, and the seed, e.g. points200-seed0, 10perclass-random-loss-pce+crf-seed1."""
    usual = [DEFAULTS, {**DEFAULTS, **DATA_DEFAULTS}] if config["data"] else [DEFAULTS]
    if config.get("init"):
        usual += [{**defaults, **WARM_DEFAULTS} for defaults in usual]
    differs = [
        " ".join(as_flags(name, value))[2:].replace(" ", "-")
        for name, value in config.items()
        if name in DEFAULTS
        and name not in NOT_IN_NAME
        and all(value != defaults[name] for defaults in usual)
        and value != unasked(config, name)
    ]
    warm = ["warm"] if config.get("init") else []  # --init's run is a path: named by its use
    return "-".join([label_mode(config)[2], *differs, *warm, f"seed{config['seed']}"])
