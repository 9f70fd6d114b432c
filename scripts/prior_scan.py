"""How far to shift, and to which shares (train.py --prior-shift, --prior-estimate): a finished
train.py run's val mIoU with its logits shifted by S x log(pixel share / click share), S from 0
(as trained) to 1 (all the way), for each estimate of the pixel shares (lib/prior.py: EM, the mean
posterior, their geometric mean), as --prior-shift does. Both are chosen on val; test is scanned
only with --show-test, once the setting is chosen.
    python -m scripts.prior_scan RUN_FOLDER [--estimates em geometric] [--show-test]
The tiles and clicks are read from RUN's config (as scripts/rescore.py reads them); a run trained
with --prior-shift has its shift taken out of its weights first (its metrics.json records it), so
"none" is the run unshifted. The tiles are seen as the run's scoring sees them (8 orientations,
and shrunk by its --tta-zoom-out): the shift adds to the logits, so one pass serves every S."""

import numpy as np
import torch

from lib.checkpoint import finished_run, open_run
from lib.cli import OneLineParser, add_show_test
from lib.evaluation import confusion_matrix, predict_tile, scores
from lib.prior import ESTIMATES, log_ratios, pixel_shares, take_out_shift, training_posteriors

STRENGTHS = (0.25, 0.5, 0.75, 1.0)

parser = OneLineParser(description=__doc__.split("\n")[0])
parser.add_argument("run")
add_show_test(parser)
parser.add_argument("--estimates", nargs="+", choices=ESTIMATES, default=list(ESTIMATES))
args = parser.parse_args()
try:
    finished_run(args.run)  # one line before the tiles are read
except ValueError as error:
    parser.error(str(error))
metrics, config, precision, data, model = open_run(args.run)
window, classes = config["image_size"], data["classes"]
taken_out = take_out_shift(model, metrics)
clicked, click_shares, posteriors = training_posteriors(model, data["train"], window, 8, precision)
print(f"{args.run}: seed {config['seed']}, {precision}; classes {', '.join(classes)}")
print("its own shift, taken out: " + " ".join(f"{s:+.4f}" for s in taken_out))
print("click shares " + " ".join(f"{s:.4f}" for s in click_shares))
ratios = {}
for estimate in args.estimates:
    shares = pixel_shares(posteriors, click_shares, estimate)
    ratios[estimate] = log_ratios(clicked, click_shares, shares)
    print(f"pixel shares ({estimate}) " + " ".join(f"{s:.4f}" for s in shares))
for split in ["val"] + ["test"] * args.show_test:
    images, masks = data[split]
    logits = [
        predict_tile(model, image, window, 8, precision, True, config["tta_zoom_out"])
        for image in images
    ]
    shifts = [("none", 0.0, torch.zeros(len(classes)))] + [
        (estimate, strength, strength * ratios[estimate])
        for estimate in args.estimates
        for strength in STRENGTHS
    ]
    for estimate, strength, shift in shifts:
        shift = shift.float()[:, None, None]
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
        print(
            f"{split} {estimate} strength {strength:.2f} mIoU {result['miou']:.4f}  IoU {ious}",
            flush=True,
        )
