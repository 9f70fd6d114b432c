"""How much of the pixel forest to fuse in (train.py --forest-weight W): a finished train.py run's
val mIoU with the forest's class probabilities fused into the network's by a geometric mean of
weight W (lib/forest.fuse), for each W given. W is chosen on val; test is scanned only with
--show-test, once the weight is chosen.
    python -m scripts.fusion_scan RUN_FOLDER --weights 0 0.25 0.5 0.75 1 [--show-test]
The tiles and clicks are read from RUN's config (as scripts/rescore.py reads them); the forest is
baseline.py's, fitted on RUN's training clicks with RUN's seed. The network's view is RUN's test
view (its --tta and --tta-zoom-out; a shift is in its weights). W = 0 is the network alone, W = 1
the forest alone. Each tile's network logits and forest probabilities are computed once and fused
for every W."""

import argparse
import sys
import time

import numpy as np
import torch

from lib.checkpoint import open_run
from lib.evaluation import confusion_matrix, predict_tile, scores
from lib.forest import Fusion, fuse, probabilities

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("run")
parser.add_argument("--weights", type=float, nargs="+", default=[0, 0.25, 0.5, 0.75, 1])
parser.add_argument(
    "--show-test",
    action="store_true",
    help="scan the test split too (a setting is chosen on val; test is looked at once, for the "
    "setting chosen)",
)
args = parser.parse_args()
try:
    if not all(0 <= weight <= 1 for weight in args.weights):
        raise ValueError(f"--weights must be in [0, 1], got {args.weights}")
    metrics, config, precision, data, model = open_run(args.run)
    fusion = Fusion.for_run(data, dict(config, forest_weight=1.0))  # the forest, fitted once
except ValueError as error:  # no finished run there, or its config no longer valid
    sys.exit(f"fusion_scan: error: {error}")
print(f"{args.run}: {precision}; val as recorded {metrics.get('val_miou_tta', float('nan')):.4f}")
print(f"classes {', '.join(data['classes'])}")
classes, window, batch = data["classes"], config["image_size"], config["batch_size"]
tta, zoom = config["tta"], config["tta_zoom_out"] if config["tta"] else 1
for split in ["val"] + ["test"] * args.show_test:
    matrices = {weight: 0 for weight in args.weights}
    seconds = dict(network=0.0, forest=0.0)
    images, masks = data[split]
    for number, (image, mask) in enumerate(zip(images, masks), 1):
        started = time.time()
        logits = predict_tile(model, image, window, batch, precision, tta, zoom)
        seconds["network"] += time.time() - started
        started = time.time()
        shares = probabilities(fusion.forest, np.asarray(image), len(classes))
        seconds["forest"] += time.time() - started
        truth = torch.tensor(np.asarray(mask))
        for weight in args.weights:
            fused = fuse(logits, shares, weight).argmax(0).to(torch.uint8)
            matrices[weight] += confusion_matrix(fused, truth, len(classes))
        if number % 20 == 0 or number == len(images):
            print(
                f"  {split} tile {number}/{len(images)}, {sum(seconds.values()):.0f} s", flush=True
            )
    for weight in args.weights:
        result = scores(matrices[weight], classes)
        ious = " ".join(
            f"{v['iou']:.4f}" if v["iou"] is not None else "-" for v in result["per_class"].values()
        )
        held = f"{result['miou_in_truth']:.4f}"  # over the classes the split's masks hold
        print(f"{split} weight {weight:.2f} mIoU {result['miou']:.4f} (held {held})  IoU {ious}")
    print(f"{split}: network {seconds['network']:.0f} s, forest {seconds['forest']:.0f} s")
print(f"forest fitted on {len(fusion.classes)} clicks in {fusion.fit_seconds:.0f} s")
