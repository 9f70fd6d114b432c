"""The run records: one JSON line per finished run in <out>/runs.jsonl, found again by its key.

experiments.py appends a record per finished run (its settings and its metrics.json), so an
interrupted `experiments.py all` resumes where it stopped; report.py renders the tables and
figures from the records. A run's `key` is its training settings, with train.py's defaults
(recipe.py) filled in.
"""
import json
import os
import sys

from recipe import DEFAULTS

QUICK = dict(train_size=8, val_size=4, test_size=4, image_size=64, epochs=1, batch_size=4)   # --quick: a smoke run


def key(config):
    """What identifies a run: its training settings, not where it writes or which device it used."""
    full = {**DEFAULTS, **config}
    unused = ("out", "device") + (() if full["loss"] == "pce+crf" else ("crf_weight", "crf_sigma_xy", "crf_sigma_band"))
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
                print(f"{path}:{number}: skipping an unreadable record (interrupted write?)", file=sys.stderr)
    return records


def append_record(path, record):
    with open(path, "a+b") as f:
        f.seek(0, os.SEEK_END)
        if f.tell():                                   # finish a line a crash left cut short
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")
        f.write((json.dumps(record) + "\n").encode())
        f.flush()
        os.fsync(f.fileno())


# a setting asked for explicitly -> (what the run records, the value recorded when it got just that)
RESOLVED = {"weights": ("encoder_init", {"none": "random"}), "precision": ("precision", {"fp32": "fp32", "bf16": "bf16"})}


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
