"""How far to shrink (train.py --tta-zoom-out): a finished train.py run's val mIoU with each tile
also seen shrunk K times, for each K given, scored as the run scores with --tta (8 orientations,
the shrunk view's logits upsampled and averaged with the full-size ones). K is chosen on val.
    python -m scripts.zoom_scan RUN_FOLDER --zoom 2 3 4
The tiles and clicks are read from RUN's config (as scripts/rescore.py reads them); K = 1 is the
run without a zoom. Each tile's full-size view is scored once and blended with each K's."""

import argparse
import sys
import time

import numpy as np
import torch

from lib.checkpoint import open_run
from lib.crops import shrink
from lib.evaluation import blend_zoomed, confusion_matrix, predict_tile, scores

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("run")
parser.add_argument("--zoom", type=int, nargs="+", default=[1, 2, 3, 4])
args = parser.parse_args()
try:
    metrics, config, precision, data, model = open_run(args.run)
except ValueError as error:  # no finished run there, or its config no longer valid
    sys.exit(f"zoom_scan: error: {error}")
print(f"{args.run}: {precision}; val as recorded {metrics.get('val_miou_tta', float('nan')):.4f}")
print(f"classes {', '.join(data['classes'])}")
classes, window, batch = data["classes"], config["image_size"], config["batch_size"]
matrices = {zoom: 0 for zoom in args.zoom}
seconds = dict.fromkeys(["full size", *args.zoom], 0.0)
images, masks = data["val"]
for number, (image, mask) in enumerate(zip(images, masks), 1):
    started = time.time()
    full = predict_tile(model, image, window, batch, precision, tta=True)
    seconds["full size"] += time.time() - started
    for zoom in args.zoom:
        started = time.time()
        logits = full.clone()
        if zoom > 1:
            coarse = predict_tile(
                model, shrink(np.asarray(image), zoom), window, batch, precision, True
            )
            logits = blend_zoomed(logits, coarse)
        truth = torch.tensor(np.asarray(mask))
        matrices[zoom] += confusion_matrix(logits.argmax(0).to(torch.uint8), truth, len(classes))
        seconds[zoom] += time.time() - started
    print(f"  tile {number}/{len(images)} scored, {sum(seconds.values()):.0f} s", flush=True)
for zoom in args.zoom:
    result = scores(matrices[zoom], classes)
    ious = " ".join(
        f"{v['iou']:.4f}" if v["iou"] is not None else "-" for v in result["per_class"].values()
    )
    print(f"val zoom {zoom} mIoU {result['miou']:.4f}  IoU {ious}  (+{seconds[zoom]:.0f} s)")
print(f"the full-size view, shared by every K: {seconds['full size']:.0f} s")
