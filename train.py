"""Train the U-Net from point labels with pCE, then score it on dense ground truth.

    python train.py --points 200                          200 random clicks per training image
    python train.py --points-per-class 10 --strategy stratified
    python train.py --dense                               the fully supervised ceiling
    python train.py --data DIR --points-per-class 10      your own tiles (docs/own-data.md)
    python train.py --data DIR --points-file clicks.gpkg  clicks from a GIS layer (docs/gis.md)
    torchrun --nproc_per_node 4 train.py ...              on 4 GPUs (docs/distributed.md)

One run, top to bottom, in `train`: the config (lib/settings.py's table: defaults, --data defaults
and checks) -> the data (the synthetic scenes of data.py, or a folder of tiles, lib/tiles.py; the
clicks drawn once, before training, and kept) -> the model (unet.py) -> the loop (the report's
recipe: Adam, cosine annealing, 5 epochs, batch 8, horizontal flips; on real tiles, --data: 15
epochs, all 8 flips and quarter turns), an epoch of it in `train_one_epoch`, validation mIoU after
each epoch -> the test: the best epoch's weights on the test split (lib/evaluation.py; on real
tiles with the logits shifted towards the pixels' class shares, lib/prior.py, and averaged over the
8 orientations and a view shrunk 3x) -> save (<out>/metrics.json, <out>/model.pt and, for a tile
folder, the clicks it learned from in <out>/clicks/, each file written atomically).

The optional levers each enter at one line that names them: torchrun (lib/distributed.py), --resume
(lib/checkpoint.Progress: the state after an epoch, at most once a minute, in <out>/resume.pt; the
same command with --resume goes on from there and ends as the uninterrupted run would have), the
mean teacher (lib/teacher.py), pasted boxes, the zoom and the photometric changes (lib/crops.py),
extra targets (lib/tiles.read_targets), the prior shift (lib/prior.py), a warm start from a
finished run (--init, lib/checkpoint.warm_start), the weight average of the last epochs
(--average-last, lib/averaging.py) and the pixel forest fused into the scored maps
(--forest-weight, lib/forest.Fusion).
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from clicks import class_weights, count_labels
from lib import distributed, tiles
from lib.averaging import weight_average
from lib.checkpoint import Progress, read_progress, save_run, warm_start
from lib.cli import OneLineParser, check_output_folder, guard, run_command
from lib.crops import CropSampler, PointDataset, paste_boxes, photometric
from lib.device import machine, pick_device, pick_precision
from lib.evaluation import evaluate, print_table, score_run
from lib.forest import Fusion
from lib.prior import shift_to_pixel_prior
from lib.recipe import crf_settings, describe_loss, load_run_data, make_optimizer, train_step
from lib.settings import add_options, check_config, label_mode, run_name, settings
from lib.teacher import learn_unclicked, mean_teacher
from unet import UNet

SAY_WHERE_EVERY_S = 60  # a long epoch (big tiles) prints a progress line this often


def main(argv=None):
    parser = OneLineParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_options(parser)
    parser.add_argument(
        "--resume",
        action="store_true",
        help="go on from <out>/resume.pt, the state an interrupted run with the same flags left "
        "after its last saved epoch",
    )
    run_command(parser, train, argv)


def train(config):
    """One run with these settings (the table's defaults for the rest); returns its metrics."""
    started = time.time()
    config, out, state = checked(config)  # before any work
    torch.manual_seed(config["seed"])  # the same on every process under torchrun
    device = distributed.setup(pick_device(config["device"]))  # torchrun: joins its processes
    precision, why = pick_precision(config["precision"], device)

    # data: the synthetic scenes (data.py) or a tile folder (lib/tiles.py); clicks drawn once, here
    data = load_run_data(config)
    fusion = Fusion.for_run(data, config)  # --forest-weight: fitted now, before an hour of epochs

    # model
    model = build_model(data, config, device)  # with --init, a finished run's weights
    optimizer, scheduler = make_optimizer(model, config)
    trained = distributed.wrap(model, device)  # torchrun: DistributedDataParallel
    teacher = mean_teacher(model, config)  # --ema, --consistency, --grow; else None
    scored = teacher.model if config["ema"] else model  # what is validated, tested and saved

    # the loop
    generator = torch.Generator().manual_seed(config["seed"])  # the order of the crops
    sampler = crop_sampler(data, config, generator)
    loader = training_loader(data, config, sampler, generator)
    facts = run_facts(config, data, sampler, loader, model, device, precision)
    print(setup_line(facts, config, data, sampler, why), flush=True)
    average = weight_average(model, config, fixed_crops(data, config))  # --average-last K
    parts = dict(model=model, optimizer=optimizer, scheduler=scheduler, generator=generator)
    parts.update(teacher=teacher, average=average)
    progress = Progress(out / "resume.pt", config, parts, scored, started)
    progress.resume(state)  # --resume: the weights, optimizer and random streams as they were
    del state  # three copies of the weights' size: not kept for the run
    classes = len(data["classes"])  # --class-balanced: each class weighted by its clicks' share
    weights = class_weights(data["train"][1], classes) if config["class_balanced"] else None
    for epoch in range(len(progress.history) + 1, config["epochs"] + 1):
        epoch_start = time.time()
        loss = train_one_epoch(
            trained, optimizer, loader, epoch, config, precision, teacher, weights
        )
        scheduler.step()
        val = validate(scored, data, config, precision)
        averaged = validate_average(average, model, epoch, data, config, precision)
        seconds = round(time.time() - epoch_start, 2)
        print(epoch_line(epoch, config["epochs"], loss, val, seconds, averaged), flush=True)
        progress.record(epoch, loss, val, seconds, averaged)  # keeps the best epoch's weights

    # the test: the best epoch's weights, or with --average-last the average of the last epochs'
    tested = progress.tested_weights()
    test, extra, prior = test_best(scored, tested, data, config, precision, fusion)

    # save
    metrics = run_metrics(facts, progress, test, extra, prior)
    if distributed.is_main():  # one writer; metrics.json last: a run folder with it is whole
        save_run(out, scored, data, config, metrics, fusion=fusion)
    distributed.finish()
    return metrics


def checked(config):
    """(the config, the run's folder, --resume's saved state or None): the config checked, and the
    output folder with it, before any work."""
    config = dict(config)
    resume = config.pop("resume", False)  # how to start, not what to train: not in the config
    config = check_config(settings(config))
    out = Path(config["out"] or Path("runs") / run_name(config))
    check_output_folder(out)
    state = read_progress(out / "resume.pt", config) if resume else None  # --resume
    return config, out, state


def build_model(data, config, device):
    """The U-Net (unet.py) for the data's classes and bands, normalised by the training tiles'
    band statistics, in the layout fast CPU and GPU convolutions want; with --init, starting from
    a finished run's weights (lib/checkpoint.warm_start)."""
    model = UNet(
        len(data["classes"]),
        config["weights"],
        data["bands"],
        data["mean"],
        data["std"],
        config["image_skip"],
        config["standardise"],
    )
    model = model.to(device, memory_format=torch.channels_last)
    if config["init"]:  # --init: a finished run's weights, a warm round of the labelling loop
        warm_start(model, config["init"], data["classes"], data["bands"])
    return model


def train_one_epoch(trained, optimizer, loader, epoch, config, precision, teacher, weights):
    """One pass over the epoch's crops: pCE on the clicks (lib/recipe.train_step), with each lever
    the config asks for. Returns the mean training loss."""
    model = getattr(trained, "module", trained)  # torchrun wraps it
    model.train()
    crf = crf_settings(config)  # --loss pce+crf, else None
    losses = []
    epoch_start = said = time.time()
    # clicks only: the dense masks are for scoring
    for images, point_labels, *target_labels in loader:
        if config["paste"]:  # --paste: clicked boxes of other crops moved into this one's context
            images, point_labels, *target_labels = paste_boxes(
                config["paste"], images, point_labels, *target_labels
            )
        if config["photometric"]:  # --photometric: as another sensor, season or haze shows it
            images = photometric(images, config["photometric"])
        # --extra-targets: another model's map of the tile, learnt beside the clicks
        extras = [(target_labels[0], config["extra_weight"])] if target_labels else []
        if config["consistency"] or config["grow"]:  # the mean teacher's say on unclicked pixels
            step = (epoch - 1) * len(loader) + len(losses)
            steps = config["epochs"] * len(loader)
            images, point_labels, extras = learn_unclicked(
                teacher, images, point_labels, extras, step, steps, precision, config
            )
        loss = train_step(trained, optimizer, images, point_labels, precision, crf, extras, weights)
        losses.append(loss)
        if teacher:
            teacher.update(model)
        if time.time() - said > SAY_WHERE_EVERY_S:
            print(
                f"  epoch {epoch}/{config['epochs']}: {len(losses)}/{len(loader)} steps, train "
                f"loss {np.mean(losses):.4f}, {time.time() - epoch_start:.0f}s",
                flush=True,
            )
            said = time.time()
    return float(np.mean(losses))


def crop_sampler(data, config, generator):
    """The epoch's crops: one per synthetic scene, or enough around the clicks to cover big tiles
    once, each turned as --augment says and, with --train-zoom-out, half of them cut larger and
    shrunk (lib/crops.py), in an order drawn from `generator`."""
    point_labels = data["train"][1]
    shapes = [image.shape[-2:] for image in data["train"][0]]
    return CropSampler(
        point_labels,
        shapes,
        config["image_size"],
        config["crops_per_epoch"],
        generator,
        config["augment"],
        config["train_zoom_out"],
    )


def training_loader(data, config, sampler, generator):
    """The epoch's batches: each crop with its clicks and, with --extra-targets, its part of the
    tile's map."""
    images, point_labels = data["train"]
    targets = tiles.read_targets(config["extra_targets"], data) if config["extra_targets"] else None
    return torch.utils.data.DataLoader(
        PointDataset(images, point_labels, config["image_size"], targets or None),
        batch_size=distributed.per_process_batch(config["batch_size"]),  # --batch-size: the total
        sampler=distributed.shard(sampler, config["batch_size"]),  # torchrun: a share each
        generator=generator,
    )


def validate_average(average, model, epoch, data, config, precision):
    """--average-last: after an epoch taken into the weight average, the average's val scores
    (its batch-norm statistics recomputed first); else None."""
    if average is None or not average.update(model, epoch):
        return None
    return validate(average.model, data, config, precision)


def fixed_crops(data, config):
    """crops(): a DataLoader of training crops, the same each time (their own generator, seeded
    anew): the batch-norm pass of the weight average (lib/averaging.py)."""

    def crops():
        generator = torch.Generator().manual_seed(config["seed"])
        return training_loader(data, config, crop_sampler(data, config, generator), generator)

    return crops


def validate(scored, data, config, precision):
    """The model's mIoU on the val split (without a val split: None, and the last epoch wins)."""
    if not len(data["val"][0]):
        return dict(miou=None, miou_in_truth=None)
    window, batch_size = config["image_size"], config["batch_size"]
    return evaluate(scored, data["val"], data["classes"], window, batch_size, precision)


def test_best(scored, weights, data, config, precision, fusion=None):
    """The weights to test (the best epoch's, or the weight average's), their logits shifted with
    --prior-shift, scored on the test split (with --tta also without it, and val with it: what the
    choice of recipe was made on, docs/recipe.md; not in a warm round) and printed as a table;
    returns (test, extra, the prior shift's record)."""
    if not len(data["val"][0]):
        print(
            "no val split: no best-epoch selection, the last epoch's weights are tested", flush=True
        )
    scored.load_state_dict(weights)
    prior = config["prior_shift"] and shift_to_pixel_prior(scored, data["train"], config, precision)

    # a warm round's epoch is chosen on val already, its view by its start's val: a val pass with
    # TTA would be a record only, a fifth of the round (docs/suggest.md, Warm rounds)
    test, extra = score_run(scored, data, config, precision, fusion, score_val=not config["init"])
    print_table(test, data["classes"], data["scored_on"]["test"])
    return test, extra, prior


def run_facts(config, data, sampler, loader, model, device, precision):
    """What metrics.json records of how the run was made, beside its scores."""
    pixels = sum(image.shape[-2] * image.shape[-1] for image in data["train"][0])
    return dict(
        config=config,
        classes=list(data["classes"]),
        labeled_fraction=sum(map(count_labels, data["train"][1])) / pixels,
        scored_on=data["scored_on"],
        crops_per_epoch=sampler.crops,
        encoder_init=model.encoder_init,
        device=str(device),
        machine=machine(device),
        torch=torch.__version__,
        precision=precision,
        world_size=distributed.rank_and_world()[1],
        batch_per_process=loader.batch_size,
    )


def run_metrics(facts, progress, test, extra, prior):
    """metrics.json: how the run was made, its epochs, the chosen one, its scores, its wall time."""
    metrics = dict(facts, best_epoch=progress.best[1], history=progress.history, test=test, **extra)
    if prior:
        metrics["prior_shift"] = prior
    if progress.resumed:
        metrics["resumed_after_epochs"] = progress.resumed
    metrics["wall_time_s"] = round(time.time() - progress.started, 1)
    return metrics


def setup_line(facts, config, data, sampler, why):
    """The run's first line: the splits, the labels, the loss, the crops, the init, the device."""
    splits = " / ".join(f"{len(data[split][0])} {split}" for split in ("train", "val", "test"))
    labels = f"{label_mode(config)[1]} ({facts['labeled_fraction']:.4%} of training pixels labeled)"
    size = config["image_size"]
    crops = f"{sampler.crops} crops of {size}x{size} per epoch ({config['augment']}{sampler.zooms}"
    if config["paste"]:
        crops += f", {config['paste']} clicked boxes pasted in each"
    parts = [
        f"{splits} tiles",
        labels,
        f"loss {describe_loss(config)}",
        crops + ")",
        f"encoder init: {facts['encoder_init']}"
        + (f", then the weights of {config['init']} (--init)" if config["init"] else ""),
        f"device: {facts['device']} ({facts['machine']})",
        f"precision {facts['precision']} ({why})",
    ]
    if facts["world_size"] > 1:
        parts.append(f"{facts['world_size']} processes, batch {facts['batch_per_process']} each")
    return "; ".join(parts)


def epoch_line(epoch, epochs, loss, val, seconds, averaged=None):
    """An epoch's line: its training loss and val mIoU (and, where val's masks lack a class, the
    mIoU over the classes they hold, by which the best epoch is chosen: lib/evaluation.scores;
    with --average-last, the weight average's val mIoU)."""
    miou, in_truth = val["miou"], val["miou_in_truth"]
    shown = "-" if miou is None else f"{miou:.4f}"
    lacking = f" ({in_truth:.4f} over the classes in its masks)" if in_truth != miou else ""
    if averaged and averaged["miou"] is not None:
        in_truth = averaged["miou_in_truth"]
        lacking += f", the average of the last epochs {averaged['miou']:.4f}"
        lacking += (
            f" ({in_truth:.4f} over the classes in its masks)"
            if in_truth != averaged["miou"]
            else ""
        )
    return (
        f"epoch {epoch}/{epochs}  train loss {loss:.4f}  val mIoU {shown}{lacking}  {seconds:.1f}s"
    )


if __name__ == "__main__":
    guard(
        main,
        hint="after an epoch a run keeps its state in <out>/resume.pt (at most once a minute): "
        "the same command with --resume goes on from there",
    )
