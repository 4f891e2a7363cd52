"""Run blocking work in a thread and stream the events it reports, so a Gradio generator can show them live.

The pipeline reports progress through a callback from inside its sampling loop; a generator handler can
only show something when it yields. A queue between the two lets the handler yield previews while the
work runs. The handler's thread also keeps Gradio's request context, so ``gr.Progress`` and
``gr.Warning`` are called there, never from the worker.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Generator, TypeVar

Event = TypeVar("Event")
Update = TypeVar("Update")
Result = TypeVar("Result")


class Cancelled(Exception):
    """Raised inside the worker at its next callback once nobody is listening (the request went away)."""


def run_streaming(
    work: Callable[[Callable[[Event], None]], Result], show: Callable[[Event], Update | None]
) -> Generator[Update, None, Result]:
    """Run ``work(report)`` in a worker thread; yield ``show(event)`` for every event it reports (unless
    None), then return its result.

    An exception in the worker is raised here, in the consumer. Closing this generator early (the user
    left, or Gradio cancelled the event) stops the worker at its next report instead of letting it
    sample on in the background.
    """
    events: queue.Queue = queue.Queue()
    finished = object()
    outcome: dict = {}
    stop = threading.Event()

    def report(event: Event) -> None:
        if stop.is_set():
            raise Cancelled
        events.put(event)

    def target() -> None:
        try:
            outcome["result"] = work(report)
        except BaseException as err:  # handed to the consumer, which decides what the user sees
            outcome["error"] = err
        finally:
            events.put(finished)

    worker = threading.Thread(target=target, name="imagen-demo-worker", daemon=True)
    worker.start()
    try:
        while (event := events.get()) is not finished:
            if (update := show(event)) is not None:
                yield update
    finally:
        stop.set()
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
