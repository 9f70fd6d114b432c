"""How far to shift (train.py --prior-shift): a finished train.py run's val and test mIoU with its
logits shifted by S x log(pixel share / click share), S from 0 (as trained) to 1 (all the way to
the EM estimate), the shares estimated by prior.prior_log_ratios, as --prior-shift does. The
strength is chosen on val.
    python -m scripts.prior_scan RUN_FOLDER [--splits val]
The tiles and clicks are read from RUN's config (as scripts/rescore.py reads them); a run
trained with --prior-shift has its shift in its weights already and is refused."""

import argparse
import sys

import numpy as np
import torch

from evaluation import confusion_matrix, predict_tile, scores
from lib.checkpoint import open_run, trained_shift
from prior import prior_log_ratios

STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0)

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("run")
parser.add_argument("--splits", nargs="+", choices=("val", "test"), default=["val", "test"])
args = parser.parse_args()
try:
    shifted = trained_shift(args.run)
except ValueError as error:  # no finished run there
    sys.exit(f"prior_scan: error: {error}")
if shifted:  # said before the tiles are read
    sys.exit(
        f"prior_scan: error: {args.run} was trained with --prior-shift {shifted}: "
        "its logits are shifted already; scan a run trained without it"
    )
metrics, config, precision, data, model = open_run(args.run)
window, classes = config["image_size"], data["classes"]
click_shares, shares, log_ratios = prior_log_ratios(model, data["train"], window, 8, precision)
print(f"{args.run}: seed {config['seed']}, {precision}; classes {', '.join(classes)}")
print("click shares " + " ".join(f"{s:.4f}" for s in click_shares))
print("pixel shares (EM) " + " ".join(f"{s:.4f}" for s in shares))
for split in args.splits:
    images, masks = data[split]
    logits = [predict_tile(model, image, window, 8, precision, tta=True) for image in images]
    for strength in STRENGTHS:
        shift = (strength * log_ratios).float()[:, None, None]
        matrix = sum(
            confusion_matrix(
                (scored + shift).argmax(0).to(torch.uint8),
                torch.tensor(np.asarray(m)),
                len(classes),
            )
            for scored, m in zip(logits, masks)
        )
        result = scores(matrix, classes)
        ious = " ".join(
            f"{v['iou']:.4f}" if v["iou"] is not None else "-" for v in result["per_class"].values()
        )
        print(f"{split} strength {strength:.2f} mIoU {result['miou']:.4f}  IoU {ious}", flush=True)
