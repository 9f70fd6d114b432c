"""What every command of the project shares: one-line errors, output folders, atomic writes.

A bad input costs the user one line naming the bad value and what is allowed, and exit code 2,
from every command alike (train, predict, experiments, report, bench, export); Ctrl-C one line and
exit code 130. A file a command writes appears whole or not at all: it is written beside its final
name and renamed into place.
"""

import argparse
import contextlib
import importlib
import os
import shutil
import sys
import tempfile
from pathlib import Path


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag or a bad input costs one line (no usage block) and exit code 2.
    A message of several lines (a library's error) is cut to its first."""

    def error(self, message):
        first = next((line.strip() for line in str(message).splitlines() if line.strip()), "error")
        # under torchrun every process meets the same bad input: process 0 says so, all exit 2
        self.exit(
            2, f"{self.prog}: error: {first}\n" if os.environ.get("RANK", "0") == "0" else None
        )


def add_show_test(parser, what="scan the test split too"):
    """--show-test, as every scan and rescoring takes it: test stays off the screen unless asked,
    so that a setting is chosen on val."""
    parser.add_argument(
        "--show-test",
        action="store_true",
        help=f"{what} (a setting is chosen on val; test is looked at once, for the setting chosen)",
    )


def run_command(parser, function, argv=None):
    """function(the parsed flags as a dict); a ValueError or FileNotFoundError from it becomes one
    line and exit 2, like a bad flag."""
    config = vars(parser.parse_args(argv))
    try:
        return function(config)
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))


def guard(main, argv=None, hint=""):
    """Run a command's main(argv); Ctrl-C is one line (with `hint`: what the user can do now) and
    exit code 130, the shell's code for SIGINT, instead of a traceback. What was written is whole:
    every file goes through atomic()."""
    try:
        return main(argv)
    except KeyboardInterrupt:
        sys.stderr.write(f"{Path(sys.argv[0]).name}: interrupted{f'; {hint}' if hint else ''}\n")
        raise SystemExit(130) from None


def check_output_folder(path, flag="--out"):
    """Before any work: an output folder may exist (its files are replaced) or be made, and must be
    writable. A folder below a file, or one this user cannot write in, is one line naming it,
    rather than a traceback after an hour of training. Nothing is created here."""
    if path is None:
        return
    path, existing = Path(path), Path(path).absolute()
    while not existing.exists():  # the nearest folder that exists: the new ones go in there
        existing = existing.parent
    if not existing.is_dir():
        where = (
            "exists and is not a folder" if existing == path.absolute() else f"{existing} is a file"
        )
        raise ValueError(f"{flag} {path}: {where}; give a folder to write into")
    try:
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as error:
        raise ValueError(
            f"{flag} {path}: cannot write in {existing} ({error.strerror}); give a folder you can "
            f"write to"
        ) from None


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


def clear_old_run(out, *names):
    """Remove an earlier run's `names` from the run folder `out` before the new run's first file
    lands there: metrics.json first, which a run writes last, so a folder without it is no
    finished run. A folder then never pairs one run's model with another's metrics or clicks,
    whenever it is interrupted."""
    for name in ("metrics.json", *names):
        path = Path(out) / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic(path):
    """Yield a temporary path beside `path`; once the block has written it, rename it into place
    in one step. An interrupted write leaves the old file (or none), never half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    except Exception as error:  # a library's error names the temporary file: name the real one
        if tmp.name not in str(error):
            raise
        raise ValueError(
            one_line(error).replace(str(tmp), str(path)).replace(tmp.name, path.name)
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
