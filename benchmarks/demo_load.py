"""A crowd against the web demo: many /generate requests at once, valid and bad, on the loopback address.

Starts ``python app.py`` (on the port it picks, the shipped model unless --model), makes one gradio_client per
request (a visitor each), submits them all at the same moment and reports what each one got: served, turned away
("queue is full"), or refused with a message; the places in the queue the waiting ones were shown; the longest wait;
whether the server still answers afterwards; and its log. Exits 1 when the demo falls short of any of:

- every valid request is served, none turned away;
- every one that waited was shown its place in the queue;
- every bad request is refused before it takes a place in the queue, in a sentence naming its field;
- the server still answers; its log holds no "Exception in ASGI application" and no traceback, and each user error
  is one line.

Valid requests share one seed, so they draw the same pictures at the same time (what broke downloads before).
Usage::

    python -m benchmarks.demo_load                          # 40 valid at 4 + 1 steps and 10 bad, at once
    python -m benchmarks.demo_load --valid 40 --steps 10,2  # the crowd of issue 26
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import httpx
from gradio_client import Client
from gradio_client.exceptions import ValidationError
from gradio_client.utils import QueueError, Status

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["a red circle above a blue square", "two green stars", "a yellow triangle to the left of a purple cross"]
# (field, what the request gets wrong, words its refusal must hold: the field's name as the page shows it)
BAD_REQUESTS = [
    ("prompt", {"prompt": "   "}, "describe the image"),
    ("steps_1", {"steps_1": 0}, "Steps of stage 1"),
    ("steps_2", {"steps_2": 101}, "Steps of stage 2"),
    ("guidance_1", {"guidance_1": -1}, "Guidance of stage 1"),
    ("seed", {"seed": -5}, "seed"),
    ("num_images", {"num_images": 10}, "Number of images"),
    ("noise_aug_level", {"noise_aug_level": 2}, "Noise-augmentation level"),
    ("percentile", {"percentile": 0.5}, "Dynamic thresholding percentile"),
    ("scheduler", {"scheduler": "fastest"}, "Scheduler"),
    ("thresholding", {"thresholding": "some"}, "Thresholding"),
]
SERVING = re.compile(r"imagen_demo: serving on (\S+)")
WAITING = {Status.IN_QUEUE, Status.JOINING_QUEUE, Status.STARTING, Status.SENDING_DATA}


@dataclass
class Visit:
    """One request and what it got."""

    request: dict
    bad_field: str | None = None  # None for a valid request
    expected_words: str = ""
    outcome: str = ""  # served | refused (before the queue) | failed (inside it) | queue full
    message: str = ""
    queued: bool = False  # it waited in the queue (behind another request)
    positions: set[int] = field(default_factory=set)  # places in the queue it was shown (1 = next)
    waited: float | None = None  # seconds from submitting to sampling
    seconds: float = 0.0  # seconds from submitting to the answer


@contextmanager
def running_app(args: list[str], log: Path, timeout: float = 600, root: Path = ROOT) -> Iterator[str]:
    """Run ``python app.py ARGS`` in `root` with its output in `log`; yield the address its start line names.
    (Starting takes seconds; the long default `timeout` is for a machine whose cores other jobs hold.)"""
    with open(log, "w") as out:
        app = subprocess.Popen([sys.executable, "app.py", *args], stdout=out, stderr=subprocess.STDOUT, cwd=root)
    try:
        deadline = time.monotonic() + timeout
        while not (match := SERVING.search(log.read_text())):
            if app.poll() is not None:
                raise RuntimeError(f"app.py exited with status {app.returncode}; its output:\n{log.read_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"app.py did not serve within {timeout:.0f} s; its output:\n{log.read_text()}")
            time.sleep(0.5)
        yield match[1]
    finally:
        app.terminate()
        app.wait(30)


def requests(valid: int, steps: list[int]) -> list[Visit]:
    """`valid` requests at `steps` per stage, one seed for all, then one per bad field."""
    fast = {f"steps_{i}": n for i, n in enumerate(steps, 1)}
    base = {"seed": 0, "randomize_seed": False, "num_images": 1, **fast}
    visits = [Visit({**base, "prompt": PROMPTS[i % len(PROMPTS)]}) for i in range(valid)]
    visits += [Visit({**base, "prompt": PROMPTS[0], **wrong}, name, words) for name, wrong, words in BAD_REQUESTS]
    return visits


def visit(client: Client, one: Visit, start: threading.Barrier, timeout: float) -> None:
    """Submit when every visitor is ready; watch the status until the answer; record what came back."""
    start.wait()
    began = time.monotonic()
    job = client.submit(**one.request, api_name="/generate")
    while not job.done() and time.monotonic() - began < timeout:
        status = job.status()
        if status.code == Status.IN_QUEUE:
            one.queued = True
            one.positions |= set() if status.rank is None else {status.rank + 1}
        if one.waited is None and status.code not in WAITING:
            one.waited = time.monotonic() - began
        time.sleep(0.1)
    try:
        job.result(timeout=max(1.0, timeout - (time.monotonic() - began)))
        one.outcome = "served"
    except ValidationError as err:
        one.outcome, one.message = "refused", str(err)
    except QueueError as err:
        one.outcome, one.message = "queue full", str(err)
    except Exception as err:  # AppError, a timeout, ...: the demo failed this visitor
        one.outcome, one.message = "failed", f"{type(err).__name__}: {err}"
    one.seconds = time.monotonic() - began


def crowd(url: str, visits: list[Visit], timeout: float) -> None:
    """Every visit at once, each from its own client."""
    # A visitor waits up to `timeout` for each answer (httpx's default of 5 s is shorter than a busy server's reply).
    clients = [Client(url, verbose=False, httpx_kwargs={"timeout": timeout}) for _ in visits]
    start = threading.Barrier(len(visits))
    threads = [threading.Thread(target=visit, args=(client, one, start, timeout))
               for client, one in zip(clients, visits)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@dataclass
class Report:
    visits: list[Visit]
    answers_after: bool  # the page and one more request, after the crowd
    log: str

    @property
    def valid(self) -> list[Visit]:
        return [v for v in self.visits if v.bad_field is None]

    @property
    def bad(self) -> list[Visit]:
        return [v for v in self.visits if v.bad_field is not None]

    def failures(self) -> list[str]:
        """What fell short, one sentence each; empty when the demo held the crowd."""
        out = [f"valid request {i} was {v.outcome}: {v.message}" for i, v in enumerate(self.valid)
               if v.outcome != "served"]
        out += [f"valid request {i} waited in the queue without being shown its place"
                for i, v in enumerate(self.valid) if v.queued and not v.positions]
        out += [f"bad {v.bad_field} was {v.outcome}, not refused before the queue naming it: {v.message!r}"
                for v in self.bad if v.outcome != "refused" or v.expected_words not in v.message]
        out += [] if self.answers_after else ["the server did not answer after the crowd"]
        for text, allowed in (("Exception in ASGI application", 0), ("Traceback (most recent call last)", 0),
                              ("refused: ", len(self.bad))):
            if (count := self.log.count(text)) != allowed:
                out.append(f"the server log holds {count} × {text!r}, not {allowed}")
        return out

    def summary(self) -> str:
        served = [v for v in self.valid if v.outcome == "served"]
        waits = sorted(v.waited for v in served if v.waited is not None)
        shown = [v for v in self.valid if v.positions]
        furthest = max((max(v.positions) for v in shown), default=0)
        refused = [v for v in self.bad if v.outcome == "refused" and v.expected_words in v.message]
        lines = [
            f"valid: {len(served)}/{len(self.valid)} served, "
            f"{sum(v.outcome == 'queue full' for v in self.valid)} turned away (queue full), "
            f"{sum(v.outcome == 'failed' for v in self.valid)} failed; {sum(v.queued for v in self.valid)} waited in "
            f"the queue, {len(shown)} shown their place (up to place {furthest})",
            f"wait before sampling: median {statistics.median(waits) if waits else 0:.1f} s, longest "
            f"{max(waits, default=0):.1f} s; longest answer {max((v.seconds for v in self.valid), default=0):.1f} s",
            f"bad: {len(refused)}/{len(self.bad)} refused before the queue in a sentence naming the field",
            f"server: {'answers' if self.answers_after else 'DOES NOT ANSWER'} after the crowd; log: "
            f"{self.log.count('Exception in ASGI application')} ASGI exceptions, "
            f"{self.log.count('Traceback (most recent call last)')} tracebacks, "
            f"{self.log.count('refused: ')} user-error lines",
        ]
        lines += [f"  {v.bad_field}: {v.message.splitlines()[-1] if v.message else v.outcome}" for v in self.bad]
        return "\n".join(lines)


def still_answers(url: str, request: dict, timeout: float) -> bool:
    try:
        page = httpx.get(url, timeout=timeout)
        Client(url, verbose=False, httpx_kwargs={"timeout": timeout}).predict(**request, api_name="/generate")
        return page.status_code == 200
    except Exception:  # any failure here is the answer
        return False


def run(app_args: list[str], valid: int, steps: list[int], log: Path, timeout: float) -> Report:
    """Start the app, send the crowd, check the server afterwards."""
    visits = requests(valid, steps)
    with running_app(app_args, log) as url:
        crowd(url, visits, timeout)
        answers = still_answers(url, visits[0].request, timeout)
    return Report(visits, answers, log.read_text())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--valid", type=int, default=40, help="valid requests (default 40)")
    parser.add_argument("--steps", default="4,1", help="steps per stage of the valid requests (default 4,1)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds a visitor waits at most (default 600)")
    parser.add_argument("--log", type=Path, default=Path("demo_load.log"), help="the server's output goes here")
    parser.add_argument("app_args", nargs="*", help="arguments for app.py after --, e.g. -- --model ./my-model")
    args = parser.parse_args(argv)
    steps = [int(n) for n in args.steps.split(",")]
    print(f"{args.valid + len(BAD_REQUESTS)} requests at once ({args.valid} valid at steps {args.steps}, "
          f"{len(BAD_REQUESTS)} bad) against python app.py {' '.join(args.app_args)}", flush=True)
    report = run(args.app_args, args.valid, steps, args.log, args.timeout)
    print(report.summary())
    failures = report.failures()
    print("\n".join(["FAILED:", *failures]) if failures else "the demo held the crowd")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
