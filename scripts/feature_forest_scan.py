"""The forest fed the network's features, against the two models' plain fusion (issue 58, item 3):
a finished train.py run's val mIoU for the network alone, baseline.py's forest alone, their fused
probabilities (lib/forest.fuse) at each W given, and a forest (baseline.py's 200 class-balanced
trees) fitted on the clicks with the network's last decoder features (the 16 channels its head
reads, full resolution) beside the forest's 48 filters, or alone, and the network's probabilities
fused with those of the forest on both (the same geometric mean at each W).
    python -m scripts.feature_forest_scan RUN_FOLDER [--weights 0.25 0.5] [--show-test]
Every map here is one view of the tile (no test-time augmentation, no zoom): the comparison is
between the ways of combining, not the views. The network's features at the training clicks are
those of the pixels it was trained on, so a forest fitted on them sees them cleaner than at any
other pixel; that is part of what this measures. The tiles and clicks are read from RUN's config
(as scripts/rescore.py reads them); the forests are fitted with RUN's seed."""

import time

import numpy as np
import torch

from lib.checkpoint import open_run
from lib.cli import OneLineParser, add_show_test
from lib.evaluation import confusion_matrix, predict_tile, scores
from lib.forest import features, fit, fuse, probabilities_of

parser = OneLineParser(description=__doc__.split("\n")[0])
parser.add_argument("run")
parser.add_argument("--weights", type=float, nargs="+", default=[0.25, 0.5])
add_show_test(parser)


def decoder_features(model, image, config, precision):
    """(16, H, W) numpy: what the network's head reads at each pixel of a tile, one view."""
    window, batch = config["image_size"], config["batch_size"]
    head, model.head = model.head, torch.nn.Identity()  # the model now gives what its head reads
    try:
        return predict_tile(model, image, window, batch, precision).numpy()
    finally:
        model.head = head


def fit_forests(model, data, config, precision):
    """Three forests on every training click: on the filters (baseline.py's forest: its features
    are these, on tiles up to lib/forest.BLOCK px a side), on the filters and the network's
    features, and on the network's features alone."""
    both, classes = [], []
    for number, (image, clicks) in enumerate(zip(*data["train"]), 1):
        decoded, filters = decoder_features(model, image, config, precision), features(image)
        say_every(100, number, len(data["train"][0]), "training tile")
        stacked = np.concatenate([filters, decoded])
        both.append(stacked[:, clicks.rows, clicks.cols].T)
        classes.append(clicks.classes)
    both, classes = np.concatenate(both), np.concatenate(classes)
    print(f"features at {len(classes)} clicks: {both.shape[1]} a click", flush=True)
    filters = len(both[0]) - len(decoded)
    seed = config["seed"]
    return [fit(x, classes, seed) for x in (both[:, :filters], both, both[:, filters:])]


def say_every(every, number, total, what):
    if number % every == 0 or number == total:
        print(f"  {what} {number}/{total}", flush=True)


def main():
    args = parser.parse_args()
    try:
        metrics, config, precision, data, model = open_run(args.run)
    except ValueError as error:  # no finished run there, or its config no longer valid
        parser.error(str(error))
    model.eval()
    classes = data["classes"]
    started = time.time()
    forest, on_both, on_network = fit_forests(model, data, config, precision)
    print(f"three forests fitted in {time.time() - started:.0f} s", flush=True)
    for split in ["val"] + ["test"] * args.show_test:
        ways = ["network", "forest", *[f"fused {w:.2f}" for w in args.weights]]
        ways += ["forest on filters + network features", "forest on network features"]
        ways += [f"network fused {w:.2f} with the forest on both" for w in args.weights]
        matrices = dict.fromkeys(ways, 0)
        for number, (image, mask) in enumerate(zip(*data[split]), 1):
            window, batch = config["image_size"], config["batch_size"]
            logits = predict_tile(model, image, window, batch, precision)
            decoded, filters = decoder_features(model, image, config, precision), features(image)
            say_every(50, number, len(data[split][0]), f"{split} tile")
            stacked = np.concatenate([filters, decoded])
            shares = torch.from_numpy(probabilities_of(forest, filters, len(classes)))
            maps = {"network": logits.argmax(0), "forest": shares.argmax(0)}
            for weight in args.weights:
                maps[f"fused {weight:.2f}"] = fuse(logits, shares, weight).argmax(0)
            both_shares = torch.from_numpy(probabilities_of(on_both, stacked, len(classes)))
            maps["forest on filters + network features"] = both_shares.argmax(0)
            network_shares = probabilities_of(on_network, decoded, len(classes))
            maps["forest on network features"] = torch.from_numpy(network_shares.argmax(0))
            for weight in args.weights:
                fused_both = fuse(logits, both_shares, weight).argmax(0)
                maps[f"network fused {weight:.2f} with the forest on both"] = fused_both
            truth = torch.tensor(np.asarray(mask))
            for way, found in maps.items():
                matrices[way] += confusion_matrix(found.to(torch.uint8), truth, len(classes))
        for way in ways:
            result = scores(matrices[way], classes)
            print(f"{split} {way}: mIoU {result['miou']:.4f} (held {result['miou_in_truth']:.4f})")
    print(f"{time.time() - started:.0f} s in all")


if __name__ == "__main__":
    main()
