"""How fast training and evaluation run in each arithmetic mode, measured in one process.

    python bench.py                         the device --device auto picks
    python bench.py --device cpu --steps 20

Four modes: fp32, fp32 + channels_last, bf16 autocast, bf16 autocast + channels_last (train.py's
default where the device computes bf16 natively). For each, on the report's setting (the UNet,
batch 8, 128 x 128 crops, 3 bands):
  train  images per second over whole training steps: forward, pCE in fp32, backward, Adam step
  eval   megapixels per second of train.predict_tile over a 1024 x 1024 tile (overlapping
         128-pixel windows, batches of 8), as validation, testing and predict.py use it
Each figure is the median of --steps timed repetitions after --warmup untimed ones; the last
column is the ratio to fp32. Figures are for this machine: the first line names it.
"""
import statistics
import time

import numpy as np
import torch

from device import autocast, machine, pick_device
from pce import partial_cross_entropy
from tiles import OneLineParser
from train import predict_tile
from unet import UNet

MODES = (("fp32", False), ("fp32", True), ("bf16", False), ("bf16", True))
BATCH, SIZE, TILE = 8, 128, 1024


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(step, device, steps, warmup):
    """Median seconds of `step` over `steps` runs, after `warmup` runs."""
    seconds = []
    for i in range(warmup + steps):
        synchronize(device)
        start = time.perf_counter()
        step()
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds[warmup:])


def train_images_per_second(device, precision, channels_last, steps, warmup):
    layout = torch.channels_last if channels_last else torch.contiguous_format
    torch.manual_seed(0)
    model = UNet(weights=None, mean=[127.0] * 3, std=[64.0] * 3).to(device, memory_format=layout).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    images = torch.randint(0, 256, (BATCH, 3, SIZE, SIZE)).float().to(device, memory_format=layout)
    point_labels = torch.where(torch.rand(BATCH, SIZE, SIZE) < 0.01, torch.randint(0, 5, (BATCH, SIZE, SIZE)), -1)
    point_labels = point_labels.to(device)

    def step():
        with autocast(device, precision):
            logits = model(images)
        loss = partial_cross_entropy(logits.float(), point_labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return BATCH / timed(step, device, steps, warmup)


def eval_megapixels_per_second(device, precision, channels_last, steps, warmup):
    layout = torch.channels_last if channels_last else torch.contiguous_format
    torch.manual_seed(0)
    model = UNet(weights=None, mean=[127.0] * 3, std=[64.0] * 3).to(device, memory_format=layout).eval()
    tile = np.random.default_rng(0).integers(0, 256, (3, TILE, TILE), dtype=np.uint8)
    seconds = timed(lambda: predict_tile(model, tile, SIZE, BATCH, precision), device, max(steps // 4, 1), min(warmup, 1))
    return TILE * TILE / 1e6 / seconds


def main(argv=None):
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=12, help="timed training steps per mode (eval: a quarter)")
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        parser.error(f"--steps must be >= 1 and --warmup >= 0, got {args.steps} and {args.warmup}")
    try:
        device = pick_device(args.device)
    except ValueError as error:
        parser.error(str(error))
    print(f"{machine(device)}; torch {torch.__version__}; batch {BATCH} x {SIZE}x{SIZE}; "
          f"eval tile {TILE}x{TILE}", flush=True)
    print(f"{'mode':<30} {'train img/s':>11} {'vs fp32':>8} {'eval MP/s':>10} {'vs fp32':>8}", flush=True)
    baseline = None
    for precision, channels_last in MODES:
        figures = (train_images_per_second(device, precision, channels_last, args.steps, args.warmup),
                   eval_megapixels_per_second(device, precision, channels_last, args.steps, args.warmup))
        baseline = baseline or figures
        mode = precision + (" autocast" if precision == "bf16" else "") + (" + channels_last" if channels_last else "")
        print(f"{mode:<30} {figures[0]:>11.1f} {figures[0] / baseline[0]:>7.2f}x "
              f"{figures[1]:>10.3f} {figures[1] / baseline[1]:>7.2f}x", flush=True)


if __name__ == "__main__":
    main()
