"""label.py's HTTP side: the page, its JSON API, the live preview and a round of training in the
background.

    GET  /                              the page (lib/label.html)
    GET  /api/tiles                     the classes, their colours, the tiles (stem, size, counts)
    GET  /api/tiles/<stem>/points       the tile's clicks [x, y, class] and open proposals [x, y]
    POST /api/tiles/<stem>/points       {"x", "y", "class"}: answer the proposal there, or click
    POST /api/tiles/<stem>/undo         take back this page's last change to the tile
    GET  /api/tiles/<stem>/image        ?x&y&w&h&width: that region as a PNG, about width px wide
    GET  /api/tiles/<stem>/prediction   the same region of the run's prediction
    GET  /api/tiles/<stem>/preview      the same region of the live preview (lib/preview.py)
    POST /api/tiles/<stem>/prepare      compute the tile's features for the preview, ahead of time
    GET  /api/train                     the round under way: its lines, epoch, time left, status
    POST /api/train                     start a round ({"scratch": true}: from scratch, not warm)
    POST /api/train/cancel              stop the round under way; the clicks and runs stay

A bad request gets a 4xx status and {"error": "..."} and changes nothing. Python's standard
library serves it (http.server): one process, a thread per request.
"""

import collections
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from lib.labelling import Refused
from lib.preview import Preview

PAGE = Path(__file__).with_name("label.html")
TOOL = Path(__file__).resolve().parent.parent  # train.py and suggest.py
MAX_BODY = 10_000  # bytes: a click is a few dozen


class Training:
    """One round at a time: train.py (then suggest.py) in the background, its output kept for the
    page. Round 1 trains from scratch; each later round starts warm from the last finished round
    (train.py --init and its short schedule), unless the page asks for a round from scratch.
    Proposals still open when a round starts are taken out of the CSVs (train.py stops at an
    unlabelled row; suggest.py proposes anew after the round). A round cancelled is stopped and its
    unfinished folder removed: the clicks and the rounds before it stay as they were."""

    def __init__(self, folder, runs, train_flags, suggest_clicks):
        self.folder, self.runs, self.flags = folder, Path(runs), shlex.split(train_flags)
        self.clicks, self.lines = suggest_clicks, collections.deque(maxlen=200)
        self.thread, self.process, self.cancelled = None, None, False
        self.status, self.val = "idle", None

    def rounds(self):
        """{N: runs/roundN} of the rounds begun here so far."""
        found = {}
        for path in self.runs.glob("round*"):
            if m := re.fullmatch(r"round(\d+)", path.name):
                found[int(m[1])] = path
        return found

    def last_finished(self):
        """The run a warm round starts from: the last finished round, else label.py's --run."""
        finished = [p for n, p in sorted(self.rounds().items()) if (p / "metrics.json").is_file()]
        return finished[-1] if finished else self.folder.run

    def start(self, scratch=False):
        if self.thread and self.thread.is_alive():
            raise Refused(409, "a run is training already; one at a time")
        out = self.runs / f"round{max(self.rounds(), default=0) + 1}"
        init = None if scratch else self.last_finished()
        self.lines.clear()
        withdrawn = self.folder.withdraw_proposals()
        if withdrawn:
            self.lines.append(
                f"{withdrawn} open proposals left unanswered: taken out of the CSVs (train.py "
                f"learns from answered clicks; suggest.py proposes anew after the round)"
            )
        self.status, self.val, self.cancelled = f"training {out}", None, False
        self.status += f" (warm, from {init})" if init else " (from scratch)"
        self.thread = threading.Thread(target=self.work, args=(out, init), daemon=True)
        self.thread.start()
        return self.report()

    def cancel(self):
        if not (self.thread and self.thread.is_alive()):
            raise Refused(409, "no run is training: nothing to cancel")
        self.cancelled = True
        if self.process:
            self.process.terminate()
        self.thread.join(60)
        return self.report()

    def work(self, out, init):
        root = str(self.folder.root)
        warm = ["--init", str(init)] if init else []
        train = [sys.executable, str(TOOL / "train.py"), "--data", root, "--out", str(out)]
        steps = [[*train, *warm, *self.flags]]
        if self.clicks:
            suggest = [sys.executable, str(TOOL / "suggest.py"), str(out), root]
            steps.append([*suggest, "--clicks", str(self.clicks)])
        for command in steps:
            code = self.run(command)
            if self.cancelled:
                if command is steps[0]:  # an unfinished round: nothing of it is kept
                    shutil.rmtree(out, ignore_errors=True)
                kept = "removed" if command is steps[0] else "kept, without its proposals"
                self.status = f"cancelled: {out.name} {kept}; the clicks are as they were"
                return
            if code:
                self.status = f"failed: {self.lines[-1] if self.lines else code}"
                return
            if command is steps[0]:
                self.folder.use_run(out)
        self.status = f"done: {out}"

    def run(self, command):
        """Run one step, its lines kept (and its val mIoU read); its exit code."""
        if self.cancelled:  # between two steps
            return 1
        self.lines.append("$ " + shlex.join(command))
        with subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=TOOL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        ) as self.process:
            for line in self.process.stdout:
                self.lines.append(line.rstrip())
                if m := re.search(r"val mIoU (\d\.\d+)", line):
                    self.val = float(m[1])
        code, self.process = self.process.returncode, None
        return code

    def report(self):
        running = bool(self.thread and self.thread.is_alive())
        return dict(
            running=running,
            status=self.status,
            val_miou=self.val,
            lines=list(self.lines),
            **(progress(self.lines) if running else {}),
        )


def progress(lines):
    """{epoch, epochs, eta_s} of a training from its lines: the epochs done, the share of the one
    under way, and the time the rest will take at the pace so far (the scoring comes after)."""
    epoch, epochs, done, seconds = 0, None, 0.0, []
    for line in lines:
        if m := re.match(r"epoch (\d+)/(\d+) .* (\d+\.\d)s$", line):
            epoch, epochs, done = int(m[1]), int(m[2]), 0.0
            seconds.append(float(m[3]))
        elif m := re.match(r"  epoch (\d+)/(\d+): (\d+)/(\d+) steps, .*, (\d+)s$", line):
            epoch, epochs, done = int(m[1]) - 1, int(m[2]), int(m[3]) / int(m[4])
            pace = float(m[5]) / done  # seconds an epoch, from the one under way
    if epochs is None:
        return {}
    pace = sum(seconds) / len(seconds) if seconds else pace
    return dict(epoch=epoch + done, epochs=epochs, eta_s=round((epochs - epoch - done) * pace))


def handler(folder, training, preview):
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
            if parts[:2] == ["api", "train"]:
                answer = train_route(training, method, parts[2:], self.body)
                if answer:
                    return answer
            if len(parts) == 4 and parts[:2] == ["api", "tiles"]:
                answer = tile_route(folder, preview, method, parts[2], parts[3], query, self.body)
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


def train_route(training, method, rest, read_body):
    """/api/train[/cancel]: the round under way, a round started (warm, or from scratch if the
    body asks), a round cancelled, as (status, body, content type); None for no such route."""
    if (method, rest) == ("GET", []):
        return 200, training.report(), "application/json"
    if (method, rest) == ("POST", []):
        asked = read_body() or {}
        if not isinstance(asked, dict) or set(asked) - {"scratch"}:
            raise Refused(400, 'expected {} or {"scratch": true}')
        return 200, training.start(bool(asked.get("scratch"))), "application/json"
    if (method, rest) == ("POST", ["cancel"]):
        return 200, training.cancel(), "application/json"
    return None


def tile_route(folder, preview, method, stem, what, query, read_body):
    """/api/tiles/<stem>/<what>: a tile's clicks and proposals, a click, an undo, its image, the
    last run's map of it and the live preview's, as (status, body, content type); None for no such
    route."""
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
    if (method, what) == ("GET", "preview"):
        return 200, preview.png(stem, query), "image/png"
    if (method, what) == ("POST", "prepare"):
        preview.prepare(stem)
        return 200, {"stem": stem}, "application/json"
    return None


class Server(ThreadingHTTPServer):
    # connections waiting to be accepted: the default, 5, resets the rest when a page (or a
    # script) sends many requests at once, and their clicks would be lost
    request_queue_size = 128


def serve(folder, training, host="127.0.0.1", port=8000):
    """A started server (serve_forever it, or shutdown it); port 0 picks a free one."""
    preview = Preview(folder)
    server = Server((host, port), handler(folder, training, preview))
    server.preview = preview  # what its maps cost: scripts/preview_speed.py
    return server
