"""The test view, how much of the pixel forest to fuse in and the tile prior (train.py
--tta-zoom-out K, --forest-weight W, --tile-prior S): a finished train.py run's val mIoU for each
K, W and S given, the forest's class probabilities fused into the network's by a geometric mean
of weight W (lib/forest.fuse), the tile also seen shrunk K times (8 orientations; K = 1: not
shrunk), each tile's map weighted by its own class shares to the power S (lib/evaluation.
tile_prior; S = 0: none). K, W and S are chosen on val; test is scanned only with --show-test,
once they are chosen.
    python -m scripts.fusion_scan RUN_FOLDER --weights 0 0.5 1 --zoom 1 3 --tile-priors 0 1 2 4
The tiles and clicks are read from RUN's config (as scripts/rescore.py reads them); the forest is
baseline.py's, fitted on RUN's training clicks with RUN's seed. --zoom defaults to 1 and RUN's
own K (needs its --tta), --tile-priors to 0; a shift is in RUN's weights. W = 0 is the network
alone, W = 1 the forest alone. Each tile's full-size view and forest probabilities are computed
once, the shrunk views blended in, and every (K, W, S) scored from them."""

import time

import numpy as np
import torch

from lib.checkpoint import open_run
from lib.cli import OneLineParser, add_show_test
from lib.evaluation import confusion_matrix, scores, tile_prior, tile_views
from lib.forest import Fusion, fuse, probabilities

parser = OneLineParser(description=__doc__.split("\n")[0])
parser.add_argument("run")
parser.add_argument("--weights", type=float, nargs="+", default=[0, 0.25, 0.5, 0.75, 1])
parser.add_argument("--zoom", type=int, nargs="+", help="default: 1 and RUN's --tta-zoom-out")
parser.add_argument("--tile-priors", type=float, nargs="+", default=[0.0])
add_show_test(parser)


def scan(split, model, fusion, config, precision, classes, zooms, weights, strengths):
    """Confusion matrices {(K, W, S): matrix} over `split`, and the seconds each part took."""
    window, batch, tta = config["image_size"], config["batch_size"], config["tta"]
    matrices = {(k, w, s): 0 for k in zooms for w in weights for s in strengths}
    seconds = dict(network=0.0, forest=0.0)
    images, masks = split
    for number, (image, mask) in enumerate(zip(images, masks), 1):
        started = time.time()
        # the full-size view once, the shrunk ones (1/K² of the pixels) blended into copies of it
        seen = tile_views(model, image, window, batch, precision, [(tta, zoom) for zoom in zooms])
        views = dict(zip(zooms, seen))
        seconds["network"] += time.time() - started
        started = time.time()
        shares = probabilities(fusion.forest, np.asarray(image), len(classes))
        seconds["forest"] += time.time() - started
        truth = torch.tensor(np.asarray(mask))
        for zoom, weight, strength in matrices:
            fused = tile_prior(fuse(views[zoom], shares, weight), strength).argmax(0)
            matrices[zoom, weight, strength] += confusion_matrix(
                fused.to(torch.uint8), truth, len(classes)
            )
        if number % 20 == 0 or number == len(images):
            print(f"  tile {number}/{len(images)}, {sum(seconds.values()):.0f} s", flush=True)
    return matrices, seconds


def main():
    args = parser.parse_args()
    try:
        if not all(0 <= weight <= 1 for weight in args.weights):
            raise ValueError(f"--weights must be in [0, 1], got {args.weights}")
        if min(args.tile_priors) < 0:
            raise ValueError(f"--tile-priors must be >= 0, got {args.tile_priors}")
        if args.zoom and min(args.zoom) < 1:
            raise ValueError(f"--zoom must be whole numbers >= 1, got {args.zoom}")
        metrics, config, precision, data, model = open_run(args.run)
        if args.zoom and max(args.zoom) > 1 and not config["tta"]:
            raise ValueError(f"--zoom {max(args.zoom)} needs a run with --tta; {args.run} has none")
        fusion = Fusion.for_run(data, dict(config, forest_weight=1.0))  # the forest, fitted once
    except ValueError as error:  # no finished run there, or its config no longer valid
        parser.error(str(error))
    own_zoom = config["tta_zoom_out"] if config["tta"] else 1
    zooms = args.zoom or sorted({1, own_zoom})
    recorded = metrics.get("val_miou_tta", float("nan"))
    print(f"{args.run}: {precision}; val as recorded (zoom {own_zoom}) {recorded:.4f}")
    classes = data["classes"]
    print(f"classes {', '.join(classes)}")
    for split in ["val"] + ["test"] * args.show_test:
        matrices, seconds = scan(
            data[split],
            model,
            fusion,
            config,
            precision,
            classes,
            zooms,
            args.weights,
            args.tile_priors,
        )
        for (zoom, weight, strength), matrix in matrices.items():
            result = scores(matrix, classes)
            ious = " ".join(
                "-" if v["iou"] is None else f"{v['iou']:.4f}" for v in result["per_class"].values()
            )
            held = f"{result['miou_in_truth']:.4f}"  # over the classes the split's masks hold
            print(
                f"{split} zoom {zoom} weight {weight:.2f} tile prior {strength:g} "
                f"mIoU {result['miou']:.4f} "
                f"(held {held})  IoU {ious}"
            )
        print(f"{split}: network {seconds['network']:.0f} s, forest {seconds['forest']:.0f} s")
    print(f"forest fitted on {len(fusion.classes)} clicks in {fusion.fit_seconds:.0f} s")


if __name__ == "__main__":
    main()
