"""Train the U-Net from point labels with pCE, then score it on dense ground truth.

    python train.py --points 200                          200 random clicks per training image
    python train.py --points-per-class 10 --strategy stratified
    python train.py --dense                               the fully supervised ceiling
    python train.py --data DIR --points-per-class 10      your own tiles (docs/own-data.md)
    python train.py --data DIR --points-file clicks.gpkg  clicks from a GIS layer (docs/gis.md)
    torchrun --nproc_per_node 4 train.py ...              on 4 GPUs (docs/distributed.md)

One run, top to bottom: config (lib/recipe.py's defaults, checked by lib/config.py) -> data (synthetic
scenes, or a folder of tiles, tiles.load_data; clicks drawn once, before training, and kept) ->
model (unet.py) -> the loop (the report's recipe: Adam, cosine annealing, 5 epochs, batch 8,
horizontal flips; recipe.train_step; on real tiles, --data: 15 epochs, all 8 flips and quarter
turns) -> evaluation (validation mIoU after each epoch; the best epoch's weights, on real tiles
with the logits shifted towards the pixels' class shares (lib/prior.py), scored on the test split,
lib/evaluation.py; on real tiles averaged over the 8 orientations and a view shrunk 3x) -> save
(<out>/metrics.json, <out>/model.pt and, for a tile folder, the clicks it learned from in
<out>/clicks/, each file written atomically, so an interrupted run never leaves half a file). A long
run also saves its state after an epoch (<out>/resume.pt, at most once a minute): the same command
with --resume goes on from there and ends as the uninterrupted run would have. `train(config)` does
the work; the command line only fills in `config`. Under torchrun each process trains on its share
of every batch and scores its share of the tiles (distributed.py); process 0 alone prints and saves.
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from clicks import class_weights, count_labels
from lib import distributed, tiles
from lib.checkpoint import read_progress, restore_progress, save_progress, save_run
from lib.cli import OneLineParser, check_output_folder, guard, run_command
from lib.config import add_train_options, check_config
from lib.crops import CropSampler, PointDataset, paste_boxes
from lib.device import machine, pick_device, pick_precision
from lib.evaluation import evaluate, final_scores, print_table
from lib.prior import shift_to_pixel_prior
from lib.recipe import (
    crf_settings,
    describe_loss,
    label_mode,
    load_run_data,
    make_optimizer,
    run_name,
    settings,
    train_step,
)
from lib.teacher import MeanTeacher, ramp_up, strong_view, unlabelled_targets
from unet import UNet

# <out>/resume.pt after an epoch, at most this often (a short run just reruns)
SAVE_PROGRESS_EVERY_S = 60


def train(config):
    # config
    config = dict(config)
    resume = config.pop("resume", False)  # how to start, not what to train: not in the config
    config = check_config(settings(config))
    started = time.time()
    out = Path(config["out"] or Path("runs") / run_name(config))
    check_output_folder(out)  # before the work, not after it
    # checked before the data is read
    state = read_progress(out / "resume.pt", config) if resume else None
    torch.manual_seed(config["seed"])  # the same on every process under torchrun
    device = distributed.setup(pick_device(config["device"]))  # joins torchrun's processes, if any
    precision, why = pick_precision(config["precision"], device)
    world = distributed.rank_and_world()[1]
    crf = crf_settings(config)

    # data: the training tiles with their clicks; val and test with their dense masks (or the
    # reference points of a point layer)
    data = load_run_data(config)
    train_images, train_points = data["train"]
    pixels = sum(image.shape[-2] * image.shape[-1] for image in train_images)
    labeled_fraction = sum(map(count_labels, train_points)) / pixels

    # model
    bands, mean, std = data["bands"], data["mean"], data["std"]
    model = UNet(len(data["classes"]), config["weights"], bands, mean, std, config["image_skip"])
    # the layout fast CPU and GPU convolutions want
    model = model.to(device, memory_format=torch.channels_last)
    optimizer, scheduler = make_optimizer(model, config)
    # DistributedDataParallel under torchrun, else the model
    trained = distributed.wrap(model, device)
    # the mean teacher (lib/teacher.py): the targets on the unclicked pixels come from it and, with
    # --ema, it is the model that is validated, tested and saved
    learns_unclicked = config["consistency"] > 0 or config["grow"]
    teacher = MeanTeacher(model, config["ema_decay"]) if config["ema"] or learns_unclicked else None
    scored = teacher.model if config["ema"] else model

    # the loop. An epoch: one crop per synthetic scene, or enough crops around the labels to cover
    # big tiles once, in an order drawn from the seed
    generator = torch.Generator().manual_seed(config["seed"])
    shapes, size = [image.shape[-2:] for image in train_images], config["image_size"]
    sampling = config["crops_per_epoch"], generator, config["augment"], config["train_zoom_out"]
    sampler = CropSampler(train_points, shapes, size, *sampling)
    targets = config["extra_targets"] and tiles.read_targets(config["extra_targets"], data)
    classes = len(data["classes"])
    weights = class_weights(train_points, classes) if config["class_balanced"] else None
    batch_size = distributed.per_process_batch(config["batch_size"])  # --batch-size is the total
    loader = torch.utils.data.DataLoader(
        PointDataset(train_images, train_points, config["image_size"], targets or None),
        batch_size=batch_size,
        sampler=distributed.shard(sampler, config["batch_size"]),
        generator=generator,
    )
    splits = " / ".join(f"{len(data[split][0])} {split}" for split in ("train", "val", "test"))
    setup = [
        f"{splits} tiles",
        f"{label_mode(config)[1]} ({labeled_fraction:.4%} of training pixels labeled)",
        f"loss {describe_loss(config)}",
        f"{sampler.crops} crops of {size}x{size} per epoch ({config['augment']}{sampler.zooms}"
        + (f", {config['paste']} clicked boxes pasted in each" if config["paste"] else "")
        + ")",
        f"encoder init: {model.encoder_init}",
        f"device: {device} ({machine(device)})",
        f"precision {precision} ({why})",
    ] + ([f"{world} processes, batch {batch_size} each"] if world > 1 else [])
    print("; ".join(setup), flush=True)

    history, best, resumed = [], None, []  # best = (val mIoU, epoch, weights)
    # what resume.pt keeps beside those: weights, optimizer, schedule, random streams
    parts = dict(model=model, optimizer=optimizer, scheduler=scheduler, generator=generator)
    parts["teacher"] = teacher
    if state:  # an interrupted run: all of them as they were
        history, best, resumed, elapsed = restore_progress(state, parts, scored)
        started -= elapsed
        print(f"resumed from {out / 'resume.pt'} after epoch {state['epoch']}", flush=True)
        del state  # three copies of the weights' size: not kept for the run
    elif (out / "resume.pt").exists():
        print(
            f"{out / 'resume.pt'}: an interrupted run's state; this run starts over (--resume goes "
            f"on from it)"
        )
    saved_at = time.time()
    score = lambda split, *tta: evaluate(  # tta: (tta, zoom_out), final_scores's
        scored, split, data["classes"], config["image_size"], config["batch_size"], precision, *tta
    )
    for epoch in range(len(history) + 1, config["epochs"] + 1):
        epoch_start, losses, said = time.time(), [], time.time()
        model.train()
        # clicks only: the dense masks are for scoring
        for image, point_labels, *target_labels in loader:
            if config["paste"]:  # clicked patches moved into the other crops' context
                image, point_labels, *target_labels = paste_boxes(
                    config["paste"], image, point_labels, *target_labels
                )
            extras = [(target_labels[0], config["extra_weight"])] if targets else []
            if learns_unclicked:  # the teacher's say on the pixels no one clicked
                step = (epoch - 1) * len(loader) + len(losses)
                ramp = ramp_up(step, config["epochs"] * len(loader))
                extras += unlabelled_targets(teacher, image, point_labels, precision, config, ramp)
                if config["consistency"]:  # the student learns them on a strong view
                    image, point_labels, extras = strong_view(image, point_labels, extras)
            batch = image, point_labels, precision, crf, extras, weights
            losses.append(train_step(trained, optimizer, *batch))
            if teacher:
                teacher.update(model)
            if time.time() - said > 60:  # long epochs (big tiles) say where they are
                print(
                    f"  epoch {epoch}: {len(losses)}/{len(loader)} steps, train loss "
                    f"{np.mean(losses):.4f}, {time.time() - epoch_start:.0f}s",
                    flush=True,
                )
                said = time.time()
        scheduler.step()
        val = score(data["val"]) if len(data["val"][0]) else dict(miou=None, miou_in_truth=None)
        # the epoch is chosen by the mIoU of the classes val's masks hold (evaluation.scores)
        val_miou, chosen_by = val["miou"], val["miou_in_truth"]
        seconds = round(time.time() - epoch_start, 2)
        loss = float(np.mean(losses))
        measured = dict(train_loss=loss, val_miou=val_miou, val_miou_in_truth=chosen_by)
        history.append(dict(epoch=epoch, **measured, seconds=seconds))
        lacking = (
            f" ({chosen_by:.4f} over the classes in its masks)" if chosen_by != val_miou else ""
        )
        print(
            f"epoch {epoch}/{config['epochs']}  train loss {loss:.4f}  val mIoU "
            f"{'-' if val_miou is None else f'{val_miou:.4f}'}{lacking}  {seconds:.1f}s",
            flush=True,
        )
        # without a val split: the last epoch
        if best is None or chosen_by is None or chosen_by > best[0]:
            best = chosen_by, epoch, {k: v.detach().clone() for k, v in scored.state_dict().items()}
        due = time.time() - saved_at > SAVE_PROGRESS_EVERY_S and epoch < config["epochs"]
        if due and distributed.is_main():
            out.mkdir(parents=True, exist_ok=True)
            elapsed = time.time() - started
            save_progress(out / "resume.pt", parts, epoch, history, best, config, elapsed, resumed)
            saved_at = time.time()

    # evaluation: the best epoch's weights on the test split (with --tta also without it, and on
    # val with it: what the choice of recipe was made on, docs/recipe.md)
    if not len(data["val"][0]):
        print(
            "no val split: no best-epoch selection, the last epoch's weights are tested", flush=True
        )
    scored.load_state_dict(best[2])
    prior = config["prior_shift"] and shift_to_pixel_prior(scored, data["train"], config, precision)
    tta = config["tta"], config["tta_zoom_out"]  # the 8 orientations, and the tile shrunk K times
    test, extra = final_scores(score, data["test"], data["val"], *tta)
    print_table(test, data["classes"], data["scored_on"]["test"])

    # save
    metrics = dict(
        config=config,
        classes=list(data["classes"]),
        labeled_fraction=labeled_fraction,
        scored_on=data["scored_on"],
        crops_per_epoch=sampler.crops,
        encoder_init=model.encoder_init,
        device=str(device),
        machine=machine(device),
        torch=torch.__version__,
        precision=precision,
        world_size=world,
        batch_per_process=batch_size,
        best_epoch=best[1],
        history=history,
        test=test,
        **extra,
        **(dict(prior_shift=prior) if prior else {}),
        **(dict(resumed_after_epochs=resumed) if resumed else {}),
        wall_time_s=round(time.time() - started, 1),
    )
    if distributed.is_main():  # one writer; metrics.json last: a run folder with it is whole
        save_run(out, scored, data, config, metrics)
    distributed.finish()
    return metrics


def main(argv=None):
    parser = OneLineParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    run_command(add_train_options(parser), train, argv)


if __name__ == "__main__":
    guard(
        main,
        hint="after an epoch a run keeps its state in <out>/resume.pt (at most once a minute): "
        "the same command with --resume goes on from there",
    )
