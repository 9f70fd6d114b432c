"""The results page's sections on single runs and logs: every train.py and baseline.py run that
left a metrics.json (grouped over seeds), the one-process-or-several check of torchrun, and the
wall time and peak memory of every command a log timed, with the benchmark's output.

page.py renders them into <folder>/README.md; cells are mean ± std over seeds (records.py).
"""

import json

import numpy as np

from lib.settings import DEFAULTS, label_mode
from reporting.records import (
    as_run_today,
    header,
    logged_command,
    mean_std,
    method,
    over_seeds,
    run_config,
    run_groups,
)


def processes(folder):
    """scripts/distributed_check.sh: the same run as one process and as N under torchrun."""
    runs = [
        (path.parent, json.loads(path.read_text()))
        for path in sorted(folder.glob("distributed/*/metrics.json"))
    ]
    if not runs:
        return []
    lines = [
        "## One process or several (torchrun)",
        "",
        "The runs of `scripts/distributed_check.sh` "
        "([docs/distributed.md](../docs/distributed.md)), the same flags as one process and as "
        "several:",
        "",
        "| run | command | processes | batch per process | seconds per epoch (training + val) | "
        "crops per second | best val mIoU | test mIoU | pixel accuracy | machine, threads per "
        "process; date |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for path, run in runs:
        _, when, command = header(path / "train.log")
        seconds = np.mean([h["seconds"] for h in run["history"]])
        lines.append(
            f"| {path.name} | `{command}` | {run.get('world_size', 1)} | "
            f"{run.get('batch_per_process')} | {seconds:.1f} | "
            f"{run['crops_per_epoch'] / seconds:.1f} | "
            f"{max(h['val_miou'] for h in run['history']):.4f} | {run['test']['miou']:.4f} | "
            f"{run['test']['pixel_accuracy']:.4f} | {run['machine']}, torch {run['torch']}; "
            f"{when.split(',')[0]} |"
        )
    return lines + [""]


def single_runs(folder):
    """Every run with a metrics.json outside the experiments' runs/: one row per setting, over
    seeds."""
    groups = run_groups(folder)
    if not groups:
        return []
    lines = [
        "## Single runs",
        "",
        "Every `python train.py` and `python baseline.py` run kept here, grouped over seeds (the "
        "folder's name",
        "without `-seedN`). Best val mIoU: the network's best epoch's, whose weights are tested; "
        "the pixel",
        "random forest (`baseline.py`) has no epochs. The forest and the network get the same "
        "clicks.",
        "",
        "| run | data | labels | method | seeds | best val mIoU | test mIoU | pixel accuracy | "
        "always the commonest class | wall per run | machine, precision, init |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, runs in groups.items():
        # a setting added since the run: its default, the old behaviour
        c = {**DEFAULTS, **runs[0]["config"]}
        best_val = {
            run["config"]["seed"]: run["val_miou"]
            if "val_miou" in run
            else max(
                (h["val_miou"] for h in run["history"] if h["val_miou"] is not None), default=None
            )
            for run in runs
        }
        wall = np.mean([run["wall_time_s"] for run in runs])
        how = (
            f"{runs[0]['precision']}, {runs[0]['encoder_init']}"
            if "precision" in runs[0]
            else f"scikit-learn {runs[0]['sklearn']}"
        )
        lines.append(
            f"| {name} | {c['data'] or 'synthetic'} | {label_mode(c)[1]} | {method(runs[0])} | "
            f"{', '.join(str(s) for s in sorted(best_val))} | {mean_std(best_val)} | "
            f"{mean_std(over_seeds(runs, 'test', 'miou'))} | "
            f"{mean_std(over_seeds(runs, 'test', 'pixel_accuracy'))} | "
            f"{mean_std(over_seeds(runs, 'test', 'commonest_class_accuracy'))} | {wall:.0f} s | "
            f"{runs[0]['machine']}, {how} |"
        )
    return lines + per_class_tables(groups)


def per_class_tables(groups):
    """The single runs' per-class test IoU, a table per data set."""
    lines = ["", "Per-class test IoU of the same runs, by data set:", ""]
    for data in sorted({runs[0]["config"]["data"] or "" for runs in groups.values()}):
        named = {n: runs for n, runs in groups.items() if (runs[0]["config"]["data"] or "") == data}
        classes = next(iter(named.values()))[0]["classes"]
        lines += [
            f"| {data or 'synthetic'} | " + " | ".join(classes) + " |",
            "|---" * (len(classes) + 1) + "|",
        ]
        for name, runs in named.items():
            lines.append(
                f"| {name} | "
                + " | ".join(
                    mean_std(over_seeds(runs, "test", "per_class", k, "iou")) for k in classes
                )
                + " |"
            )
        lines.append("")
    return lines


def logged_commands(folder):
    """Wall time and peak memory of every command a log timed (`/usr/bin/time -v`), and the
    benchmark's output."""
    rows, lines = [], []
    for log in sorted(folder.glob("**/*.log")):
        text, config = log.read_text().splitlines(), run_config(log)
        command, wall = None, None
        for line in text:
            if line.startswith("$ "):
                command = as_run_today(logged_command(line), config)
            elif "Elapsed (wall clock) time" in line:
                wall = line.split("): ")[-1]
            elif "Maximum resident set size" in line and command:
                rows.append(
                    f"| `{command}` | {wall} | {int(line.split(':')[-1]) / 1e6:.2f} GB | "
                    f"{text[0].lstrip('# ').strip()} | "
                    f"[{log.relative_to(folder)}]({log.relative_to(folder)}) |"
                )
        if log.name == "bench.log":
            _, when, command = header(log)
            table = [line for line in text[2:] if not line.startswith(("\t", "exit"))]
            lines += ["## Speed", "", f"`{command}` — {when}:", "", "```"] + table + ["```", ""]
    if rows:
        lines += (
            [
                "## Wall time and peak memory of the logged commands",
                "",
                "A `train.py --data` command beside its run's record carries the flags the run had "
                "where today's `--data` defaults differ, so that it repeats the run.",
                "",
                "| command | wall | peak memory (max RSS) | date, machine | log |",
                "|---|---|---|---|---|",
            ]
            + rows
            + [""]
        )
    return lines
