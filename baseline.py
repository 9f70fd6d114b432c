"""The pixel classifier: the baseline the network has to beat, trained on the very same clicks.

    python baseline.py --points-per-class 10                       the synthetic scenes
    python baseline.py --data DIR --points-per-class 10 --seed 1   your own tiles

What a remote-sensing analyst runs today with a few clicks per class (ilastik's recipe; QGIS's
Semi-Automatic Classification plugin and Earth Engine do the same): a random forest on each
pixel's features (lib/forest.py: per band its value, Gaussian smoothing, gradient magnitude and
Laplacian of Gaussian at five scales, 48 features for RGB). A forest of 200 class-balanced trees
(scikit-learn) is fitted on the clicked pixels and labels every pixel of the val and test tiles.
It needs no GPU and no epochs.

The clicks come from recipe.load_run_data, the code train.py draws them with, so the same flags
and seed give both the same clicks. Scores come from lib/evaluation.py, the network's own.
<out>/metrics.json holds the fields of train.py's that apply, and <out>/predictions/ a class map
and a preview per test tile, as predict.py writes them; with --predict-train,
<out>/train-predictions/ the class map of each training tile, which train.py --extra-targets can
learn from (docs/recipe.md). --tile-prior S weighs each tile's map by its own class shares, as
train.py's --tile-prior does, where val chooses it: the forest beside a network run that has it.
"""

import os
import time
from pathlib import Path

import numpy as np
import torch

from clicks import count_labels
from lib import annotations
from lib.checkpoint import save_metrics
from lib.cli import (
    OneLineParser,
    atomic,
    check_output_folder,
    clear_old_run,
    guard,
    need,
    run_command,
)
from lib.device import cpu_name
from lib.evaluation import chosen_on_val, confusion_matrix, print_table, scores, tile_prior
from lib.forest import FLOOR, SIGMAS, TREES, fit, predict, probabilities, training_pixels
from lib.recipe import load_run_data
from lib.settings import DEFAULTS, add_options, check_config, label_mode, run_name


def score(forest, split, classes, name, save=None, strengths=(0.0,)):
    """evaluation.scores over a split, one for each tile prior of `strengths` (0: the forest's
    own map; lib/evaluation.tile_prior on the log of its votes); save(index, class map) for each
    tile, the first strength's, if given."""
    matrices = [torch.zeros(len(classes), len(classes), dtype=torch.int64) for _ in strengths]
    started = said = time.time()
    for index, (image, dense_mask) in enumerate(zip(*split)):
        truth = torch.tensor(np.asarray(dense_mask))
        class_maps = tile_maps(forest, image, len(classes), strengths)
        for matrix, class_map in zip(matrices, class_maps):
            matrix += confusion_matrix(torch.from_numpy(class_map), truth, len(classes))
        if save:
            save(index, class_maps[0])
        if time.time() - said > 60:  # big tiles take minutes: say where it is
            print(
                f"  {name}: {index + 1}/{len(split[0])} tiles, {time.time() - started:.0f}s",
                flush=True,
            )
            said = time.time()
    return [scores(matrix, classes) for matrix in matrices]


def tile_maps(forest, image, num_classes, strengths):
    """A tile's class map (H, W) uint8 for each tile prior of `strengths`."""
    if not any(strengths):
        return [predict(forest, image)] * len(strengths)
    votes = probabilities(forest, image, num_classes).clamp_min(FLOOR).log()
    return [tile_prior(votes, s).argmax(0).numpy().astype(np.uint8) for s in strengths]


def val_scores(forest, data, strength):
    """val's scores of the forest's maps with the tile prior `strength` and without, the strength
    val scores higher (lib/evaluation.chosen_on_val, train.py's rule) and the choice's record;
    (None, strength, {}) without a val split."""
    if not len(data["val"][0]):
        return None, strength, {}
    strengths = [strength, 0.0] if strength else [0.0]
    seen = score(forest, data["val"], data["classes"], "val", strengths=strengths)
    record = {}
    _, chosen = chosen_on_val([(False, 1, s) for s in strengths], seen, record)
    return seen[strengths.index(chosen)], chosen, record


# the settings that apply to the forest (train.py's others do not)
FOREST_SETTINGS = (
    "points points_per_class strategy seed data image_size train_size val_size test_size out "
    "predict_train points_file class_field tile_prior"
).split()


def run(config):
    config = checked(config)
    # the forest's packages, asked for before any work: a missing one is one line, not a lost fit
    sklearn = need("sklearn", "the pixel random forest")
    need("sklearn.ensemble", "the pixel random forest")
    need("PIL.Image", "writing the forest's PNG maps")
    what = label_mode(config)[1]
    out = Path(config["out"] or Path("runs") / f"forest-{run_name(config)}")
    check_output_folder(out)  # before the fit, not after it
    started = time.time()
    data = load_run_data(config)
    train_images, train_points = data["train"]
    x, y = training_pixels(train_images, train_points)  # one line if a tile has no clicks
    labeled_fraction = sum(map(count_labels, train_points)) / sum(
        i.shape[-2] * i.shape[-1] for i in train_images
    )
    machine = f"{cpu_name()}, {os.cpu_count()} cores"
    print(
        f"{len(train_images)} train / {len(data['val'][0])} val / {len(data['test'][0])} test "
        f"tiles; {what} ({labeled_fraction:.4%} of training pixels labeled); {x.shape[1]} features "
        f"a pixel; random forest of {TREES} class-balanced trees; {machine}",
        flush=True,
    )
    forest = fit(x, y, config["seed"])
    print(f"fitted on {len(y)} clicks in {time.time() - started:.0f}s", flush=True)

    out.mkdir(parents=True, exist_ok=True)
    clear_old_run(out, "predictions", "train-predictions")
    (out / "predictions").mkdir()
    if config["predict_train"]:  # the forest's map of each training tile: targets for train.py
        write_training_maps(out / "train-predictions", forest, data)
    val, strength, choice = val_scores(forest, data, config["tile_prior"])
    (test,) = score(
        forest, data["test"], data["classes"], "test", map_writer(out, data), (strength,)
    )
    print_table(test, data["classes"], data["scored_on"]["test"])
    metrics = dict(
        config={**{k: config[k] for k in FOREST_SETTINGS}, "trees": TREES, "sigmas": list(SIGMAS)},
        method="pixel random forest",
        classes=list(data["classes"]),
        labeled_fraction=labeled_fraction,
        scored_on=data["scored_on"],
        features=int(x.shape[1]),
        machine=machine,
        sklearn=sklearn.__version__,
        val_miou=val and val["miou"],
        **choice,
        test=test,
        wall_time_s=round(time.time() - started, 1),
    )
    save_metrics(out, metrics)
    return metrics


def checked(config):
    """baseline.py's config: train.py's data settings checked as train.py checks them, with
    --predict-train; the forest learns from clicks, so --dense is refused."""
    predict_train = config.pop("predict_train", False)
    strength = config.pop("tile_prior", 0.0)
    if strength < 0:
        raise ValueError(f"--tile-prior must be >= 0, got {strength}")
    if predict_train and not config.get("data"):
        raise ValueError(
            "--predict-train needs a tile folder (--data DIR): the maps are named after its tiles"
        )
    config = {**check_config({**DEFAULTS, **config}), "predict_train": predict_train}
    config["tile_prior"] = strength
    if config["dense"]:
        raise ValueError(
            "--dense: the pixel classifier is the clicks baseline; give --points N or "
            "--points-per-class K"
        )
    return config


def map_writer(out, data):
    """save(index, class map): a test tile's class map and its preview, as predict.py writes them,
    into out/predictions/."""
    Image = need("PIL.Image", "writing the forest's PNG maps")
    colours, stems = data.get("colours"), data.get("stems", {}).get("test")

    def save(index, class_map):
        stem = stems[index] if stems else f"scene_{index:04d}"
        for picture, suffix in (
            (class_map, "classes"),
            (annotations.colourise(class_map, colours), "preview"),
        ):
            with atomic(out / "predictions" / f"{stem}_{suffix}.png") as tmp:
                Image.fromarray(picture).save(tmp, format="PNG")

    return save


def write_training_maps(folder, forest, data):
    """The forest's class map of each training tile, <stem>_classes.png in `folder`: extra
    targets for train.py --extra-targets."""
    Image = need("PIL.Image", "writing the forest's PNG maps")
    folder.mkdir(exist_ok=True)
    for stem, image in zip(data["stems"]["train"], data["train"][0]):
        with atomic(folder / f"{stem}_classes.png") as tmp:
            Image.fromarray(predict(forest, image)).save(tmp, format="PNG")
    print(f"class maps of the {len(data['train'][0])} training tiles in {folder}", flush=True)


def main(argv=None):
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    add_options(parser, group="data")  # train.py's flags: the same clicks (--dense is refused)
    parser.add_argument("--out", help="output folder (default runs/forest-<labels>-seed<seed>)")
    parser.add_argument(
        "--predict-train",
        action="store_true",
        help="also write <out>/train-predictions/: the "
        "forest's class map of each training tile, extra targets for train.py --extra-targets",
    )
    parser.add_argument(
        "--tile-prior",
        type=float,
        default=0.0,
        help="as train.py --tile-prior: each tile's map weighted by its own class shares to this "
        "power where val scores higher so; 0 (default): the forest as ilastik's users run it",
    )
    run_command(parser, run, argv)


if __name__ == "__main__":
    guard(main)
