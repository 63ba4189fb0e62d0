"""gunicorn's threaded worker, taking a new connection only while one of its threads is free to serve it."""
import time

from gunicorn.workers.gthread import ThreadWorker


class ThreadWorkerTakingItsShare(ThreadWorker):
    """gunicorn's `gthread` worker accepts every connection it can and queues it for its threads. When a client opens
    16 keep-alive connections at once, the worker that wakes first takes most of them and keeps them; with the GIL, that
    worker's one core then serves them all while the other workers idle (`make bench-http` saw 16/0 and 0/16 splits).
    This worker stops accepting while all its threads are busy, so a connection goes to a worker that can serve it.
    Connections it already holds are served as before; only new ones wait, in the kernel's queue, for a free thread.
    It also takes none while it hands connections back to a new sibling (`hold_back`, app/gunicorn.conf.py), and takes
    every waiting one when it stops, so that requests sent before SIGTERM are answered (`take_waiting_connections`)."""

    def __init__(self, *args, **kwargs):
        self.busy_threads = 0  # connections handed to the thread pool and not yet finished; changed on the main thread only
        self.accept_again_at = 0.0  # `time.monotonic()` before which this worker takes no new connection
        super().__init__(*args, **kwargs)

    def hold_back(self, seconds: float) -> None:
        """Take no new connection for `seconds`: the clients of the connections this worker is closing, to hand them
        back, then reconnect to its siblings instead of to it (gthread's loop looks again at least once a second)."""
        self.accept_again_at = time.monotonic() + seconds

    # gthread's main loop accepts while `nr_conns < worker_connections`: a worker that must not accept reports no room
    @property
    def worker_connections(self) -> int:
        if self.busy_threads >= self.cfg.threads or time.monotonic() < self.accept_again_at:
            return 0
        return self._worker_connections

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
                self.accept(listener)  # gthread's: it returns without a connection when none is waiting
                if self.nr_conns == held:
                    break

    def enqueue_req(self, conn):
        super().enqueue_req(conn)
        self.busy_threads += 1  # after: a connection the pool refuses (it raises while stopping) is never finished either

    def finish_request(self, conn, fs):
        self.busy_threads -= 1
        super().finish_request(conn, fs)
