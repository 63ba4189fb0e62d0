"""Concurrent single-tweet requests in one process answered by one pipeline call.

A pipeline call has a fixed cost (~0.4 ms: scikit-learn's checks and dispatch) that dwarfs the cost per tweet (~0.03 ms).
Requests that arrive while the model is busy wait for the next call and share it; a lone request waits for nobody.
Sharing never costs a request its answer: when a shared call fails, each request's texts are tried again on their own,
so only the request whose text fails gets the error; and no request waits longer than its `timeout`.
"""
import os
import queue
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Callable


class PredictionTimeout(TimeoutError):
    """No answer within the request's time limit: the model is busy with, or stuck on, earlier work."""

    def __init__(self, seconds: float):
        super().__init__(f"no prediction within {seconds:g} s")
        self.seconds = seconds


class Coalescer:
    def __init__(self, predict_many: Callable[[list[str]], list[dict]],  # the real prediction, for any number of texts
                 max_texts: int = 64,  # beyond this a call's fixed cost is already shared thinly
                 ):
        self.predict_many, self.max_texts = predict_many, max_texts
        self._started_in_pid = None
        self._start_lock = threading.Lock()

    def predict(self, texts: list[str],
                timeout: float | None = None,  # seconds to wait for the answer; None: as long as it takes
                ) -> list[dict]:
        """`predict_many(texts)`, possibly computed together with other threads' texts; `PredictionTimeout` after `timeout`."""
        self._start_in_this_process()
        future = Future()
        self._queue.put((texts, future))
        try:
            return future.result(timeout)
        except FutureTimeout:
            future.cancel()  # still queued: it is dropped from its batch; already running: its answer is discarded
            raise PredictionTimeout(timeout) from None

    def _start_in_this_process(self) -> None:
        # Threads do not survive fork(): a gunicorn worker starts its own, with its own queue.
        if self._started_in_pid == os.getpid():
            return
        with self._start_lock:
            if self._started_in_pid != os.getpid():
                self._queue = queue.SimpleQueue()
                threading.Thread(target=self._serve_forever, name="coalescer", daemon=True).start()
                self._started_in_pid = os.getpid()

    def _next_batch(self) -> list[tuple[list[str], Future]]:
        batch = [self._queue.get()]
        size = len(batch[0][0])
        while size < self.max_texts:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
            size += len(batch[-1][0])
        return [(texts, future) for texts, future in batch if future.set_running_or_notify_cancel()]  # none whose wait ended

    def _serve_forever(self) -> None:
        while True:
            batch = self._next_batch()
            if not batch:
                continue
            try:
                predictions = self.predict_many([text for texts, _ in batch for text in texts])
            except BaseException as err:  # this thread goes on
                if len(batch) == 1:
                    batch[0][1].set_exception(err)
                else:  # a shared call: each request is tried alone, so only one whose own texts fail gets an error
                    for texts, future in batch:
                        self._answer_alone(texts, future)
                continue
            start = 0
            for texts, future in batch:
                future.set_result(predictions[start:start + len(texts)])
                start += len(texts)

    def _answer_alone(self, texts: list[str], future: Future) -> None:
        try:
            future.set_result(self.predict_many(texts))
        except BaseException as err:
            future.set_exception(err)
