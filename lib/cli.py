"""What every command of the project shares: one-line errors, the device options, atomic writes.

A bad input costs the user one line naming the bad value and what is allowed, and exit code 2,
from every command alike (train, predict, experiments, report, bench, export). A file a command
writes appears whole or not at all: it is written beside its final name and renamed into place.
"""

import argparse
import contextlib
import importlib
import os
from pathlib import Path

from lib.device import PRECISIONS


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag or a bad input costs one line (no usage block) and exit code 2.
    A message of several lines (a library's error) is cut to its first."""

    def error(self, message):
        first = next((line.strip() for line in str(message).splitlines() if line.strip()), "error")
        # under torchrun every process meets the same bad input: process 0 says so, all exit 2
        self.exit(
            2, f"{self.prog}: error: {first}\n" if os.environ.get("RANK", "0") == "0" else None
        )


def run_command(parser, function, argv=None):
    """function(the parsed flags as a dict); a ValueError or FileNotFoundError from it becomes one
    line and exit 2, like a bad flag."""
    config = vars(parser.parse_args(argv))
    try:
        return function(config)
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))


def add_device_options(parser):
    """--device and --precision, as every command that runs the network takes them (device.py)."""
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="auto: bf16 where the device computes it natively, else fp32",
    )


def check_output_folder(path):
    """An output folder may exist (its files are replaced) but must not be a file."""
    if path is not None and Path(path).exists() and not Path(path).is_dir():
        raise ValueError(f"--out {path}: exists and is not a folder; give a folder to write into")


# the packages beyond torch, torchvision and numpy, by the name they are imported as: what
# `pip install` calls them (requirements.txt lists them; requirements-core.txt the four the
# tutorial needs)
OPTIONAL = {
    "PIL": "pillow",
    "rasterio": "rasterio",
    "fiona": "fiona",
    "matplotlib": "matplotlib",
    "sklearn": "scikit-learn",
    "scipy": "scipy",
    "onnx": "onnx",
    "onnxruntime": "onnxruntime",
}


def one_line(error):
    """A library's error in one line, with the error behind it where there is one (rasterio's
    "Read failed" names its cause only there)."""
    text = f"{type(error).__name__}: {error}" + (f" ({error.__cause__})" if error.__cause__ else "")
    return " ".join(text.split())


class MissingPackage(ValueError):
    """A package beyond the four the tutorial needs is missing: one line, like any bad input."""


def need(module, feature):
    """Import `module` where `feature` needs it. The tutorial runs on torch, torchvision and numpy;
    a package beyond them that is not installed costs one line naming it and the feature."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        package = OPTIONAL.get((error.name or "").split(".")[0])
        if package is None:
            raise
        raise MissingPackage(
            f"{feature} needs the package {package}, which is not installed "
            f"(pip install {package}, or pip install -r requirements.txt for the whole tool)"
        ) from None


@contextlib.contextmanager
def atomic(path):
    """Yield a temporary path beside `path`; once the block has written it, rename it into place
    in one step. An interrupted write leaves the old file (or none), never half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
