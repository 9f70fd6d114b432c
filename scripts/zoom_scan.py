"""How far to shrink (train.py --tta-zoom-out): a finished train.py run's val mIoU with each tile
also seen shrunk K times, for each K given, scored as the run scores with --tta (8 orientations,
the shrunk view's logits upsampled and averaged with the full-size ones). K is chosen on val.
    python -m scripts.zoom_scan RUN_FOLDER --zoom 2 3 4
The tiles and clicks are read from RUN's config (as scripts/rescore.py reads them); K = 1 is the
run without a zoom."""

import argparse
import time

from evaluation import evaluate
from lib.checkpoint import open_run

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("run")
parser.add_argument("--zoom", type=int, nargs="+", default=[1, 2, 3, 4])
args = parser.parse_args()
metrics, config, precision, data, model = open_run(args.run)
print(f"{args.run}: {precision}; val as recorded {metrics.get('val_miou_tta', float('nan')):.4f}")
print(f"classes {', '.join(data['classes'])}")
for zoom in args.zoom:
    started = time.time()
    result = evaluate(
        model,
        data["val"],
        data["classes"],
        config["image_size"],
        config["batch_size"],
        precision,
        True,
        zoom,
    )
    ious = " ".join(
        f"{v['iou']:.4f}" if v["iou"] is not None else "-" for v in result["per_class"].values()
    )
    print(
        f"val zoom {zoom} mIoU {result['miou']:.4f}  IoU {ious}  ({time.time() - started:.0f} s)",
        flush=True,
    )
