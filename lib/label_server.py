"""label.py's HTTP side: the page, its JSON API, and a retraining run in the background.

    GET  /                              the page (lib/label.html)
    GET  /api/tiles                     the classes, their colours, the tiles (stem, size, counts)
    GET  /api/tiles/<stem>/points       the tile's clicks [x, y, class] and open proposals [x, y]
    POST /api/tiles/<stem>/points       {"x", "y", "class"}: answer the proposal there, or click
    POST /api/tiles/<stem>/undo         take back this page's last change to the tile
    GET  /api/tiles/<stem>/image        ?x&y&w&h&width: that region as a PNG, about width px wide
    GET  /api/tiles/<stem>/prediction   the same region of the run's prediction
    GET  /api/train, POST /api/train    the retraining run: its progress lines / start it

A bad request gets a 4xx status and {"error": "..."} and changes nothing. Python's standard
library serves it (http.server): one process, a thread per request.
"""

import collections
import json
import os
import re
import shlex
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from lib.labelling import Refused

PAGE = Path(__file__).with_name("label.html")
TOOL = Path(__file__).resolve().parent.parent  # train.py and suggest.py
MAX_BODY = 10_000  # bytes: a click is a few dozen


class Training:
    """One train.py (then suggest.py) run at a time, its output kept for the page."""

    def __init__(self, folder, runs, train_flags, suggest_clicks):
        self.folder, self.runs, self.flags = folder, Path(runs), shlex.split(train_flags)
        self.clicks, self.lines = suggest_clicks, collections.deque(maxlen=200)
        self.thread, self.status, self.val = None, "idle", None

    def start(self):
        if self.thread and self.thread.is_alive():
            raise Refused(409, "a run is training already; one at a time")
        rounds = [
            int(m[1])
            for p in self.runs.glob("round*")
            if (m := re.fullmatch(r"round(\d+)", p.name))
        ]
        out = self.runs / f"round{max(rounds, default=0) + 1}"
        self.lines.clear()
        self.status, self.val = f"training {out}", None
        self.thread = threading.Thread(target=self.work, args=(out,), daemon=True)
        self.thread.start()
        return self.report()

    def work(self, out):
        root = str(self.folder.root)
        steps = [
            [sys.executable, str(TOOL / "train.py"), "--data", root, "--out", str(out), *self.flags]
        ]
        if self.clicks:
            steps.append(
                [
                    sys.executable,
                    str(TOOL / "suggest.py"),
                    str(out),
                    root,
                    "--clicks",
                    str(self.clicks),
                ]
            )
        for command in steps:
            self.lines.append("$ " + shlex.join(command))
            with subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                cwd=TOOL,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            ) as process:
                for line in process.stdout:
                    self.lines.append(line.rstrip())
                    if m := re.search(r"val mIoU (\d\.\d+)", line):
                        self.val = float(m[1])
            if process.returncode:
                self.status = f"failed: {self.lines[-1] if self.lines else process.returncode}"
                return
            if command is steps[0]:
                self.folder.use_run(out)
        self.status = f"done: {out}"

    def report(self):
        running = bool(self.thread and self.thread.is_alive())
        return dict(running=running, status=self.status, val_miou=self.val, lines=list(self.lines))


def handler(folder, training):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet: the page is the log
            pass

        def send(self, status, body, kind="application/json"):
            if kind == "application/json":
                body = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def route(self, method):
            url = urlsplit(self.path)
            parts = [unquote(p) for p in url.path.split("/") if p]
            query = parse_qs(url.query)
            if method == "GET" and not parts:
                return 200, PAGE.read_bytes(), "text/html; charset=utf-8"
            if parts == ["api", "tiles"] and method == "GET":
                return 200, folder.summary(), "application/json"
            if parts == ["api", "train"]:
                return (
                    200,
                    training.start() if method == "POST" else training.report(),
                    "application/json",
                )
            if len(parts) == 4 and parts[:2] == ["api", "tiles"]:
                answer = tile_route(folder, method, parts[2], parts[3], query, self.body)
                if answer:
                    return answer
            raise Refused(404, f"no {method} {url.path}")

        def body(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                raise Refused(413, f"a body of {length} bytes; a click is at most {MAX_BODY}")
            try:
                return json.loads(self.rfile.read(length) or b"null")
            except ValueError:
                raise Refused(400, "the body is not JSON") from None

        def answer(self, method):
            try:
                self.send(*self.route(method))
            except Refused as refused:
                self.send(refused.status, {"error": str(refused)})
            except (ValueError, OSError) as error:
                self.send(500, {"error": str(error)})

        def do_GET(self):
            self.answer("GET")

        def do_POST(self):
            self.answer("POST")

    return Handler


def tile_route(folder, method, stem, what, query, read_body):
    """/api/tiles/<stem>/<what>: a tile's clicks and proposals, a click, an undo, its image and the
    last run's map of it, as (status, body, content type); None for no such route."""
    folder.path(stem)  # an unknown tile: Refused 404
    if (method, what) == ("GET", "points"):
        return 200, folder.state(stem), "application/json"
    if (method, what) == ("POST", "points"):
        return 200, folder.click(stem, read_body()), "application/json"
    if (method, what) == ("POST", "undo"):
        return 200, folder.take_back(stem), "application/json"
    if (method, what) == ("GET", "image"):
        return 200, folder.image_png(stem, query), "image/png"
    if (method, what) == ("GET", "prediction"):
        return 200, folder.prediction_png(stem, query), "image/png"
    return None


class Server(ThreadingHTTPServer):
    # connections waiting to be accepted: the default, 5, resets the rest when a page (or a
    # script) sends many requests at once, and their clicks would be lost
    request_queue_size = 128


def serve(folder, training, host="127.0.0.1", port=8000):
    """A started server (serve_forever it, or shutdown it); port 0 picks a free one."""
    return Server((host, port), handler(folder, training))
