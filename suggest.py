"""Where to click next: a trained model proposes the pixels whose labels should teach it most.

    python suggest.py RUN_DIR DIR --clicks 200     propose 200 new clicks over DIR's training tiles
    (label them: fill in the empty class of each new row x,y, in DIR/train/points/<stem>.csv)
    python train.py --data DIR --out RUN_DIR2      train again, on the old clicks and the new

A proposal is a pixel where the model of RUN_DIR (its model.pt) is least sure: the smallest margin
between its two most probable classes. Proposals are spread out: at least --spacing px apart (in
rows and in columns) from each other and from every click, never on a pixel the mask calls
unknown, taken in turn from each class the model predicts there, so that a rare class is asked
about as often as a common one, and at most twice a tile's even share per tile.

For every training tile, DIR/train/points/<stem>.csv is written with the tile's current clicks
(the folder's own CSV, or else those the run trained on, RUN_DIR/clicks/<stem>.csv) followed by
its proposals (least sure first), the class left empty; train.py stops with the file and row
while one is empty (label them in label.py's page, or in the file). A preview of each tile that
got proposals (the image with the proposals ringed, the prediction beside it) goes to --out,
default RUN_DIR/suggestions/. The same run and folder give the same
proposals. The cost is one pass of inference over the training tiles, one tile at a time.

Over georeferenced GeoTIFF tiles the proposals also go to OUT/proposals.gpkg, a point layer in
the tiles' CRS with an empty `class` (and the model's guess beside it) for a person who labels
in a GIS; filled in, it trains as one more layer: train.py --points-file clicks.gpkg
OUT/proposals.gpkg. A run trained from point layers takes its own clicks as the current ones.
"""

import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from clicks import NO_CLICKS
from data import IGNORE
from lib import annotations, rasters, tiles
from lib.checkpoint import load_checkpoint
from lib.cli import OneLineParser, atomic, check_output_folder, guard
from lib.device import pick_device, pick_precision
from lib.evaluation import predict_tile
from lib.proposals import preview, write_layer
from lib.settings import add_options


def margin_and_class(logits, rows=256):
    """Per pixel: the top probability minus the second (0: a coin toss between two classes), and
    the predicted class (uint8); a band of rows at a time, so that a big tile's softmax never
    needs a second copy of its logits."""
    margin, predicted = np.empty(logits.shape[1:], np.float32), np.empty(logits.shape[1:], np.uint8)
    for r in range(0, logits.shape[1], rows):
        band = logits[:, r : r + rows]
        top2 = band.softmax(0).topk(2, dim=0).values
        margin[r : r + rows], predicted[r : r + rows] = (
            (top2[0] - top2[1]).numpy(),
            band.argmax(0).numpy(),
        )
    return margin, predicted


def around(y, x, spacing):
    """The pixels closer than `spacing` to (y, x) in rows and in columns, as an index."""
    return np.s_[max(0, y - spacing + 1) : y + spacing, max(0, x - spacing + 1) : x + spacing]


def candidates(margin, blocked, spacing, limit):
    """Up to `limit` (y, x) of one tile, least sure first, none in `blocked` and each at least
    `spacing` px from those before it (|dy| >= spacing or |dx| >= spacing). The pixels are visited
    in order of margin (ties row by row), a slice of that order at a time: np.partition finds where
    the k least sure end, and only those are sorted, k doubling while too few are taken. The
    whole tile's order (an argsort: 128 MB of indices for a 4000 x 4000 tile) is never held."""
    values = np.where(blocked, np.inf, margin).ravel()  # blocked pixels come last, and never
    free, taken, below, k = ~blocked, [], -np.inf, 4 * limit
    while len(taken) < limit:
        upper = np.inf if k >= values.size else np.partition(values, k - 1)[k - 1]
        order = np.flatnonzero((values > below) & (values <= upper) & (values < np.inf))
        for flat in order[np.argsort(values[order], kind="stable")]:
            y, x = divmod(int(flat), margin.shape[1])
            if free[y, x]:
                taken.append((y, x))
                free[around(y, x, spacing)] = False
                if len(taken) == limit:
                    break
        if upper == np.inf:
            break  # every open pixel was visited
        below, k = upper, 2 * k
    return taken


def choose(pool, count, per_tile):
    """From pool [(margin, tile, y, x, predicted class)], `count` proposals: the classes in turn,
    least sure first within each, at most `per_tile` per tile."""
    by_class = {}
    for entry in sorted(pool):
        by_class.setdefault(entry[4], []).append(entry)
    queues, chosen, per = [iter(by_class[k]) for k in sorted(by_class)], [], {}
    while queues and len(chosen) < count:
        for queue in list(queues):
            entry = next((e for e in queue if per.get(e[1], 0) < per_tile), None)
            if entry is None:
                queues.remove(queue)
                continue
            chosen.append(entry)
            per[entry[1]] = per.get(entry[1], 0) + 1
            if len(chosen) == count:
                break
    return chosen


def click_file(run, root, stem, from_layer):
    """Where the tile's current clicks are: the folder's CSV (labelled since), else the ones the run
    trained on; None if neither. A run trained from a point layer read no CSV: its own clicks (the
    layer's) are the current ones."""
    folder_csv = [] if from_layer else [root / "train" / "points" / f"{stem}.csv"]
    return next((p for p in folder_csv + [run / "clicks" / f"{stem}.csv"] if p.is_file()), None)


def read_clicks(path, image, classes):
    return annotations.read_clicks(path, image.shape[1:], classes) if path else NO_CLICKS


def suggest(run, root, count, spacing, out, device, precision):
    run, root = Path(run), Path(root)
    model, checkpoint, legend, sources = open_for_proposals(run, root)
    device = pick_device(device)
    precision, _ = pick_precision(precision, device)
    # as predict.py: the layout fast convolutions want
    model.to(device, memory_format=torch.channels_last)
    out.mkdir(parents=True, exist_ok=True)
    started, said = time.time(), time.time()
    # proposals a tile may get at most
    per_tile = max(1, math.ceil(2 * count / max(1, len(sources))))
    # class maps wait here for the previews: one tile in memory
    with tempfile.TemporaryDirectory(dir=out) as scratch:
        scratch = Path(scratch)
        pool, paths, clicks = [], [], []
        for i, (path, image, mask, _) in enumerate(tiles.iter_split(root, "train", legend)):
            tile_clicks = read_clicks(sources[path.stem], image, legend.names)
            margin, class_map = margin_and_class(
                predict_tile(model, image, checkpoint["image_size"], precision=precision)
            )
            pool += tile_candidates(
                i, margin, class_map, mask, tile_clicks, spacing, count, per_tile
            )
            np.save(scratch / f"{i}.npy", class_map)
            paths.append(path)
            clicks.append(tile_clicks)
            # else they live on while the next tile is read and predicted
            del (image, mask, margin, class_map)
            if time.time() - said > 30:
                print(f"  {i + 1} training tiles, {time.time() - started:.0f}s", flush=True)
                said = time.time()
        chosen = choose(pool, count, per_tile)
        proposals = [
            [(y, x) for _, t, y, x, _ in sorted(chosen) if t == i]  # least sure first
            for i in range(len(paths))
        ]
        write_proposals(root, out, scratch, paths, clicks, proposals, legend)
    layer = write_layer(out, paths, chosen, legend.names)
    per_class = ", ".join(
        f"{legend.names[k]} {sum(e[4] == k for e in chosen)}"
        for k in sorted({e[4] for e in chosen})
    )
    fewer = (
        f" (fewer than the {count} asked: no more unlabelled pixels lie {spacing} px from every "
        f"click and proposal, at most {per_tile} a tile)"
        if len(chosen) < count
        else ""
    )
    print(
        f"{len(chosen)} proposals{fewer} on {sum(map(bool, proposals))} of {len(paths)} "
        f"training tiles (by predicted class: {per_class}), at least {spacing} px apart; label "
        f"them in {root / 'train' / 'points'}/{layer}, previews in {out}/; "
        f"{time.time() - started:.1f}s",
        flush=True,
    )
    return chosen


def open_for_proposals(run, root):
    """(model, checkpoint, legend, each training tile's click file) of a finished run trained on
    clicks of the folder `root`, or ValueError in one line."""
    model, checkpoint = load_checkpoint(run / "model.pt")
    legend = annotations.read_legend(root)
    if list(legend.names) != list(checkpoint["classes"]):
        raise ValueError(
            f"{root}/classes.txt lists {list(legend.names)}, the run was trained on "
            f"{checkpoint['classes']}"
        )
    if not (run / "metrics.json").is_file():  # train.py writes it last: the run is whole
        raise ValueError(
            f"{run}: no metrics.json: not a finished train.py run (an interrupted one?); train "
            f"it again"
        )
    config = json.loads((run / "metrics.json").read_text())["config"]
    training_stems = tiles.stems(root / "train" / "images", rasters.IMAGE_SUFFIXES)
    sources = {
        stem: click_file(run, root, stem, config.get("points_file")) for stem in training_stems
    }
    if training_stems and not any(sources.values()):
        raise ValueError(
            f"{run}/clicks/ and {root}/train/points/ hold no clicks: suggest.py proposes more "
            f"clicks for a run trained on clicks (train.py --data {root} --points-per-class K)"
        )
    return model, checkpoint, legend, sources


def tile_candidates(index, margin, class_map, mask, tile_clicks, spacing, count, per_tile):
    """A tile's candidates (margin, tile index, y, x, class): of each predicted class its least
    sure `per_tile` pixels, away from the clicks and from pixels the mask ignores."""
    blocked = np.zeros(margin.shape, bool) if mask is None else np.asarray(mask) == IGNORE
    for y, x in zip(tile_clicks.rows.tolist(), tile_clicks.cols.tolist()):
        blocked[around(y, x, spacing)] = True
    # choose() takes at most per_tile from a tile: of each class, its least sure per_tile
    kept, found = {}, []
    for y, x in candidates(margin, blocked, spacing, count):
        k = int(class_map[y, x])
        if kept.setdefault(k, 0) < per_tile:
            kept[k] += 1
            found.append((float(margin[y, x]), index, y, x, k))
    return found


def write_proposals(root, out, scratch, paths, clicks, proposals, legend):
    """Each tile's clicks and proposals into root/train/points/<stem>.csv (every click kept), and
    a preview of each tile that has proposals into out/."""
    (root / "train" / "points").mkdir(exist_ok=True)
    for i, (path, tile_clicks, tile_proposals) in enumerate(zip(paths, clicks, proposals)):
        if tile_clicks.rows.size or tile_proposals:  # every click kept, none lost
            annotations.write_clicks(
                root / "train" / "points" / f"{path.stem}.csv",
                tile_clicks,
                legend.names,
                tile_proposals,
            )
        if tile_proposals:
            picture = preview(
                rasters.read_image(path),
                np.load(scratch / f"{i}.npy"),
                legend.colours,
                tile_clicks,
                tile_proposals,
            )
            with atomic(out / f"{path.stem}.png") as tmp:
                picture.save(tmp, format="PNG")


def main(argv=None):
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a train.py --data run folder (model.pt, clicks/)")
    parser.add_argument("data", help="the tile folder it was trained on")
    parser.add_argument("--clicks", type=int, required=True, help="how many new clicks to propose")
    parser.add_argument(
        "--spacing", type=int, default=6, help="minimum distance between clicks, px (default 6)"
    )
    parser.add_argument("--out", help="folder for the previews (default RUN/suggestions)")
    add_options(parser, names=("device", "precision"))
    args = parser.parse_args(argv)
    try:
        if args.clicks < 1 or args.spacing < 1:
            raise ValueError(
                f"--clicks and --spacing must be positive integers, got {args.clicks} and "
                f"{args.spacing}"
            )
        out = Path(args.out or Path(args.run) / "suggestions")
        check_output_folder(out)
        check_output_folder(Path(args.data) / "train" / "points", "the clicks folder")
        suggest(args.run, args.data, args.clicks, args.spacing, out, args.device, args.precision)
    except (ValueError, OSError) as error:
        parser.error(str(error))


if __name__ == "__main__":
    guard(main)
