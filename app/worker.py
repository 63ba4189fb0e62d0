"""gunicorn's threaded worker, taking a new connection only while one of its threads is free to serve it."""
import select
import time

from gunicorn.workers.gthread import ThreadWorker


MAX_WAIT_S = 0.05  # the longest a new connection waits for a free thread before a busy worker takes it anyway


class ThreadWorkerTakingItsShare(ThreadWorker):
    """gunicorn's `gthread` worker accepts every connection it can and queues it for its threads. When a client opens
    16 keep-alive connections at once, the worker that wakes first takes most of them and keeps them; with the GIL, that
    worker's one core then serves them all while the other workers idle (`make bench-http` saw 16/0 and 0/16 splits).
    This worker stops accepting while all its threads are busy, so a connection goes to a worker that can serve it.
    Connections it already holds are served as before; only new ones wait, in the kernel's queue, for a free thread,
    and none for long: when every worker is saturated, one that has waited MAX_WAIT_S is taken anyway.
    It also takes none while it hands connections back to a new sibling (`hold_back`, app/gunicorn.conf.py), and takes
    every waiting one when it stops, so that requests sent before SIGTERM are answered (`take_waiting_connections`)."""

    def __init__(self, *args, **kwargs):
        self.busy_threads = 0  # connections handed to the thread pool and not yet finished; changed on the main thread only
        self.accept_again_at = 0.0  # `time.monotonic()` before which this worker takes no new connection
        self.waiting_since = None  # since when a connection waits in the kernel's queue while this worker has no free thread
        super().__init__(*args, **kwargs)

    def hold_back(self, seconds: float) -> None:
        """Take no new connection for `seconds`: the clients of the connections this worker is closing, to hand them
        back, then reconnect to its siblings instead of to it. Called from a signal handler: it only sets a time and wakes
        the main loop (as gthread's own SIGTERM handler does), which then stops listening."""
        self.accept_again_at = time.monotonic() + seconds
        self.method_queue.defer(lambda: None)

    def may_accept(self) -> bool:
        """Whether to take a new connection now: not while holding back, and while every thread is busy only once one
        has waited MAX_WAIT_S."""
        now = time.monotonic()
        if now < self.accept_again_at:
            return False
        return self.busy_threads < self.cfg.threads or self.waited_too_long(now)

    # gthread's main loop listens while `nr_conns < worker_connections`: a worker that must not accept reports no room
    @property
    def worker_connections(self) -> int:
        return self._worker_connections if self.may_accept() else 0

    def waited_too_long(self, now: float) -> bool:
        """Whether a connection has waited MAX_WAIT_S for a free thread, here or at a sibling: with every worker busy, a
        client connecting would otherwise wait until some keep-alive client pauses (8.8 s at p99 in a soak run)."""
        if not select.select(self.sockets, [], [], 0)[0]:
            self.waiting_since = None
            return False
        if self.waiting_since is None:
            self.waiting_since = now
        return now - self.waiting_since >= MAX_WAIT_S

    def accept(self, listener):
        if not self.may_accept():  # the state changed since the loop last looked: it stops listening on its next turn
            return
        super().accept(listener)
        self.waiting_since = None  # the next waiting connection waits its own MAX_WAIT_S

    @worker_connections.setter
    def worker_connections(self, value: int) -> None:
        self._worker_connections = value

    def set_accept_enabled(self, enabled: bool) -> None:
        if not enabled and not self.alive:  # gthread's first step after SIGTERM: it accepts nothing more from here on
            self.take_waiting_connections()
        super().set_accept_enabled(enabled)

    def take_waiting_connections(self) -> None:
        """Accept every connection waiting in the kernel's queue: their requests were sent before the signal, and they
        waited only because all threads were busy. Served like the others, they are answered, not reset at exit."""
        for listener in self.sockets:
            listener.setblocking(False)
            while True:
                held = self.nr_conns
                super().accept(listener)  # gthread's own: it returns without a connection when none is waiting
                if self.nr_conns == held:
                    break

    def enqueue_req(self, conn):
        super().enqueue_req(conn)
        self.busy_threads += 1  # after: a connection the pool refuses (it raises while stopping) is never finished either

    def finish_request(self, conn, fs):
        self.busy_threads -= 1
        super().finish_request(conn, fs)
