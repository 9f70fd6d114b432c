"""The run records: one JSON line per finished run in <out>/runs.jsonl, found again by its key;
and the helpers that read every record a results folder holds (metrics.json, logs) for page.py.

experiments.py appends a record per finished run (its settings and its metrics.json), so an
interrupted `experiments.py all` resumes where it stopped; page.py renders the tables and
figures from the records. A run's `key` is its training settings, with train.py's defaults
(lib/recipe.py) filled in.
"""

import argparse
import json
import math
import os
import re
import sys
from pathlib import Path

import numpy as np

from lib.settings import DEFAULTS, FLEXIBLE, add_options, as_flags, settings

# --quick: a smoke run
QUICK = dict(train_size=8, val_size=4, test_size=4, image_size=64, epochs=1, batch_size=4)


def key(config):
    """What identifies a run: its training settings, not where it writes or which device it used."""
    full = {**DEFAULTS, **config}
    unused = ("out", "device") + (
        () if full["loss"] == "pce+crf" else ("crf_weight", "crf_sigma_xy", "crf_sigma_band")
    )
    return json.dumps({k: v for k, v in sorted(full.items()) if k not in unused})


def load_records(path):
    """Finished runs by key. A line cut short by a crash is skipped, not fatal."""
    records = {}
    if path.exists():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            try:
                record = json.loads(line)
                # a setting added since the run was recorded takes its default, which by convention
                # is the old behaviour; a default whose value changed is still told apart
                records[key({**DEFAULTS, **json.loads(record["key"])})] = record
            except (json.JSONDecodeError, KeyError, TypeError):
                print(
                    f"{path}:{number}: skipping an unreadable record (interrupted write?)",
                    file=sys.stderr,
                )
    return records


def append_record(path, record):
    with open(path, "a+b") as f:
        f.seek(0, os.SEEK_END)
        if f.tell():  # finish a line a crash left cut short
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")
        f.write((json.dumps(record) + "\n").encode())
        f.flush()
        os.fsync(f.fileno())


# a setting asked for explicitly -> (what the run records, the value recorded when it got just that)
RESOLVED = {
    "weights": ("encoder_init", {"none": "random"}),
    "precision": ("precision", {"fp32": "fp32", "bf16": "bf16"}),
}


def same_as_done(config, records):
    """A run that asks for a setting explicitly needs no training when the run with that setting's
    default already got exactly it (ImageNet weights asked, unreachable, random init used; precision
    auto, bf16 chosen): that run already is it, number for number."""
    for setting, (recorded, got) in RESOLVED.items():
        if config.get(setting) in got:
            twin = records.get(key({**config, setting: DEFAULTS[setting]}))
            if twin and twin["metrics"].get(recorded) == got[config[setting]]:
                return twin
    return None


# Reading a results folder: runs grouped over seeds, and mean ± std and paired differences of them


def plan(folder):
    """What a results folder's sections compare and aim at (<folder>/plan.json): the run folders
    of the tile recipe's ablation and of the extra-target runs, the forest's, and the targets.
    It lives with the records it describes; a folder without one renders no such section."""
    path = Path(folder) / "plan.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def dig(metrics, path):
    """metrics[path[0]][path[1]]..."""
    for step in path:
        metrics = metrics[step]
    return metrics


def differences(a, b):
    """a - b on the seeds both have ({seed: value} each)."""
    return [a[s] - b[s] for s in sorted(a) if s in b]


def mean_std(values):
    values = list(values.values()) if isinstance(values, dict) else values
    if not values:
        return "not run yet"
    defined = [v for v in values if v is not None]  # None: a ratio with nothing to count
    if not defined:
        return "undefined"
    note = f" ({len(defined)} of {len(values)} seeds defined)" if len(defined) < len(values) else ""
    if len(defined) == 1:
        return f"{defined[0]:.4f} ({note[2:-1] or '1 seed'})"
    return f"{np.mean(defined):.4f} ± {np.std(defined, ddof=1):.4f}{note}"


def paired(a, b):
    """a - b on the seeds both have ({seed: value} each): 'mean ± std (verdict)'."""
    d = differences(a, b)
    if len(d) < 2:
        return f"{d[0]:+.4f} (1 seed: noise unknown)" if d else "not run yet"
    verdict = "beyond noise" if beyond_noise(d) else "within noise"
    return f"{np.mean(d):+.4f} ± {np.std(d, ddof=1):.4f} ({verdict})"


def beyond_noise(d):
    """Paired differences whose mean is more than two standard errors from 0 (2 seeds or more)."""
    return len(d) > 1 and abs(np.mean(d)) > 2 * np.std(d, ddof=1) / math.sqrt(len(d))


def run_groups(folder):
    """{name: [metrics, one per seed]} of every run with a metrics.json outside the experiments'
    runs/, grouped by folder name without its seed."""
    groups = {}
    for path in sorted(folder.glob("**/metrics.json")):
        if path.relative_to(folder).parts[0] not in ("runs", "active"):
            name = re.sub(r"[-_]seed-?\d+$", "", str(path.parent.relative_to(folder)))
            groups.setdefault(name, []).append(json.loads(path.read_text()))
    return groups


def over_seeds(runs, *path):
    """{seed: metrics[path[0]][path[1]]...} over one group's runs."""
    return {run["config"]["seed"]: dig(run, path) for run in runs}


def method(run):
    """What a run trained: the pixel random forest, or the U-Net, its loss and, where it is not the
    report's, its recipe."""
    if "method" in run:
        return run["method"]
    c = {**DEFAULTS, **run["config"]}
    recipe = (
        [c["augment"]] * (c["augment"] != DEFAULTS["augment"])
        + [f"{c['epochs']} epochs"] * (c["epochs"] != DEFAULTS["epochs"])
        + ["TTA"] * c["tta"]
    )
    chosen = " if val chose it" * c["zoom_on_val"]
    recipe += [f"test tiles also shrunk {c['tta_zoom_out']}×{chosen}"] * (c["tta_zoom_out"] > 1)
    recipe += [f"crops also {c['train_zoom_out']}× larger, shrunk"] * (c["train_zoom_out"] > 1)
    recipe += [f"image size {c['image_size']}"] * (c["image_size"] != DEFAULTS["image_size"])
    estimate = f" ({c['prior_estimate']} shares)" * (c["prior_estimate"] != "em")
    recipe += [f"prior shift {c['prior_shift']:g}{estimate}"] * bool(c["prior_shift"])
    recipe += ["image skip"] * c["image_skip"]
    recipe += ["each window standardised"] * (c["standardise"] == "window")
    recipe += [f"{c['paste']} boxes pasted"] * bool(c["paste"])
    recipe += [f"photometric ±{c['photometric']:g}"] * bool(c["photometric"])
    recipe += [f"extra targets ×{c['extra_weight']:g}"] * bool(c["extra_targets"])
    recipe += ["class-balanced"] * bool(c["class_balanced"])
    recipe += [f"EMA {c['ema_decay']:g}"] * bool(c["ema"])
    recipe += [f"consistency ×{c['consistency']:g}"] * bool(c["consistency"])
    recipe += [f"≤ {c['sure_per_class']} sure a class"] * bool(c["sure_per_class"])
    recipe += ["region growing"] * bool(c["grow"])
    recipe += [f"the last {c['average_last']} epochs' weights averaged"] * bool(c["average_last"])
    recipe += ["started from another run's weights"] * bool(c["init"])
    recipe += [f"the pixel forest fused in ×{c['forest_weight']:g}"] * bool(c["forest_weight"])
    recipe += [f"tile prior {c['tile_prior']:g} if val chose it"] * bool(c["tile_prior"])
    return (
        "U-Net, "
        + c["loss"]
        + (
            f" (λ {c['crf_weight']:g}, σ_xy {c['crf_sigma_xy']:g}, σ_band {c['crf_sigma_band']:g})"
            if c["loss"] == "pce+crf"
            else ""
        )
        + (f"; {', '.join(recipe)}" if recipe else "")
    )


# scripts that moved into scripts/ since their logs were written: their commands as typed today
MOVED = {
    "python active.py ": "python scripts/active.py ",
    "python bench.py": "python scripts/bench.py",
}


def logged_command(line):
    """The command of a log's '$ ' line, without the timing wrapper and a trailing comment, with
    a script's path as it is today."""
    command = line[2:].replace("/usr/bin/time -v ", "").split("   #")[0]
    for old, new in MOVED.items():
        if command.startswith(old):
            command = new + command[len(old) :]
    return command


def header(log):
    """(log, its first line without '# ', the first command it ran: as_run_today when the log's
    folder holds its run's metrics.json)."""
    text = log.read_text().splitlines()
    command = next((logged_command(line) for line in text if line.startswith("$ ")), "")
    return log, text[0].lstrip("# ").strip(), as_run_today(command, run_config(log))


def run_config(log):
    """The config of the run a log's folder holds ({} if none)."""
    metrics = log.parent / "metrics.json"
    return json.loads(metrics.read_text()).get("config", {}) if metrics.is_file() else {}


def as_run_today(command, config):
    """A logged train.py command as it must read today to repeat its run (whose config is
    `config`): a --data or --init default that has changed since it ran (settings.FLEXIBLE) added
    as the flag the run had, in turn, so that a flag that settles the next (--prior-shift 0: no
    shares to pick) leaves it out. Other commands, and those that need nothing, come back as they
    are."""
    words = command.split()
    if "train.py" not in words or not config.get("data"):
        return command
    parser = add_options(argparse.ArgumentParser(add_help=False))
    ran = {**DEFAULTS, **config}
    for key in FLEXIBLE:
        given, _ = parser.parse_known_args(words[words.index("train.py") + 1 :])
        if settings(vars(given))[key] != ran[key]:
            words += as_flags(key, ran[key])
    return " ".join(words)
