"""Click in the browser: a local page to label a tile folder's training tiles, and to answer
suggest.py's proposals, without opening a CSV.

    python label.py DIR                        serve the page on http://127.0.0.1:8000/
    python label.py DIR --run runs/round0      ... with that run's prediction to lay over the tiles
    python label.py DIR --port 0               ... on a free port (the address is printed)

The page shows one training tile at a time (a list to jump between them, each with its count of
clicks and open proposals), its clicks in the legend's colours and the open proposals as rings,
least sure first. Keys 1-9 pick the class; a click labels a pixel, or answers the proposal
ringed there; U (or the button) undoes the page's last change; drag to pan, the wheel to zoom.
The server sends the part of the tile on screen at screen size, so a 10,000² GeoTIFF opens as
fast as a small PNG. Each change rewrites DIR/train/points/<stem>.csv (train.py's format) at
once, atomically; nothing else is written.

Over the tile, a map: the live preview (P), a small pixel forest fitted on the clicks so far and
refitted a moment after each click (lib/preview.py; it writes nothing), or the network's map of
the last round (N), or none (O). Retrain runs a round in the background: train.py --data DIR into
RUNS/roundN, then suggest.py (--suggest clicks). Round 1 trains from scratch; each later round
starts warm from the last finished one (train.py --init, a short schedule: docs/suggest.md),
unless "from scratch" is ticked; proposals left unanswered are taken out of the CSVs when a
round starts (suggest.py proposes anew after it). The page shows the round's epoch, the time
left and its lines, then the new map; Cancel stops a round and removes its unfinished folder,
the clicks and the earlier rounds untouched. Python's standard library serves the page
(lib/label_server.py), on this machine only unless --host names another address.
"""

from lib.cli import OneLineParser, check_output_folder, guard
from lib.label_server import Training, serve
from lib.labelling import Folder


def main(argv=None, ready=None):
    parser = OneLineParser(prog="label.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="a tile folder (docs/own-data.md)")
    parser.add_argument("--run", help="a train.py run on it, whose prediction the page can show")
    parser.add_argument("--port", type=int, default=8000, help="0: a free port")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="the address to serve on; another than 127.0.0.1 lets other machines label (and "
        "retrain) too",
    )
    parser.add_argument(
        "--runs", help="where Retrain writes round1, round2, ... (default DIR/../runs)"
    )
    parser.add_argument(
        "--train-flags", default="", help='more train.py flags for Retrain, e.g. "--epochs 5"'
    )
    parser.add_argument(
        "--suggest",
        type=int,
        default=50,
        help="after Retrain, suggest.py proposes this many clicks (0: none)",
    )
    args = parser.parse_args(argv)
    try:
        if not 0 <= args.port < 65536 or args.suggest < 0:
            raise ValueError(
                f"--port must be 0-65535 and --suggest >= 0, got {args.port} and {args.suggest}"
            )
        folder = Folder(args.data, args.run)
        runs = args.runs or folder.root.resolve().parent / "runs"
        check_output_folder(runs, "--runs")
        server = serve(
            folder, Training(folder, runs, args.train_flags, args.suggest), args.host, args.port
        )
    except (ValueError, OSError) as error:
        parser.error(str(error))
    host, port = server.server_address[:2]
    print(
        f"labelling {len(folder.paths)} training tiles of {folder.root} "
        f"({len(folder.classes)} classes{', showing ' + folder.run if folder.run else ''}): "
        f"open http://{host}:{port}/  (Ctrl-C stops)",
        flush=True,
    )
    if ready:  # a test's hook: the running server
        ready(server)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    guard(main)
