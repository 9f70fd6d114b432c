"""The checkpoint train.py writes (<out>/model.pt) and predict.py and reporting/ read back, and the
state an interrupted run goes on from (<out>/resume.pt, train.py --resume).

model.pt holds the weights (with the training tiles' per-band mean/std, buffers of the model), the
class names and their legend colours, the band count, the window size the network was trained
on, the training tiles' pixel size in metres (GeoTIFFs in a metric CRS; else None), the
encoder init that was used and whether each window is standardised on its own (--standardise):
everything needed to segment new tiles the same way.
resume.pt holds, after an epoch, all that the rest of the run depends on: weights, optimizer and
schedule, both random streams, the epochs so far and the best one, so that a resumed run ends
with the numbers an uninterrupted one would have given (same machine and torch version).
`open_run` reads a finished run back to score it again (scripts/rescore.py, fusion_scan.py,
prior_scan.py).
"""

import json
import time
from pathlib import Path

import torch

from lib import annotations, distributed
from lib.cli import atomic, clear_old_run, one_line
from lib.device import pick_device, pick_precision
from lib.prior import take_out_shift
from lib.recipe import load_run_data
from lib.settings import (
    DEFAULTS,
    check_config,
    init_checkpoint,
    start_record,
    without_idle_estimate,
)
from unet import DECODER_CHANNELS, UNet


def save_checkpoint(path, model, classes, colours, bands, image_size, pixel_size_m=None):
    with atomic(path) as tmp:
        torch.save(
            dict(
                state_dict=model.state_dict(),
                classes=list(classes),
                colours=colours,
                bands=bands,
                image_size=image_size,
                encoder_init=model.encoder_init,
                pixel_size_m=pixel_size_m,
                standardise=model.standardise_by,
            ),
            tmp,
        )


def load_checkpoint(path):
    """(model in eval mode, the checkpoint dict); ValueError in one line if `path` is not one."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        state, classes, bands = checkpoint["state_dict"], checkpoint["classes"], checkpoint["bands"]
    except Exception as error:
        raise ValueError(f"{path}: not a train.py checkpoint ({one_line(error)})") from None
    if state["head.weight"].shape[0] != len(classes) or state["stem.0.weight"].shape[1] != bands:
        raise ValueError(
            f"{path}: its weights are for {state['head.weight'].shape[0]} classes and "
            f"{state['stem.0.weight'].shape[1]} bands, but it declares {len(classes)} classes and "
            f"{bands} bands"
        )
    # a model trained with --image-skip has the bands as extra inputs of its last block
    image_skip = state["decoder.4.conv1.0.weight"].shape[1] > DECODER_CHANNELS[-2]
    standardise_by = checkpoint.get("standardise", "set")  # --standardise (older runs: set)
    model = UNet(
        len(classes), None, bands, [0.0] * bands, [1.0] * bands, image_skip, standardise_by
    )
    model.load_state_dict(state)  # brings the training data's mean/std with it
    return model.eval(), checkpoint


def warm_start(model, init, classes, bands):
    """--init: `model` takes the weights of a finished run's model.pt (settings.init_checkpoint
    finds it), which must have the same classes, bands, --image-skip and --standardise; the band
    statistics stay this run's, those of its training tiles, and the prior shift that run folded
    into its head (its metrics.json records it) is taken out: this run trains on its own clicks
    and shifts, or not, by its own rule. Returns the checkpoint's path, for the record."""
    path = init_checkpoint(init)
    start, checkpoint = load_checkpoint(path)
    if list(checkpoint["classes"]) != list(classes):
        raise ValueError(
            f"--init {init}: its classes are {list(checkpoint['classes'])}, this run's "
            f"{list(classes)}"
        )
    if checkpoint["bands"] != bands:
        raise ValueError(
            f"--init {init}: trained on {checkpoint['bands']} bands, this run's tiles have {bands}"
        )
    if start.image_skip != model.image_skip:
        raise ValueError(
            f"--init {init}: its --image-skip is {start.image_skip}, this run's {model.image_skip}"
        )
    if start.standardise_by != model.standardise_by:
        raise ValueError(
            f"--init {init}: its --standardise is {start.standardise_by}, this run's "
            f"{model.standardise_by}"
        )
    weights = {k: v for k, v in start.state_dict().items() if k not in ("mean", "std")}
    model.load_state_dict(weights, strict=False)
    take_out_shift(model, start_record(init))  # a shift is for scoring, not to train from
    return str(path)


def finished_run(folder):
    """The metrics.json of a finished train.py run in `folder`; one line if it holds none."""
    folder = Path(folder)
    if not (folder / "metrics.json").is_file() or not (folder / "model.pt").is_file():
        raise ValueError(f"{folder}: no finished train.py run there (metrics.json and model.pt)")
    return json.loads((folder / "metrics.json").read_text())


def open_run(folder, **given):
    """A finished train.py run, to be scored again: (metrics, config, precision, data, model).
    config is the run's with `given` on top (a key the run's lacks is a flag added since, which
    the run had at its default; with no shift, no shares to pick: settings.without_idle_estimate),
    checked; data its tiles and clicks, read again; the model on the run's device choice, and
    the precision it scored in."""
    folder = Path(folder)
    metrics = finished_run(folder)
    config = check_config(without_idle_estimate({**DEFAULTS, **metrics["config"], **given}, given))
    device = pick_device(config["device"])
    precision = pick_precision(metrics["precision"], device)[0]
    model = load_checkpoint(folder / "model.pt")[0].to(device, memory_format=torch.channels_last)
    return metrics, config, precision, load_run_data(config), model


def save_progress(path, parts, epoch, history, best, config, elapsed, resumed):
    """`parts` (train.py's model, optimizer, scheduler, generator, teacher and weight average, by
    those names) and the loop's records after `epoch`, into `path`."""
    teacher = parts["teacher"]
    with atomic(path) as tmp:
        torch.save(
            dict(
                config=json.dumps(config, sort_keys=True, default=str),
                epoch=epoch,
                model=parts["model"].state_dict(),
                optimizer=parts["optimizer"].state_dict(),
                scheduler=parts["scheduler"].state_dict(),
                rng=torch.get_rng_state(),
                generator=parts["generator"].get_state(),
                history=history,
                # the best epoch's weights, unless they are those of this epoch, saved already
                best=best if best[1] != epoch else (*best[:2], None),
                elapsed=elapsed,
                resumed=resumed,
                teacher=teacher and teacher.state_dict(),
                average=parts["average"] and parts["average"].state_dict(),
            ),
            tmp,
        )


def read_progress(path, config):
    """The state save_progress left in `path`; ValueError in one line if there is none or it was
    written by a run with other settings (a setting its state lacks is a flag added since, which
    the run had at its default)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(
            f"--resume: {path} not found: no interrupted run to go on from there (train.py writes "
            f"it after each epoch once a run has trained for a minute)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        saved = {**DEFAULTS, **json.loads(state["config"])}
    except Exception as error:
        raise ValueError(
            f"--resume: {path} is not the state of a train.py run ({type(error).__name__}); delete "
            f"it and start over"
        ) from None
    given = json.loads(json.dumps(config, sort_keys=True, default=str))
    differ = [k for k in sorted(set(saved) | set(given)) if not same(k, saved.get(k), given.get(k))]
    if differ:
        k = differ[0]
        raise ValueError(
            f"--resume: {path} is from a run with {k}={saved.get(k)!r}, this one has "
            f"{k}={given.get(k)!r}: give the interrupted run's flags, or another --out"
        )
    return state


# settings that name files or folders: `DIR/`, `./DIR` and `/abs/DIR` are one folder
PATHS = ("data", "out", "points_file", "extra_targets", "weights")


def same(key, saved, given):
    """Whether a setting of the interrupted run and of this one agree; paths as the files they
    name, not as the text that names them."""
    if key not in PATHS or saved is None or given is None or saved == given:
        return saved == given
    resolve = lambda v: [str(Path(p).resolve()) for p in ([v] if isinstance(v, str) else v)]
    return resolve(saved) == resolve(given)


def restore_progress(state, parts, scored=None):
    """`parts` as save_progress took them: model, optimizer, schedule, both random streams and the
    mean teacher (lib/teacher.py) as they were when `state` was saved. Returns what the loop goes on
    with: (history, best, the epochs resumed after, the seconds run so far); best = (val mIoU,
    epoch, the weights of `scored`, the model that is validated, where the best epoch was the last
    saved one)."""
    for name in ("teacher", "average"):  # the levers that keep weights of their own
        if parts[name] is not None:
            parts[name].load_state_dict(state[name])
    for name in ("model", "optimizer", "scheduler"):
        parts[name].load_state_dict(state[name])
    torch.set_rng_state(state["rng"])
    parts["generator"].set_state(state["generator"])
    best = state["best"]
    if best[2] is None and scored is not None:  # saved once, as the model's own weights
        best = (*best[:2], {k: v.detach().clone() for k, v in scored.state_dict().items()})
    return state["history"], best, state["resumed"] + [state["epoch"]], state["elapsed"]


# <out>/resume.pt after an epoch, at most this often (a short run just reruns)
SAVE_PROGRESS_EVERY_S = 60


class Progress:
    """A run's loop records — the epochs' history, the best epoch (by the val mIoU over the
    classes val's masks hold, lib/evaluation.scores) and its weights, the epochs resumed after —
    and --resume: after an epoch, at most once a minute, all of them and `parts` go to `path`."""

    def __init__(self, path, config, parts, scored, started):
        self.path, self.config, self.parts, self.scored = Path(path), config, parts, scored
        self.history, self.best, self.resumed, self.started = [], None, [], started
        self.saved_at = time.time()

    def resume(self, state):
        """Go on from an interrupted run's `state` (read_progress's), if given."""
        if state:  # an interrupted run: all of it as it was
            self.history, self.best, self.resumed, elapsed = restore_progress(
                state, self.parts, self.scored
            )
            self.started -= elapsed
            print(f"resumed from {self.path} after epoch {state['epoch']}", flush=True)
        elif self.path.exists():
            print(
                f"{self.path}: an interrupted run's state; this run starts over (--resume goes on "
                f"from it)"
            )
        self.saved_at = time.time()

    def record(self, epoch, loss, val, seconds, averaged=None):
        """An epoch's row of the history (with `averaged`, the val scores of the weight average
        so far); its weights if it is the best so far (without a val split: the last); the state
        to resume from, if due."""
        chosen_by = val["miou_in_truth"]
        measured = dict(train_loss=loss, val_miou=val["miou"], val_miou_in_truth=chosen_by)
        if averaged:
            measured["val_miou_average"] = averaged["miou"]
            measured["val_miou_average_in_truth"] = averaged["miou_in_truth"]
        self.history.append(dict(epoch=epoch, **measured, seconds=seconds))
        if self.best is None or chosen_by is None or chosen_by > self.best[0]:
            weights = {k: v.detach().clone() for k, v in self.scored.state_dict().items()}
            self.best = chosen_by, epoch, weights
        due = time.time() - self.saved_at > SAVE_PROGRESS_EVERY_S
        if due and epoch < self.config["epochs"] and distributed.is_main():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            elapsed = time.time() - self.started
            save_progress(
                self.path,
                self.parts,
                epoch,
                self.history,
                self.best,
                self.config,
                elapsed,
                self.resumed,
            )
            self.saved_at = time.time()

    def tested_weights(self):
        """The weights to test: the weight average's (--average-last), else the best epoch's."""
        if self.parts["average"] is not None:
            return self.parts["average"].model.state_dict()
        return self.best[2]


def save_metrics(out, metrics, show_test=True):
    """<out>/metrics.json, written atomically, and the run's last line: the test split's mIoU and
    pixel accuracy beside always answering the commonest class (without show_test: where it is)."""
    with atomic(out / "metrics.json") as tmp:
        tmp.write_text(json.dumps(metrics, indent=2))
    test = metrics["test"]
    if not show_test:
        print(f"wall {metrics['wall_time_s']:.0f}s  -> {out}/metrics.json", flush=True)
        return
    print(
        f"test mIoU {test['miou']:.4f}  pixel accuracy {test['pixel_accuracy']:.4f} (always the "
        f"commonest class: {test['commonest_class_accuracy']:.4f})  wall "
        f"{metrics['wall_time_s']:.0f}s  -> {out}/metrics.json",
        flush=True,
    )


def save_run(out, model, data, config, metrics, show_test=True, fusion=None):
    """A finished run's folder: model.pt, the clicks it learned from (a tile folder's, for
    suggest.py), with --forest-weight the forest's clicks (forest.npz, lib/forest.Fusion),
    metrics.json last, so that a folder with it is whole; then resume.pt goes."""
    out.mkdir(parents=True, exist_ok=True)
    clear_old_run(out, "model.pt", "clicks", "forest.npz")
    save_checkpoint(
        out / "model.pt",
        model,
        data["classes"],
        data.get("colours"),
        data["bands"],
        config["image_size"],
        data.get("pixel_size_m"),
    )
    if config["data"]:
        annotations.keep_clicks(out / "clicks", data)
    if fusion:
        fusion.save(out)
    save_metrics(out, metrics, show_test)
    (out / "resume.pt").unlink(missing_ok=True)  # the run is whole: nothing to go on from
