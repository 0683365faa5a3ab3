"""Test helpers: a small LeRobot v3.0 dataset with video, and a chat-completions server on 127.0.0.1.

The server reads the task text, the subtask names and the duration from the system prompt and answers
by the task: "good" (names evenly over the duration, rounded to 0.1 s), "malformed" (not JSON),
"disorder-then-good" (names reversed, then good), "beyond" (the last end 5 s past the video),
"error500-then-good" (HTTP 500, then good in a ```json fence with prose), "timeout" (answers only when
the server stops: always past the client's timeout), "held" (good, but once `hold_after(n)` is called
every request after the next n waits for `release()`: a test kills a client at a known point, not by a
clock). It records every request body.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from sarm.data.writer import LeRobotWriter
from tests.waiting import HANG_S

CAM = "observation.images.top"
FPS = 10


def make_dataset(root, tasks, lengths, fps=FPS):
    """One episode per (task, length); frames are flat colours that change with the frame index."""
    with LeRobotWriter(root, fps=fps, state_dim=2, action_dim=2, cameras={CAM: (32, 32)}) as w:
        for task, length in zip(tasks, lengths, strict=True):
            levels = (np.arange(length) * 8 % 256).astype(np.uint8)
            images = np.broadcast_to(levels[:, None, None, None], (length, 32, 32, 3)).copy()
            x = np.zeros((length, 2), np.float32)
            w.add_episode(state=x, action=x, task=task, images={CAM: images})
    return root


def good(names, duration):
    edges = [round(duration * i / len(names), 1) for i in range(len(names) + 1)]
    return [{"name": n, "start": edges[i], "end": edges[i + 1]} for i, n in enumerate(names)]


def _prompt(body):
    system = "".join(p["text"] for p in body["messages"][0]["content"] if p["type"] == "text")
    task = re.search(r"Task: (.*)\n", system).group(1)
    duration = float(re.search(r"The video lasts ([\d.]+) seconds", system).group(1))
    names = re.findall(r"^\d+\. (.*)$", system, re.MULTILINE)
    return task, names, duration


class FakeVLM:
    def __init__(self):
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.released = threading.Event()
        self.released.set()
        self.passes: int | None = None  # "held" requests still let through before the hold
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(
                        {"path": self.path, "auth": self.headers.get("Authorization"), **body}
                    )
                    task, names, duration = _prompt(body)
                    tries = sum(_prompt(r)[0] == task for r in server.requests)
                status, text = server.answer(task, names, duration, tries)
                with contextlib.suppress(OSError):  # the client may have given up (timeout)
                    if status != 200:
                        self.send_response(status)
                        self.end_headers()
                        self.wfile.write(b"internal error")
                        return
                    data = json.dumps(
                        {"choices": [{"message": {"role": "assistant", "content": text}}]}
                    ).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def answer(self, task, names, duration, tries):
        ok = json.dumps({"subtasks": good(names, duration)})
        if task.startswith("good"):
            return 200, ok
        if task == "malformed":
            return 200, '{"subtasks": [{"name": "a", "start": 0, "end": 1.0},'
        if task == "disorder-then-good":
            wrong = {"subtasks": good(names[::-1], duration)}
            return 200, (json.dumps(wrong) if tries == 1 else ok)
        if task == "beyond":
            spans = good(names, duration)
            spans[-1]["end"] = duration + 5.0
            return 200, json.dumps({"subtasks": spans})
        if task == "error500-then-good":
            return (500, "") if tries == 1 else (200, f"Here is the timeline.\n```json\n{ok}\n```\nDone.")
        if task == "timeout":
            self.stopped.wait(HANG_S)
            return 200, ok
        if task == "held":
            with self.lock:
                hold = self.passes is not None and self.passes <= 0
                if self.passes is not None:
                    self.passes -= 1
            if hold:
                self.released.wait(HANG_S)
            return 200, ok
        raise AssertionError(f"unknown test task {task!r}")

    def hold_after(self, n: int) -> None:
        """Let the next `n` "held" requests through; the ones after wait until `release()`."""
        with self.lock:
            self.passes = n
            self.released.clear()

    def release(self) -> None:
        with self.lock:
            self.passes = None
            self.released.set()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        self.release()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(HANG_S)
