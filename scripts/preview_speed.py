"""How long label.py's live preview takes after a click, over HTTP as the page asks for it.

    python -m scripts.preview_speed                  a 1024² synthetic tile, 30 clicks
    python -m scripts.preview_speed --size 2048 --clicks 50

Exports one synthetic training tile of --size² pixels (export.py's scenes), serves it as label.py
does, asks for the tile's features ahead (what the page does when it opens a tile), then for each
click: POSTs it, and GETs the preview of the whole tile at 1024 px wide (the page's view of it on
a 1024-px canvas) — the time from the click's request to the last byte of the map, the wait a
person sees. Clicks go to pixels drawn at random, labelled from the tile's mask, the first few
one of each class. Prints each step's figures (median and worst) and the CPU; writes nothing
outside a temporary folder.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

from lib.device import cpu_name
from lib.label_server import Training, serve
from lib.labelling import Folder


def call(url, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if data is None else "POST")
    with urllib.request.urlopen(request, timeout=600) as response:
        return response.read()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1024, help="the tile's width and height")
    parser.add_argument("--clicks", type=int, default=30)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        root = Path(work) / "tiles"
        export = f"export.py tiles {root} --train-size 1 --val-size 1 --test-size 1 "
        export += f"--image-size {args.size}"
        subprocess.run([sys.executable, *export.split()], check=True, stdout=subprocess.DEVNULL)
        mask = np.asarray(Image.open(next((root / "train" / "masks").glob("*.png"))))
        folder = Folder(root)
        server = serve(folder, Training(folder, Path(work) / "runs", "", 0), port=0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        host, port = server.server_address[:2]
        base = f"http://{host}:{port}/api/tiles/"
        stem = next(iter(folder.paths))
        started = time.perf_counter()
        call(f"{base}{stem}/prepare", {})
        prepare = time.perf_counter() - started
        rng = np.random.default_rng(0)
        firsts = [np.argwhere(mask == k)[0] for k in np.unique(mask) if k < len(folder.classes)]
        waits, parts = [], []
        for n in range(args.clicks):
            row, col = firsts[n] if n < len(firsts) else rng.integers(0, args.size, 2)
            click = dict(x=int(col), y=int(row), **{"class": int(mask[row, col])})
            started = time.perf_counter()
            call(f"{base}{stem}/points", click)
            call(f"{base}{stem}/preview?width=1024&v={n}")
            waits.append(time.perf_counter() - started)
            parts.append(server.preview.seconds)
        server.shutdown()
    print(f"{cpu_name()}; one {args.size}x{args.size} tile, {args.clicks} clicks one by one")
    print(f"the tile's features, once, when the page opens it: {prepare:.2f}s")
    print(
        f"click -> preview of the whole tile at 1024 px: median {statistics.median(waits):.2f}s, "
        f"worst {max(waits):.2f}s (first {waits[0]:.2f}s)"
    )
    for step in ("fit", "predict"):
        values = [p[step] for p in parts]
        print(
            f"  of which {step}: median {statistics.median(values):.2f}s, worst {max(values):.2f}s"
        )


if __name__ == "__main__":
    main()
