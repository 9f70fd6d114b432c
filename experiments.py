"""Reproduce the report's experiments over several seeds, plus two baselines it did not run.

    python experiments.py all          everything below, then tables and figures
    python experiments.py density      Table 1: 50 / 200 / 500 / 1000 random points per image
    python experiments.py strategy     Table 2: random vs stratified, 5 / 10 / 20 points per class
    python experiments.py final        Table 3: 10 points per class, random, per-class scores
    python experiments.py baselines    dense (full-mask) upper bound; ImageNet vs random init
    python experiments.py regularised  Table 4: pCE vs pCE + CRF, 5/10/20 points/class, 200/image
    python experiments.py precision    Table 5: the final model trained in fp32 and in bf16
options: --seeds 3  --out results  --device auto  --precision auto
         --quick (a tiny smoke run, to results-quick/)

Each configuration is trained from scratch once per seed, by `python train.py` in a process of
its own (the same command a user runs, and the same numbers); the seed changes the scenes, the
clicks and the initial weights together. Every finished run is appended to <out>/runs.jsonl at
once, so an interrupted `all` resumes where it stopped. Then `python -m reporting <out>` renders the
tables (<out>/tables.md, <out>/README.md) and figures from those records: mean ± std over the
seeds; a difference is called "within noise" when it is smaller than twice its standard error
(paired by seed).
"""

import json
import subprocess
import sys
import time
from pathlib import Path

from lib.cli import OneLineParser, check_output_folder, guard
from lib.device import pick_device, pick_precision
from lib.settings import add_options, as_argv, run_name, settings
from reporting.paper import DENSITY_POINTS, FINAL, REGULARISED, STRATEGY_POINTS
from reporting.records import QUICK, append_record, key, load_records, same_as_done

SEEDS, OUT, QUICK_OUT = 3, "results", "results-quick"
HERE = Path(__file__).resolve().parent  # where train.py and reporting/ are


def planned(command, seeds):
    """The configurations a command needs, one per seed (train.py's defaults fill in the rest)."""
    runs = []
    for seed in range(seeds):
        if command in ("density", "all"):
            runs += [dict(points=p, seed=seed) for p in DENSITY_POINTS]
        if command in ("strategy", "all"):
            runs += [
                dict(points_per_class=k, strategy=s, seed=seed)
                for k in STRATEGY_POINTS
                for s in ("random", "stratified")
            ]
        if command in ("final", "all"):
            runs += [dict(FINAL, seed=seed)]
        if command in ("baselines", "all"):
            runs += [dict(dense=True, seed=seed), dict(FINAL, weights="none", seed=seed)]
        if command in ("regularised", "all"):
            runs += [dict(c, loss="pce+crf", seed=seed) for _, c in REGULARISED]
        if command in ("precision", "all"):
            runs += [dict(FINAL, precision=p, seed=seed) for p in ("fp32", "bf16")]
    unique = {}
    for run in runs:
        unique.setdefault(key(run), run)
    return list(unique.values())


def run_all(command, seeds, out, device, quick, precision="auto"):
    out.mkdir(parents=True, exist_ok=True)
    records_path = out / "runs.jsonl"
    records = load_records(records_path)
    extra = QUICK if quick else {}
    plan = [{"precision": precision, **c} for c in planned(command, seeds)]  # Table 5 sets its own
    todo = [c for c in plan if key({**c, **extra}) not in records]
    print(f"{command}: {len(plan)} runs planned, {len(todo)} still to train -> {out}", flush=True)
    started, done = time.time(), 0
    for i, config in enumerate(todo, 1):
        if same_as_done({**config, **extra}, records):
            print(
                f"[{i}/{len(todo)}] {describe(config)}: same computation as a finished run, reused",
                flush=True,
            )
            continue
        print(f"[{i}/{len(todo)}] {describe(config)} ...", flush=True)
        run_start = time.time()
        folder = out / "runs" / run_name(settings({**config, **extra}))
        metrics = train(dict(config, **extra, device=device, out=str(folder)))
        if metrics is None:
            sys.exit(
                f"experiments.py: error: the run {describe(config)} failed (its error is above); "
                f"the {done} runs finished before it are kept in {records_path}: run the same "
                f"command to resume"
            )
        record = dict(key=key({**config, **extra}), config=config, quick=quick, metrics=metrics)
        append_record(records_path, record)
        records[record["key"]] = record
        done += 1
        elapsed = time.time() - started
        eta = elapsed / done * (len(todo) - i)
        print(
            f"[{i}/{len(todo)}] done in {time.time() - run_start:.0f}s; elapsed {clock(elapsed)}, "
            f"ETA {clock(eta)}",
            flush=True,
        )
    subprocess.run([sys.executable, "-m", "reporting", str(out.resolve())], cwd=HERE, check=True)


def train(config):
    """`python train.py` with these settings, in a process of its own; its metrics, or None if it
    failed."""
    argv = [sys.executable, str(HERE / "train.py"), *as_argv(config)]
    if subprocess.run(argv).returncode:
        return None
    return json.loads((Path(config["out"]) / "metrics.json").read_text())


def describe(config):
    return " ".join(f"{k}={v}" for k, v in config.items())


def clock(seconds):
    return (
        f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
        if seconds >= 3600
        else f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    )


def main(argv=None):
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "command",
        choices=["all", "density", "strategy", "final", "baselines", "regularised", "precision"],
    )
    parser.add_argument("--seeds", type=int, default=SEEDS)
    parser.add_argument(
        "--out", help=f"results folder (default {OUT}, or {QUICK_OUT} with --quick)"
    )
    add_options(parser, names=("device", "precision"))
    parser.add_argument("--quick", action="store_true", help="tiny sizes and 1 epoch: a smoke test")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1, got {args.seeds}")
    try:
        check_output_folder(args.out or (QUICK_OUT if args.quick else OUT))
        print(
            f"precision: {' '.join(pick_precision(args.precision, pick_device(args.device)))}",
            flush=True,
        )
    except ValueError as error:
        parser.error(str(error))
    run_all(
        args.command,
        args.seeds,
        Path(args.out or (QUICK_OUT if args.quick else OUT)),
        args.device,
        args.quick,
        args.precision,
    )


if __name__ == "__main__":
    guard(
        main,
        hint="the runs that finished are in <out>/runs.jsonl: the same command goes on from there",
    )
