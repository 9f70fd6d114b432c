"""The labelling loop, simulated: an oracle plays the person who labels the proposed clicks.

    python -m scripts.active --data DIR --rounds 3 --clicks 1000 --seeds 0 1 2 --out OUT
    ... --strategies proposed --scratch-last     proposed clicks only; the last round also cold

For each seed, round 0 trains from scratch on a start of --start-per-class random clicks per class
in every training tile (drawn from the masks, as train.py draws them). Each later round adds
--clicks N clicks, labelled from the dense masks (the oracle: what a careful person would answer),
and trains again, as label.py's Retrain does: warm, from the previous round's weights with
train.py --init's short schedule (--from-scratch: every round from scratch, so that a strategy
inherits nothing but its clicks). The clicks of a round:
  proposed   the N pixels suggest.py proposes from the previous round's model
  random     N pixels drawn at random among the unclicked, known pixels of the training tiles
--scratch-last also trains the last round from scratch on the same clicks (round<R>-scratch/), the
check that warm rounds lose nothing. Every round's model is scored on the test split (dense
masks), its wall time kept beside its scores. Each training is its own
`python train.py --data WORK ...` process and each proposal a `python suggest.py` process, run
exactly as a user runs them; WORK is a copy of DIR's layout whose images and masks are links and
whose train/points/ holds that strategy's clicks. Writes OUT/<strategy>-seed<S>/round<R>/ (the
run folders, each with train.log) and OUT/curves.json after every round (two loops over other
seeds may share OUT: each adds its own), so a crash loses nothing and a rerun goes on where it
stopped (a training cut short, from its last saved epoch: train.py --resume); `python -m
reporting` renders the curves.
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from clicks import NO_CLICKS, Clicks
from data import IGNORE
from lib import annotations, tiles
from lib.cli import OneLineParser, atomic, check_output_folder, guard

STRATEGIES = ("proposed", "random")


def workspace(data, work):
    """A folder laid out like DIR whose images, masks, val and test are links to DIR's, and whose
    train/points/ is its own."""
    (work / "train" / "points").mkdir(parents=True, exist_ok=True)
    (work / "classes.txt").write_text((data / "classes.txt").read_text())
    for split, part in [("train", "images"), ("train", "masks"), ("val", None), ("test", None)]:
        target, link = (
            (data / split / part, work / split / part) if part else (data / split, work / split)
        )
        if target.exists() and not link.exists():
            os.symlink(target.resolve(), link)


def masks_and_clicks(work, with_clicks=True):
    """{stem: (dense mask, Clicks)} of the training tiles, with the workspace's current clicks."""
    legend = annotations.read_legend(work)
    paths, images, masks, click_files = tiles.read_split(work, "train", legend)
    return {
        p.stem: (
            m,
            annotations.read_clicks(f, i.shape[1:], legend.names)
            if f and with_clicks
            else NO_CLICKS,
        )
        for p, i, m, f in zip(paths, images, masks, click_files)
    }, legend.names


def label_proposals(work):
    """The oracle: each row `x,y,` that suggest.py left empty gets the mask's class at (x, y)."""
    masks, names = masks_and_clicks(work, with_clicks=False)
    labelled = 0
    for path in sorted((work / "train" / "points").glob("*.csv")):
        rows = list(csv.reader(path.read_text().splitlines()))
        mask = masks[path.stem][0]
        for row in rows[1:]:
            if row and not row[2].strip():
                row[2] = names[mask[int(row[1]), int(row[0])]]
                labelled += 1
        with atomic(path) as tmp, open(tmp, "w", newline="") as f:
            csv.writer(f).writerows(rows)
    return labelled


def add_random_clicks(work, count, rng):
    """`count` clicks at random among the unclicked pixels the masks know, labelled from them."""
    tiles_now, names = masks_and_clicks(work)
    free = []
    for stem, (mask, clicks) in tiles_now.items():
        open_pixels = np.asarray(mask) != IGNORE
        open_pixels[clicks.rows, clicks.cols] = False
        free.append(np.flatnonzero(open_pixels))
    offsets = np.cumsum([0] + [f.size for f in free])
    picks = np.sort(rng.choice(offsets[-1], size=min(count, offsets[-1]), replace=False))
    for i, (stem, (mask, clicks)) in enumerate(tiles_now.items()):
        mine = free[i][picks[(picks >= offsets[i]) & (picks < offsets[i + 1])] - offsets[i]]
        rows, cols = np.divmod(mine, mask.shape[1])
        added = Clicks(
            np.concatenate([clicks.rows, rows]),
            np.concatenate([clicks.cols, cols]),
            np.concatenate([clicks.classes, np.asarray(mask)[rows, cols].astype(np.int64)]),
        )
        annotations.write_clicks(work / "train" / "points" / f"{stem}.csv", added, names)
    return picks.size


def logged(command, log):
    """Run a command as its own process, its output and wall time in `log`. A train.py run that was
    interrupted (its resume.pt beside the log) goes on from its last saved epoch, its log appended
    to. The command's parts may be numbers and paths."""
    command = [str(part) for part in command]
    resume = command[0] == "train.py" and (log.parent / "resume.pt").is_file()
    command = command + ["--resume"] if resume else command
    start = time.time()
    with open(log, "a" if resume else "w") as f:
        f.write(
            f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n$ python "
            f"{' '.join(command)}\n"
        )
        f.flush()
        code = subprocess.call([sys.executable] + command, stdout=f, stderr=subprocess.STDOUT)
        f.write(
            f"\tElapsed (wall clock) time (h:mm:ss or m:ss): "
            f"{int((time.time() - start) // 60)}:{(time.time() - start) % 60:05.2f}\nexit {code}\n"
        )
    if code:  # its last line says why (a one-line error, or a traceback's last line)
        said = [line for line in log.read_text().splitlines()[:-2] if line.strip()]
        raise RuntimeError(
            f"{command[0]} failed (exit {code}): {said[-1].strip() if said else 'no output'} "
            f"(its whole output: {log})"
        )


def training_pixels(data):
    """The training tiles' pixel count: a round's clicks are its labeled fraction of it."""
    return sum(np.asarray(mask).size for mask, _ in masks_and_clicks(data, False)[0].values())


def train_round(work, run, seed, flags, pixels, init=None):
    """Train a round on the workspace's clicks (warm from `init`'s weights, if given) unless it
    has trained already; its clicks (of the training tiles' `pixels`), test scores and wall
    time."""
    if not (run / "metrics.json").exists():
        run.mkdir(parents=True, exist_ok=True)
        warm = ["--init", init] if init else []
        logged(
            ["train.py", "--data", work, "--seed", seed, *warm, *flags, "--out", run],
            run / "train.log",
        )
    metrics = json.loads((run / "metrics.json").read_text())
    return dict(
        # the count from the record, not from run/clicks/: that copy is not committed, and a loop
        # run on again in another checkout reads a finished round from its metrics.json alone
        clicks=round(metrics["labeled_fraction"] * pixels),
        miou=metrics["test"]["miou"],
        pixel_accuracy=metrics["test"]["pixel_accuracy"],
        per_class={k: v["iou"] for k, v in metrics["test"]["per_class"].items()},
        val_miou=metrics.get(
            "val_miou_tta", metrics["history"][metrics["best_epoch"] - 1]["val_miou"]
        ),
        wall_s=metrics["wall_time_s"],
        # of which scoring the test split: what the simulation measures with, not what a person
        # labelling their own tiles (no test masks) waits for
        test_scoring_s=sum(
            seconds
            for name, seconds in metrics.get("scoring_seconds", {}).items()
            if name.startswith("test")
        ),
        warm=bool(metrics["config"].get("init")),
    )


def restore(work, run):
    """The workspace's clicks as the run trained on them (also where a rerun resumes after it)."""
    for path in (work / "train" / "points").glob("*.csv"):
        path.unlink()
    for path in (run / "clicks").glob("*.csv"):
        (work / "train" / "points" / path.name).write_text(path.read_text())


def loop(args):
    data, out = Path(args.data), Path(args.out)
    config = dict(
        data=str(data),
        rounds=args.rounds,
        clicks=args.clicks,
        start_per_class=args.start_per_class,
        train_flags=args.train_flags,
        warm=not args.from_scratch,
        scratch_last=args.scratch_last,
    )
    flags = args.train_flags.split()
    pixels = training_pixels(data)
    curves = {}
    for seed in args.seeds:
        start = out / f"start-seed{seed}"
        if not (start / "metrics.json").exists():
            start.mkdir(parents=True, exist_ok=True)
            labels = ["--data", data, "--points-per-class", args.start_per_class, "--seed", seed]
            logged(["train.py", *labels, *flags, "--out", start], start / "train.log")
        first = train_round(data, start, seed, flags, pixels)
        for strategy in args.strategies:
            curves = rounds(args, config, strategy, seed, first, flags, pixels)
    return curves


def record(path, config, strategy, seed, points):
    """Put one seed's curve into curves.json as the file is now (another loop over other seeds
    may write it too), atomically; the curves."""
    curves = json.loads(path.read_text()) if path.exists() else {}
    curves["config"] = config
    curves.setdefault(strategy, {})[str(seed)] = points
    with atomic(path) as tmp:
        tmp.write_text(json.dumps(curves, indent=1))
    return curves


def rounds(args, config, strategy, seed, first, flags, pixels):
    """One strategy's rounds for one seed: each round's clicks added (proposed and labelled by the
    oracle, or random), then trained with train.py's `flags`, warm unless --from-scratch; its curve
    recorded after each."""
    data, out = Path(args.data), Path(args.out)
    work, previous = out / "work" / f"{strategy}-seed{seed}", out / f"start-seed{seed}"
    workspace(data, work)
    points = [first]
    for r in range(1, args.rounds + 1):
        run = out / f"{strategy}-seed{seed}" / f"round{r}"
        if not (run / "metrics.json").exists():
            run.mkdir(parents=True, exist_ok=True)
            restore(work, previous)
            if strategy == "proposed":
                asked = ["--clicks", args.clicks, "--out", run.parent / f"suggestions{r}"]
                logged(["suggest.py", previous, work, *asked], run.parent / f"suggest{r}.log")
                label_proposals(work)
            else:
                add_random_clicks(work, args.clicks, np.random.default_rng([seed, 2000 + r]))
        init = None if args.from_scratch else previous
        points.append(train_round(work, run, seed, flags, pixels, init))
        said = f"seed {seed} {strategy:8s} round {r}: {points[-1]['clicks']} clicks, test mIoU "
        said += f"{points[-1]['miou']:.4f} in {points[-1]['wall_s']:.0f}s"
        if args.scratch_last and r == args.rounds and not args.from_scratch:
            cold = run.parent / f"round{r}-scratch"
            restore(work, run)  # the very clicks the warm round trained on
            points[-1]["scratch"] = train_round(work, cold, seed, flags, pixels)
            said += f"; from scratch {points[-1]['scratch']['miou']:.4f} in "
            said += f"{points[-1]['scratch']['wall_s']:.0f}s"
        print(f"{said} (round 0: {first['miou']:.4f})", flush=True)
        curves = record(out / "curves.json", config, strategy, seed, points)
        previous = run
    return curves


def main(argv=None):
    parser = OneLineParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", required=True, help="a tile folder whose training tiles have dense masks"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clicks", type=int, required=True, help="clicks added per round")
    parser.add_argument(
        "--start-per-class", type=int, default=2, help="round 0: random clicks per class per tile"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES), help="whose clicks"
    )
    parser.add_argument(
        "--from-scratch",
        action="store_true",
        help="train every round from scratch (default: rounds 1 on warm, from the previous round)",
    )
    parser.add_argument(
        "--scratch-last",
        action="store_true",
        help="also train the last round from scratch on the same clicks (round<R>-scratch/)",
    )
    parser.add_argument(
        "--train-flags", default="", help='more train.py flags for every round, e.g. "--epochs 5"'
    )
    parser.add_argument("--out", required=True, help="results folder of the loop")
    args = parser.parse_args(argv)
    try:
        if min(args.rounds, args.clicks, args.start_per_class) < 1:
            raise ValueError(
                f"--rounds, --clicks and --start-per-class must be positive, got {args.rounds}, "
                f"{args.clicks} and {args.start_per_class}"
            )
        if not (Path(args.data) / "train" / "masks").is_dir():
            raise ValueError(
                f"{args.data}/train/masks: not found; the oracle labels clicks from the training "
                f"masks"
            )
        check_output_folder(args.out)
        loop(args)
    except (ValueError, OSError, RuntimeError) as error:
        parser.error(str(error))


if __name__ == "__main__":
    guard(main)
