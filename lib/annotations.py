"""What a person writes beside the tiles: classes.txt (the legend: class names, the colours or
values that code them in the masks, and the codes meaning "unknown") and the clicks CSVs
(DIR/train/points/<stem>.csv: x,y,class). lib/tiles.py reads a whole folder with them; suggest.py
and label.py write clicks back; predict.py draws previews in the legend's colours.
"""

import csv
import os
import re
import shutil
from pathlib import Path
from typing import NamedTuple

import numpy as np

from clicks import Clicks
from data import COLOURS, IGNORE
from lib.cli import atomic

PALETTE = list(COLOURS) + [
    "#9467bd",
    "#ff7f0e",
    "#17becf",
    "#e377c2",
    "#bcbd22",
    "#8c564b",
    "#000000",
]
HEX_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")


class Legend(NamedTuple):
    """classes.txt: class names in index order, and how the masks code them. codes[k] is class k's
    colour ('#RRGGBB') or mask value (an integer); codes is None when masks hold the class indices
    themselves. `ignored` lists the codes that mean "unknown"."""

    names: tuple
    codes: list = None
    ignored: list = ()

    @property
    def colours(self):
        return self.codes if self.codes and isinstance(self.codes[0], str) else None


def read_legend(root):
    """Parse classes.txt: one class per line, optionally ending in its mask colour (#RRGGBB) or
    value (an integer; names may contain spaces), and `ignore <code>` lines."""
    path = Path(root) / "classes.txt"
    if not path.is_file():
        raise ValueError(
            f"{path}: missing (one class name per line, optionally followed by its mask colour "
            f"#RRGGBB or value)"
        )
    names, codes, ignored = [], [], []
    for number, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        last = line.split()[-1]  # a code only after a name: "10" alone is a name
        code = (
            None
            if len(line.split()) == 1
            else last.upper()
            if HEX_COLOUR.fullmatch(last)
            else int(last)
            if re.fullmatch(r"-?\d+", last)
            else None
        )
        name = line.strip() if code is None else line.strip()[: -len(last)].strip()
        if name.lower() == "ignore":
            if code is None:
                raise ValueError(
                    f"{path}:{number}: an ignore line needs the colour or value it stands for, "
                    f"e.g. 'ignore #9B9B9B' or 'ignore 0'"
                )
            ignored.append(code)
        else:
            names.append(name)
            codes.append(code)
    if len(names) < 2:
        raise ValueError(f"{path}: needs at least two class names, found {names}")
    if len(set(names)) < len(names):
        raise ValueError(f"{path}: class names must differ, got {names}")
    kinds = {type(c) for c in codes + ignored}
    if len(kinds) > 1:
        bare = [n for n, c in zip(names, codes) if c is None]
        raise ValueError(
            f"{path}: give every class a mask colour (or every class a value) or none; "
            + (f"{bare} have none" if bare else f"colours and values are mixed: {codes + ignored}")
        )
    coded = codes[0] is not None  # then every class has a code, of one kind
    if coded and len(set(codes + ignored)) < len(codes + ignored):
        raise ValueError(
            f"{path}: each colour or value may stand for one class only, got {codes + ignored}"
        )
    return Legend(tuple(names), codes if coded else None, ignored)


def read_text(path):
    """A text file a person wrote (classes.txt, a clicks CSV): UTF-8 with or without the BOM a
    spreadsheet's "CSV UTF-8" starts with, or UTF-16 with its BOM. Anything else is one line
    naming the file and the line where decoding failed."""
    raw = Path(path).read_bytes()
    encoding = "utf-16" if raw.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig"
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ValueError(
            f"{path}:{line}: not {encoding.replace('-sig', '')} text (byte "
            f"{raw[error.start]:#04x}); save it as UTF-8"
        ) from None


def csv_rows(path):
    """The rows of a clicks CSV, its header x,y,class checked and left out."""
    rows = list(csv.reader(read_text(path).splitlines()))
    if not rows or [c.strip().lower() for c in rows[0]] != ["x", "y", "class"]:
        raise ValueError(f"{path}: the first line must be the header x,y,class")
    return rows[1:]


def read_clicks(path, shape, classes):
    """Clicks from a CSV with header x,y,class (class = name or index)."""
    ys, xs, labels = [], [], []
    for number, row in enumerate(csv_rows(path), 2):
        if not row:
            continue
        try:
            x, y, name = int(row[0]), int(row[1]), row[2].strip()
        except (ValueError, IndexError):
            raise ValueError(
                f"{path}:{number}: expected x,y,class with integer pixel coordinates, got {row}"
            ) from None
        if not (0 <= x < shape[1] and 0 <= y < shape[0]):
            raise ValueError(
                f"{path}:{number}: click ({x}, {y}) is outside the {shape[1]}x{shape[0]} image"
            )
        if not name:
            raise ValueError(
                f"{path}:{number}: the click at ({x}, {y}) has no class yet; label it with a class "
                f"of classes.txt or delete the row"
            )
        index = classes.index(name) if name in classes else int(name) if name.isdigit() else -1
        if not 0 <= index < len(classes):
            raise ValueError(
                f"{path}:{number}: unknown class {name!r}; classes.txt has {list(classes)} (or "
                f"0..{len(classes) - 1})"
            )
        ys.append(y), xs.append(x), labels.append(index)
    return Clicks(np.array(ys, np.int64), np.array(xs, np.int64), np.array(labels, np.int64))


def write_clicks(path, clicks, classes, proposals=()):
    """A clicks CSV (x,y,class, the class by name), atomically; then each proposed (y, x) as a row
    x,y, with the class left empty, for the person to fill in (suggest.py)."""
    with atomic(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["x", "y", "class"])
        writer.writerows(
            [x, y, classes[k]]
            for y, x, k in zip(clicks.rows.tolist(), clicks.cols.tolist(), clicks.classes.tolist())
        )
        writer.writerows([x, y, ""] for y, x in proposals)


def keep_clicks(folder, data):
    """A tile folder run's training clicks, one <stem>.csv per clicked tile in `folder`: what the
    run learned from, which suggest.py proposes new clicks around."""
    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.tmp{os.getpid()}")  # whole, or not there
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for stem, labels in zip(data["stems"]["train"], data["train"][1]):
        if isinstance(labels, Clicks):
            write_clicks(tmp / f"{stem}.csv", labels, data["classes"])
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def colour_rgb(colour):
    """'#RRGGBB' -> (R, G, B)."""
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))


def colourise(class_map, colours=None):
    """(H, W) class indices -> (H, W, 3) uint8 preview in the legend's colours, or PALETTE's;
    unknown (255) in black."""
    rgb = np.array([colour_rgb(c) for c in colours or PALETTE], dtype=np.uint8)
    return np.where((class_map == IGNORE)[..., None], np.uint8(0), rgb[class_map % len(rgb)])
