"""Which classes each split can show: per class, how many tiles hold it and how many pixels it has.
A class that val holds in one small patch cannot steer a choice made on val, and a class that test
holds in a handful of tiles makes its IoU, a share of the test mIoU, ride on those tiles
(DroneDeploy's ponds: docs/unclicked.md). Counts from the masks; nothing is trained or scored.
    python -m scripts.class_tiles DATA [--show-test]
Training tiles that have clicks and no mask are counted apart: their classes are not known."""

from pathlib import Path

import numpy as np

from clicks import class_counts
from lib.annotations import read_legend
from lib.cli import OneLineParser, add_show_test, run_command
from lib.tiles import iter_split

parser = OneLineParser(description=__doc__.split("\n")[0])
parser.add_argument("data", type=Path)
add_show_test(parser, what="count the test split too")


def class_tiles(root, split, legend):
    """(tiles holding each class, pixels of each class, tiles with a mask, tiles without one)
    over a split's masks, one tile in memory at a time."""
    classes = len(legend.names)
    holding, pixels = np.zeros(classes, np.int64), np.zeros(classes, np.int64)
    masked = unmasked = 0
    for _, _, mask, _ in iter_split(root, split, legend):
        if mask is None:
            unmasked += 1
            continue
        masked += 1
        counts = class_counts([mask], classes).astype(np.int64)
        holding += counts > 0
        pixels += counts
    return holding, pixels, masked, unmasked


def report(config):
    root, legend = config["data"], read_legend(config["data"])
    splits = ["train", "val", "test"] if config["show_test"] else ["train", "val"]
    for split in splits:
        if split == "val" and not (root / "val" / "images").is_dir():
            print(f"{root} val: none")
            continue
        holding, pixels, masked, unmasked = class_tiles(root, split, legend)
        known = pixels.sum()
        apart = f" ({unmasked} with clicks and no mask, not counted)" if unmasked else ""
        print(f"{root} {split}: {masked} tiles with a mask{apart}")
        for name, tiles, count in zip(legend.names, holding, pixels):
            share = 100 * count / known if known else 0.0
            print(f"  {name:<14} {tiles:>5} of {masked} tiles  {count:>11} pixels  {share:6.2f} %")


def main(argv=None):
    run_command(parser, report, argv)


if __name__ == "__main__":
    main()
