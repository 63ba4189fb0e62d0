"""Concurrent single-tweet requests in one process answered by one pipeline call.

A pipeline call has a fixed cost (setting up its arrays, scikit-learn's checks and dispatch) that dwarfs the cost per
tweet. Requests that arrive while the model is busy wait for the next call and share it; a lone request waits for nobody.
The request thread that finds the model idle makes the call itself, for every request waiting by then (flat combining):
no coalescing thread, so no hand-over between threads for a lone request (handing each request to a thread and back cost
a quarter of a worker's GIL time under load, in `Condition.notify`).
Sharing never costs a request its answer: when a shared call fails, each request's texts are tried again on their own,
so only the request whose text fails gets the error; and no request that waits for another's call waits longer than its
`timeout`.
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
        self._queue, self._computing = queue.SimpleQueue(), threading.Lock()  # the lock: held by the thread making a call
        self._pid, self._reset_lock = os.getpid(), threading.Lock()

    def predict(self, texts: list[str],
                timeout: float | None = None,  # seconds to wait for another thread's call; None: as long as it takes
                ) -> list[dict]:
        """`predict_many(texts)`, possibly computed together with other threads' texts; `PredictionTimeout` after `timeout`."""
        self._reset_after_fork()
        future = Future()
        self._queue.put((texts, future))
        # Whoever holds the lock looks at the queue again after letting go of it, so no request is left waiting unseen.
        while not self._queue.empty() and self._computing.acquire(blocking=False):
            try:
                while not self._queue.empty():
                    self._answer(self._next_batch())
            finally:
                self._computing.release()
        try:
            return future.result(timeout)
        except FutureTimeout:
            future.cancel()  # still queued: it is dropped from its batch; already running: its answer is discarded
            raise PredictionTimeout(timeout) from None

    def _reset_after_fork(self) -> None:
        # A gunicorn worker gets its own queue and lock: another process's lock may have been held when it forked.
        if self._pid == os.getpid():
            return
        with self._reset_lock:
            if self._pid != os.getpid():
                self._queue, self._computing = queue.SimpleQueue(), threading.Lock()
                self._pid = os.getpid()

    def _next_batch(self) -> list[tuple[list[str], Future]]:
        batch, size = [], 0
        while size < self.max_texts:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
            size += len(batch[-1][0])
        return [(texts, future) for texts, future in batch if future.set_running_or_notify_cancel()]  # none whose wait ended

    def _answer(self, batch: list[tuple[list[str], Future]]) -> None:
        if not batch:
            return
        try:
            predictions = self.predict_many([text for texts, _ in batch for text in texts])
        except Exception as err:
            if len(batch) == 1:
                batch[0][1].set_exception(err)
            else:  # a shared call: each request is tried alone, so only one whose own texts fail gets an error
                for texts, future in batch:
                    self._answer_alone(texts, future)
            return
        except BaseException as err:  # KeyboardInterrupt, SystemExit: every waiting request learns of it, then it goes on up
            for _, future in batch:
                future.set_exception(err)
            raise
        start = 0
        for texts, future in batch:
            future.set_result(predictions[start:start + len(texts)])
            start += len(texts)

    def _answer_alone(self, texts: list[str], future: Future) -> None:
        try:
            future.set_result(self.predict_many(texts))
        except Exception as err:
            future.set_exception(err)
