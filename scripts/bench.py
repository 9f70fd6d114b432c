"""How fast training and evaluation run in each arithmetic mode, measured in one process.

    python -m scripts.bench                 the device --device auto picks
    python -m scripts.bench --device cpu --steps 20

Four modes: fp32, fp32 + channels_last, bf16 autocast, bf16 autocast + channels_last (train.py's
default where the device computes bf16 natively). For each, on the report's setting (the UNet,
batch 8, 128 x 128 crops, 3 bands):
  train  images per second over whole training steps: recipe.train_step, the step train.py runs
         (forward, pCE in fp32, backward, Adam step), with the recipe's optimizer
  eval   megapixels per second of evaluation.predict_tile over a 1024 x 1024 tile (overlapping
         128-pixel windows, batches of 8), as validation, testing and predict.py use it
and a last line: training in the last mode with the loss pCE + CRF (lib/crf.py), and its step time
against pCE alone.
The modes take turns, step by step (training: --steps timed rounds after --warmup untimed ones;
evaluation: a quarter as many, after one), so a machine that drifts in speed during the run
touches every mode alike; each figure is a median, and the ratio columns are to fp32. Figures
are for this machine: the first line names it.
"""

import statistics
import time

import numpy as np
import torch

from lib.cli import OneLineParser, guard
from lib.device import machine, pick_device
from lib.evaluation import predict_tile
from lib.recipe import crf_settings, make_optimizer, train_step
from lib.settings import DEFAULTS
from pce import UNLABELED
from unet import UNet

MODES = (("fp32", False), ("fp32", True), ("bf16", False), ("bf16", True))
BATCH, SIZE, TILE = 8, 128, 1024


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def training(device, precision, channels_last, crf=False):
    """recipe.train_step on one batch of the report's setting, as a function to time; crf=True adds
    the regularised loss's R term (crf.py) with train.py's default settings."""
    layout = torch.channels_last if channels_last else torch.contiguous_format
    torch.manual_seed(0)
    model = (
        UNet(weights=None, mean=[127.0] * 3, std=[64.0] * 3)
        .to(device, memory_format=layout)
        .train()
    )
    optimizer, _ = make_optimizer(model, DEFAULTS)
    images = torch.randint(0, 256, (BATCH, 3, SIZE, SIZE)).float().to(device, memory_format=layout)
    point_labels = torch.where(
        torch.rand(BATCH, SIZE, SIZE) < 0.01, torch.randint(0, 5, (BATCH, SIZE, SIZE)), UNLABELED
    )
    point_labels = point_labels.to(device)
    settings = crf_settings({**DEFAULTS, "loss": "pce+crf"}) if crf else None
    return lambda: train_step(model, optimizer, images, point_labels, precision, settings)


def tile_prediction(device, precision, channels_last):
    """predict_tile over one TILE x TILE tile, as a function to time."""
    layout = torch.channels_last if channels_last else torch.contiguous_format
    torch.manual_seed(0)
    model = (
        UNet(weights=None, mean=[127.0] * 3, std=[64.0] * 3).to(device, memory_format=layout).eval()
    )
    tile = np.random.default_rng(0).integers(0, 256, (3, TILE, TILE), dtype=np.uint8)
    return lambda: predict_tile(model, tile, SIZE, BATCH, precision)


def interleaved(functions, device, rounds, warmup):
    """Median seconds of each function, timed in turns (A B C D A B C D ...) so that a machine
    that speeds up or slows down during the run affects every mode alike."""
    seconds = {name: [] for name in functions}
    for round_number in range(warmup + rounds):
        for name, function in functions.items():
            synchronize(device)
            start = time.perf_counter()
            function()
            synchronize(device)
            if round_number >= warmup:
                seconds[name].append(time.perf_counter() - start)
    return {name: statistics.median(s) for name, s in seconds.items()}


def main(argv=None):
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--steps", type=int, default=12, help="timed training steps per mode (eval: a quarter)"
    )
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        parser.error(f"--steps must be >= 1 and --warmup >= 0, got {args.steps} and {args.warmup}")
    try:
        device = pick_device(args.device)
    except ValueError as error:
        parser.error(str(error))
    print(
        f"{machine(device)}; torch {torch.__version__}; batch {BATCH} x {SIZE}x{SIZE}; eval tile "
        f"{TILE}x{TILE}",
        flush=True,
    )
    print(
        f"{'mode':<30} {'train img/s':>11} {'vs fp32':>8} {'eval MP/s':>10} {'vs fp32':>8}",
        flush=True,
    )
    train = interleaved(
        {**{m: training(device, *m) for m in MODES}, "crf": training(device, *MODES[-1], crf=True)},
        device,
        args.steps,
        args.warmup,
    )
    evaluation = interleaved(
        {m: tile_prediction(device, *m) for m in MODES}, device, max(args.steps // 4, 1), 1
    )
    for precision, channels_last in MODES:
        mode = (
            precision
            + (" autocast" if precision == "bf16" else "")
            + (" + channels_last" if channels_last else "")
        )
        images, megapixels = (
            BATCH / train[precision, channels_last],
            TILE * TILE / 1e6 / evaluation[precision, channels_last],
        )
        print(
            f"{mode:<30} {images:>11.1f} "
            f"{train[MODES[0]] / train[precision, channels_last]:>7.2f}x {megapixels:>10.3f} "
            f"{evaluation[MODES[0]] / evaluation[precision, channels_last]:>7.2f}x",
            flush=True,
        )
    print(
        f"{'the last, loss pCE + CRF':<30} {BATCH / train['crf']:>11.1f} "
        f"{train[MODES[0]] / train['crf']:>7.2f}x   (step time "
        f"{train['crf'] / train[MODES[-1]]:.2f}x pCE alone)",
        flush=True,
    )


if __name__ == "__main__":
    guard(main)
