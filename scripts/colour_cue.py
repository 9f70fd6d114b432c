"""What a tile's colour alone says of its class: the per-band mean and std of each tile, a nearest
class centroid fitted on the training tiles (each tile's commonest class in its mask), scored on
the val tiles. These are the numbers `--standardise window` sets to 0 and 1 in every window, so on a
set whose tiles are mostly one class (GID-MTL's crops: about nine tenths one class) they are the cue
that option takes away.
    python -m scripts.colour_cue DATA [--show-test]
Prints the share of val tiles whose commonest class the centroid names, beside the share of the
commonest class among them (always guessing it)."""

from pathlib import Path

import numpy as np

from clicks import class_counts
from lib.annotations import read_legend
from lib.cli import OneLineParser, add_show_test, run_command
from lib.tiles import read_split

parser = OneLineParser(description=__doc__.split("\n")[0])
parser.add_argument("data", type=Path)
add_show_test(parser)


def colour_and_class(root, split, legend):
    """(tiles, 2 x bands) per-band mean and std, and (tiles,) each tile's commonest class."""
    paths, images, masks, _ = read_split(root, split, legend)
    colours, commonest = [], []
    for path, image, mask in zip(paths, images, masks):
        if mask is None:
            raise ValueError(f"{path}: no mask; every tile needs one here (masks/<stem>.png)")
        pixels = np.asarray(image, dtype=np.float64).reshape(len(image), -1)
        colours.append(np.concatenate([pixels.mean(1), pixels.std(1)]))
        commonest.append(class_counts([mask], len(legend.names)).argmax())
    return np.array(colours), np.array(commonest)


def report(config):
    root, legend = config["data"], read_legend(config["data"])
    colours, commonest = colour_and_class(root, "train", legend)
    mean, std = colours.mean(0), colours.std(0) + 1e-12
    present = np.unique(commonest)
    centroids = np.stack([((colours[commonest == c] - mean) / std).mean(0) for c in present])
    for split in ["val", "test"] if config["show_test"] else ["val"]:
        colours, commonest = colour_and_class(root, split, legend)
        distances = ((((colours - mean) / std)[:, None, :] - centroids[None]) ** 2).sum(-1)
        named = present[distances.argmin(1)]
        accuracy = float((named == commonest).mean())
        guess = float(np.bincount(commonest).max() / len(commonest))
        print(
            f"{root} {split}: {len(commonest)} tiles; the commonest class named from the "
            f"per-band mean and std by the nearest training centroid: {accuracy:.3f} "
            f"(always the commonest: {guess:.3f})"
        )


def main(argv=None):
    run_command(parser, report, argv)


if __name__ == "__main__":
    main()
