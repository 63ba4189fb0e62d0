"""Coalescing concurrent single-tweet predictions: shared calls, yet each request gets exactly its own answer."""
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.coalesce import Coalescer, PredictionTimeout

pytestmark = pytest.mark.timeout(60)


class GatedModel:
    """Echoes texts; the first call blocks until released, so the requests behind it pile up."""

    def __init__(self):
        self.calls: list[list[str]] = []
        self.first_call_started, self.release = threading.Event(), threading.Event()

    def __call__(self, texts: list[str]) -> list[dict]:
        self.calls.append(list(texts))
        if len(self.calls) == 1:
            self.first_call_started.set()
            self.release.wait(10)
        if "boom" in texts:
            raise ValueError("the model failed")
        return [{"text": t, "label": f"label of {t}"} for t in texts]


def queue_behind_a_busy_call(pool, coalescer, model, texts):
    """Start a call for "t0", hold it inside the model, queue one request per text behind it; returns (first, queued) futures."""
    first = pool.submit(coalescer.predict, ["t0"])
    assert model.first_call_started.wait(10)
    queued = [pool.submit(coalescer.predict, [text]) for text in texts]
    while coalescer._queue.qsize() < len(texts):
        threading.Event().wait(0.01)
    return first, queued


def test_requests_that_wait_share_one_call_and_get_their_own_answers():
    model = GatedModel()
    coalescer = Coalescer(model)
    with ThreadPoolExecutor(12) as pool:
        first, waiting = queue_behind_a_busy_call(pool, coalescer, model, [f"t{i}" for i in range(1, 12)])
        model.release.set()
        assert first.result() == [{"text": "t0", "label": "label of t0"}]
        assert [f.result() for f in waiting] == [[{"text": f"t{i}", "label": f"label of t{i}"}] for i in range(1, 12)]
    assert model.calls == [["t0"], [f"t{i}" for i in range(1, 12)]]


def test_a_failed_shared_call_fails_only_the_request_whose_text_fails():
    model = GatedModel()
    coalescer = Coalescer(model)
    with ThreadPoolExecutor(4) as pool:
        first, (fine, doomed, also_fine) = queue_behind_a_busy_call(pool, coalescer, model, ["fine", "boom", "also fine"])
        model.release.set()
        first.result()
        assert fine.result() == [{"text": "fine", "label": "label of fine"}]
        assert also_fine.result() == [{"text": "also fine", "label": "label of also fine"}]
        with pytest.raises(ValueError, match="the model failed"):
            doomed.result()
    assert model.calls == [["t0"], ["fine", "boom", "also fine"], ["fine"], ["boom"], ["also fine"]]  # shared, then one by one
    assert coalescer.predict(["later"]) == [{"text": "later", "label": "label of later"}]


def test_a_lone_failing_request_is_not_tried_twice():
    model = GatedModel()
    model.release.set()
    coalescer = Coalescer(model)
    with pytest.raises(ValueError, match="the model failed"):
        coalescer.predict(["boom"])
    assert model.calls == [["boom"]]


def test_a_request_waits_at_most_its_timeout_and_is_then_dropped_from_the_queue():
    model = GatedModel()
    coalescer = Coalescer(model)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(coalescer.predict, ["t0"])
        assert model.first_call_started.wait(10)
        with pytest.raises(PredictionTimeout, match="no prediction within 0.2 s"):
            coalescer.predict(["stuck behind t0"], timeout=0.2)  # the model holds t0 until released
        model.release.set()
        assert first.result() == [{"text": "t0", "label": "label of t0"}]
    assert coalescer.predict(["next"], timeout=5) == [{"text": "next", "label": "label of next"}]
    assert model.calls == [["t0"], ["next"]]  # the request that gave up was never computed


def test_batches_stop_growing_at_max_texts():
    model = GatedModel()
    coalescer = Coalescer(model, max_texts=4)
    with ThreadPoolExecutor(11) as pool:
        first, rest = queue_behind_a_busy_call(pool, coalescer, model, [f"t{i}" for i in range(1, 11)])
        model.release.set()
        first.result()
        for future in rest:
            future.result()
    assert [len(call) for call in model.calls] == [1, 4, 4, 2]
