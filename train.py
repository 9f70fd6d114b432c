"""Train the U-Net from point labels with pCE, then score it on dense ground truth.

    python train.py --points 200                          200 random clicks per training image
    python train.py --points-per-class 10 --strategy stratified
    python train.py --dense                               the fully supervised ceiling
    python train.py --data DIR --points-per-class 10      your own tiles (see tiles.py / README)

The report's recipe: Adam (lr 1e-3, weight decay 1e-4), cosine annealing, 5 epochs, batch 8,
horizontal flips. Clicks are drawn once, before training, and kept. Each epoch ends with the
validation mIoU; the best epoch's weights are scored on the test split. Every metric comes from
one confusion matrix accumulated over the whole split. `<out>/metrics.json` and `<out>/model.pt`
are written atomically, so an interrupted run never leaves a half-written file.
`train(config)` does the work; the command line only fills in `config`.
"""
import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from crf import crf_energy
from data import CLASSES, CropSampler, PointDataset, band_statistics, count_labels, make_split, sample_split_points
import tiles
from device import autocast, machine, pick_device, pick_precision
from pce import partial_cross_entropy
from tiles import OneLineParser
from unet import DIVISOR, UNet

# pCE+CRF's settings, chosen on the validation split (README, "A regularised loss")
CRF_WEIGHT, CRF_SIGMA_XY, CRF_SIGMA_BAND = 2.0, 6.0, 2.0

DEFAULTS = dict(
    points=None,              # random clicks per training image ...
    points_per_class=None,    # ... or clicks per class present in the image
    strategy="random",        # how per-class clicks are placed: random | stratified
    dense=False,              # train on the full masks instead (the upper bound)
    loss="pce",               # pce, or pce+crf: pCE + crf_weight * R, R the local CRF energy (crf.py)
    crf_weight=CRF_WEIGHT, crf_sigma_xy=CRF_SIGMA_XY, crf_sigma_band=CRF_SIGMA_BAND,
    epochs=5, batch_size=8, lr=1e-3, weight_decay=1e-4,
    image_size=128,           # synthetic scenes are this size; folder tiles are cropped to it
    crops_per_epoch=None,     # default: cover the training area once (one crop per synthetic scene)
    seed=0,                   # one seed picks the scenes, the clicks, the init and the batches
    device="auto", weights="imagenet",
    precision="auto",         # bf16 autocast where the device computes bf16 natively, else fp32
    train_size=200, val_size=60, test_size=60,
    data=None,                # a folder of your own tiles instead of synthetic scenes
    out=None,                 # default runs/<name>
)


def train(config):
    config = check_config({**DEFAULTS, **config})
    started = time.time()
    torch.manual_seed(config["seed"])
    device = pick_device(config["device"])
    precision, why = pick_precision(config["precision"], device)
    data = load_data(config)
    train_images, train_points = data["train"]
    labeled_fraction = sum(map(count_labels, train_points)) / sum(i.shape[-2] * i.shape[-1] for i in train_images)
    model = UNet(len(data["classes"]), config["weights"], data["bands"], data["mean"], data["std"])
    model = model.to(device, memory_format=torch.channels_last)   # the layout fast CPU and GPU convolutions want
    # an epoch: one crop per synthetic scene, or enough crops around the labels to cover big tiles once
    generator = torch.Generator().manual_seed(config["seed"])
    sampler = CropSampler(train_points, [i.shape[-2:] for i in train_images], config["image_size"],
                          config["crops_per_epoch"], generator)
    loader = torch.utils.data.DataLoader(PointDataset(train_images, train_points, config["image_size"]),
                                         batch_size=config["batch_size"], sampler=sampler, generator=generator)
    print(f"{len(train_images)} train / {len(data['val'][0])} val / {len(data['test'][0])} test tiles; "
          f"{describe_labels(config)} ({labeled_fraction:.4%} of training pixels labeled); loss {config['loss']}"
          + (f" (weight {config['crf_weight']:g}, sigma xy {config['crf_sigma_xy']:g} px, band "
             f"{config['crf_sigma_band']:g})" if config["loss"] == "pce+crf" else "") + "; "
          f"{sampler.crops} crops of {config['image_size']}x{config['image_size']} per epoch; "
          f"encoder init: {model.encoder_init}; device: {device} ({machine(device)}); precision {precision} ({why})",
          flush=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"], weight_decay=config["weight_decay"])
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config["epochs"])
    history, best = [], None      # best = (val mIoU, epoch, weights)
    for epoch in range(1, config["epochs"] + 1):
        epoch_start, losses, said = time.time(), [], time.time()
        model.train()
        for image, point_labels in loader:        # clicks only: the dense masks are for scoring
            with autocast(device, precision):
                logits = model(image.to(device, memory_format=torch.channels_last))
            loss = partial_cross_entropy(logits.float(), point_labels.to(device))   # the loss in fp32
            if config["loss"] == "pce+crf":                  # the image's edges speak where no click does
                loss = loss + config["crf_weight"] * crf_energy(logits, model.standardise(image.to(device)),
                                                                config["crf_sigma_xy"], config["crf_sigma_band"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            if time.time() - said > 60:            # long epochs (big tiles) say where they are
                print(f"  epoch {epoch}: {len(losses)}/{len(loader)} steps, train loss {np.mean(losses):.4f}, "
                      f"{time.time() - epoch_start:.0f}s", flush=True)
                said = time.time()
        scheduler.step()
        val_miou = evaluate(model, data["val"], data["classes"], config, precision)["miou"] if len(data["val"][0]) else None
        history.append(dict(epoch=epoch, train_loss=float(np.mean(losses)), val_miou=val_miou,
                            seconds=round(time.time() - epoch_start, 2)))
        print(f"epoch {epoch}/{config['epochs']}  train loss {history[-1]['train_loss']:.4f}  val mIoU "
              f"{'-' if val_miou is None else f'{val_miou:.4f}'}  {history[-1]['seconds']:.1f}s", flush=True)
        if best is None or val_miou is None or val_miou > best[0]:   # without a val split: the last epoch
            best = (val_miou, epoch, {k: v.detach().clone() for k, v in model.state_dict().items()})
    if not len(data["val"][0]):
        print("no val split: no best-epoch selection, the last epoch's weights are tested", flush=True)
    model.load_state_dict(best[2])
    test = evaluate(model, data["test"], data["classes"], config, precision)
    print_table(test, data["classes"])

    out = Path(config["out"] or Path("runs") / run_name(config))
    metrics = dict(config=config, classes=list(data["classes"]), labeled_fraction=labeled_fraction,
                   crops_per_epoch=sampler.crops, encoder_init=model.encoder_init, device=str(device),
                   machine=machine(device), torch=torch.__version__, precision=precision,
                   best_epoch=best[1], history=history, test=test, wall_time_s=round(time.time() - started, 1))
    out.mkdir(parents=True, exist_ok=True)
    save_atomic(lambda f: torch.save(dict(state_dict=model.state_dict(), classes=list(data["classes"]),
                                          colours=data.get("colours"), bands=data["bands"],
                                          image_size=config["image_size"], encoder_init=model.encoder_init), f),
                out / "model.pt")
    save_atomic(lambda f: f.write(json.dumps(metrics, indent=2).encode()), out / "metrics.json")
    print(f"test mIoU {test['miou']:.4f}  pixel accuracy {test['pixel_accuracy']:.4f} (always the commonest "
          f"class: {test['commonest_class_accuracy']:.4f})  wall {metrics['wall_time_s']:.0f}s  -> {out}/metrics.json",
          flush=True)
    return metrics


def load_data(config):
    """{'train': (images, point_labels), 'val'|'test': (images, dense_masks), 'classes', 'bands',
    'mean', 'std'}. A tile's point_labels are its Clicks, or for --dense its dense mask."""
    how = label_options(config)
    if config["data"]:
        return tiles.load_folder(config["data"], config["seed"], how)
    data = dict(classes=CLASSES, bands=3)
    for split in ("train", "val", "test"):
        images, dense_masks = make_split(split, config[f"{split}_size"], config["seed"], config["image_size"])
        if split == "train":
            data[split] = (images, list(dense_masks) if how == "dense" else
                           sample_split_points(dense_masks, config["seed"], **how))
        else:
            data[split] = (images, dense_masks)
    data["mean"], data["std"] = band_statistics(data["train"][0])     # as for a tile folder
    return data


def label_options(config):
    """How the training labels are made: "dense" (the full masks), sample_points keyword arguments,
    or None (a tile folder whose training tiles all bring their own clicks)."""
    if config["dense"]:
        return "dense"
    if config["points"] is not None:
        return dict(points_per_image=config["points"])
    if config["points_per_class"] is not None:
        return dict(points_per_class=config["points_per_class"], strategy=config["strategy"])
    return None


@torch.no_grad()
def predict_tile(model, image, window, batch_size=8, precision="fp32"):
    """Logits (C, H, W) for a whole tile of any size: overlapping window x window crops of the
    edge-padded tile, their logits averaged where they overlap, the padding cut off again. The
    tile stays in its stored dtype; only the windows in flight are float."""
    image = np.asarray(image)
    h, w = image.shape[-2:]
    ph, pw = max(window, -(-h // DIVISOR) * DIVISOR), max(window, -(-w // DIVISOR) * DIVISOR)
    padded = np.pad(image, ((0, 0), (0, ph - h), (0, pw - w)), mode="edge")
    starts = lambda n: sorted(set(range(0, n - window + 1, window // 2)) | {n - window})
    corners = [(y, x) for y in starts(ph) for x in starts(pw)]
    device = next(model.parameters()).device
    layout = torch.channels_last if model.stem[0].weight.is_contiguous(memory_format=torch.channels_last) \
        else torch.contiguous_format                                # batches follow the model's layout
    logits, counts = None, torch.zeros(1, ph, pw)
    for i in range(0, len(corners), batch_size):
        chunk = corners[i:i + batch_size]
        windows = np.stack([padded[:, y:y + window, x:x + window] for y, x in chunk]).astype(np.float32)
        with autocast(device, precision):
            out = model(torch.from_numpy(windows).to(device, memory_format=layout)).float().cpu()
        logits = torch.zeros(out.shape[1], ph, pw) if logits is None else logits
        for (y, x), o in zip(chunk, out):
            logits[:, y:y + window, x:x + window] += o
            counts[:, y:y + window, x:x + window] += 1
    return logits.div_(counts)[:, :h, :w]       # in place: on a big tile this is the largest array


def evaluate(model, split, classes, config, precision="fp32"):
    """Scores over a whole split from one confusion matrix (pixels marked IGNORE are skipped)."""
    images, dense_masks = split
    model.eval()
    matrix = torch.zeros(len(classes), len(classes), dtype=torch.int64)
    for image, dense_mask in zip(images, dense_masks):
        prediction = predict_tile(model, image, config["image_size"], config["batch_size"], precision).argmax(0)
        matrix += confusion_matrix(prediction.to(torch.uint8), torch.tensor(np.asarray(dense_mask)), len(classes))
    return scores(matrix, classes)


def confusion_matrix(prediction, target, num_classes):
    """matrix[t, p] = number of pixels of true class t predicted as p; a target outside
    0..num_classes-1 (255: unknown) is not counted. int32 indices, no masked copies: on a
    16-megapixel tile this costs 64 MB, not half a gigabyte."""
    target, prediction = target.reshape(-1).to(torch.int32), prediction.reshape(-1).to(torch.int32)
    index = torch.where((target >= 0) & (target < num_classes), target * num_classes + prediction, num_classes ** 2)
    return torch.bincount(index, minlength=num_classes ** 2 + 1)[:-1].reshape(num_classes, num_classes)


def scores(matrix, classes):
    """mIoU (mean over classes that occur in truth or prediction), pixel accuracy, per-class
    IoU / precision / recall. A ratio with nothing to count is None. The pixel accuracy of always
    answering the commonest true class is the floor any useful model must clear."""
    m = matrix.double()
    tp, truth, predicted = m.diag(), m.sum(1), m.sum(0)
    ratio = lambda a, b: [None if d == 0 else float(n / d) for n, d in zip(a, b)]
    iou, precision, recall = ratio(tp, truth + predicted - tp), ratio(tp, predicted), ratio(tp, truth)
    present = [v for v in iou if v is not None]
    return dict(miou=float(np.mean(present)) if present else 0.0,
                pixel_accuracy=float(tp.sum() / m.sum()) if m.sum() else 0.0,
                commonest_class_accuracy=float(truth.max() / m.sum()) if m.sum() else 0.0,
                per_class={c: dict(iou=iou[k], precision=precision[k], recall=recall[k]) for k, c in enumerate(classes)},
                confusion_matrix=matrix.tolist())


def print_table(test, classes):
    fmt = lambda v: "   -  " if v is None else f"{v:.4f}"
    print(f"{'class':<12} {'IoU':>7} {'precision':>10} {'recall':>7}")
    for c in classes:
        s = test["per_class"][c]
        print(f"{c:<12} {fmt(s['iou']):>7} {fmt(s['precision']):>10} {fmt(s['recall']):>7}")


def describe_labels(config, short=False):
    if config["dense"]:
        return "dense" if short else "dense masks"
    if config["points"] is not None:
        return f"points{config['points']}" if short else f"{config['points']} random points/image"
    if config["points_per_class"] is not None:
        return f"{config['points_per_class']}perclass-{config['strategy']}" if short else \
               f"{config['points_per_class']} {config['strategy']} points/class"
    return "clicks" if short else "clicks from points/*.csv"


def run_name(config):
    return f"{describe_labels(config, short=True)}{'-crf' if config['loss'] == 'pce+crf' else ''}-seed{config['seed']}"


def save_atomic(write, path):
    """Write through a temporary file beside `path`, then rename it into place in one step."""
    tmp = Path(f"{path}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        write(f)
    os.replace(tmp, path)


def check_config(config):
    unknown = set(config) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown config keys {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    given = [k for k in ("points", "points_per_class") if config[k] is not None] + (["dense"] if config["dense"] else [])
    if len(given) > 1 or not (given or config["data"]):
        raise ValueError(f"choose exactly one of --points N, --points-per-class K, --dense (got {given or 'none'})")
    for key in ("points", "points_per_class", "epochs", "batch_size", "image_size", "train_size", "test_size",
                "crops_per_epoch"):
        if config[key] is not None and (not isinstance(config[key], int) or config[key] < 1):
            raise ValueError(f"--{key.replace('_', '-')} must be a positive integer, got {config[key]}")
    for key in ("val_size", "seed"):
        if not isinstance(config[key], int) or config[key] < 0:
            raise ValueError(f"--{key.replace('_', '-')} must be a non-negative integer, got {config[key]}")
    if config["strategy"] not in ("random", "stratified"):
        raise ValueError(f"unknown strategy {config['strategy']!r}: use random or stratified")
    if config["strategy"] != "random" and config["points_per_class"] is None:
        raise ValueError(f"--strategy {config['strategy']} applies to --points-per-class only")
    if config["loss"] not in ("pce", "pce+crf"):
        raise ValueError(f"unknown loss {config['loss']!r}: use pce or pce+crf")
    if not config["crf_weight"] >= 0 or not config["crf_sigma_xy"] > 0 or not config["crf_sigma_band"] > 0:
        raise ValueError(f"--crf-weight must be >= 0 and the CRF sigmas > 0, got {config['crf_weight']}, "
                         f"{config['crf_sigma_xy']} and {config['crf_sigma_band']}")
    if config["image_size"] % DIVISOR:
        raise ValueError(f"--image-size must be a multiple of {DIVISOR}, got {config['image_size']}")
    if not config["lr"] > 0 or not config["weight_decay"] >= 0:
        raise ValueError(f"--lr must be > 0 and --weight-decay >= 0, got {config['lr']} and {config['weight_decay']}")
    weights = config["weights"]
    if weights is not None and str(weights).lower() not in ("imagenet", "none") and not Path(weights).is_file():
        raise ValueError(f"weights file not found: {weights} (use imagenet, none or a resnet34 state dict file)")
    return config


def main(argv=None):
    parser = OneLineParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, help="random clicks per training image")
    parser.add_argument("--points-per-class", type=int, help="clicks per class present in each image")
    parser.add_argument("--strategy", default=DEFAULTS["strategy"], choices=["random", "stratified"])
    parser.add_argument("--dense", action="store_true", help="train on the full masks (upper bound)")
    for key in ("epochs", "batch_size", "image_size", "seed", "train_size", "val_size", "test_size"):
        parser.add_argument(f"--{key.replace('_', '-')}", type=int, default=DEFAULTS[key])
    parser.add_argument("--crops-per-epoch", type=int, help="training crops per epoch (default: cover the "
                        "training area once, ceil(total tile area / image-size^2))")
    parser.add_argument("--loss", default=DEFAULTS["loss"], choices=["pce", "pce+crf"],
                        help="pce+crf adds the local CRF energy of crf.py, weighted by --crf-weight")
    parser.add_argument("--crf-weight", type=float, default=DEFAULTS["crf_weight"])
    parser.add_argument("--crf-sigma-xy", type=float, default=DEFAULTS["crf_sigma_xy"], help="kernel width, input pixels")
    parser.add_argument("--crf-sigma-band", type=float, default=DEFAULTS["crf_sigma_band"],
                        help="kernel width, in standard deviations of the bands")
    parser.add_argument("--lr", type=float, default=DEFAULTS["lr"])
    parser.add_argument("--weight-decay", type=float, default=DEFAULTS["weight_decay"])
    parser.add_argument("--device", default=DEFAULTS["device"], help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--precision", default=DEFAULTS["precision"], choices=["auto", "fp32", "bf16"],
                        help="auto: bf16 where the device computes it natively, else fp32")
    parser.add_argument("--weights", default=DEFAULTS["weights"], help="imagenet, none or a resnet34 state dict file")
    parser.add_argument("--data", help="folder of your own tiles (format in README)")
    parser.add_argument("--out", help="output folder (default runs/<name>)")
    config = vars(parser.parse_args(argv))
    try:
        train(config)
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))


if __name__ == "__main__":
    main()
