"""Concurrent single-tweet requests in one process answered by one pipeline call.

A pipeline call has a fixed cost (~0.4 ms: scikit-learn's checks and dispatch) that dwarfs the cost per tweet (~0.03 ms).
Requests that arrive while the model is busy wait for the next call and share it; a lone request waits for nobody.
"""
import os
import queue
import threading
from concurrent.futures import Future
from typing import Callable


class Coalescer:
    def __init__(self, predict_many: Callable[[list[str]], list[dict]],  # the real prediction, for any number of texts
                 max_texts: int = 64,  # beyond this a call's fixed cost is already shared thinly
                 ):
        self.predict_many, self.max_texts = predict_many, max_texts
        self._started_in_pid = None
        self._start_lock = threading.Lock()

    def predict(self, texts: list[str]) -> list[dict]:
        """`predict_many(texts)`, possibly computed together with other threads' texts."""
        self._start_in_this_process()
        pending = (texts, Future())
        self._queue.put(pending)
        return pending[1].result()

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
        return batch

    def _serve_forever(self) -> None:
        while True:
            batch = self._next_batch()
            try:
                predictions = self.predict_many([text for texts, _ in batch for text in texts])
            except BaseException as err:  # each waiting request fails as it would alone; this thread goes on
                for _, future in batch:
                    future.set_exception(err)
                continue
            start = 0
            for texts, future in batch:
                future.set_result(predictions[start:start + len(texts)])
                start += len(texts)
