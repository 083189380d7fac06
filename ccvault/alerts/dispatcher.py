"""The Dispatcher feeds channels without ever holding up its caller (the daemon's check loop):
`submit` only appends to a bounded per-channel queue, and one worker thread per channel sends
in order, retrying with backoff, so a slow or dead SMTP server cannot delay the webhook, nor
the webhook the e-mail."""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import structlog

from ccvault.alerts.model import Alert, Channel, scrub, secrets_of
from ccvault.host import threads

log = structlog.get_logger("ccvault.alerts")


@dataclass
class _Item:
    alert: Alert
    submitted: float  # time.monotonic()
    attempt: int = 0


@dataclass
class _Worker:
    """One channel's queue and thread; `head` is the notification being sent or retried."""

    channel: Channel
    queue: collections.deque[_Item] = field(default_factory=collections.deque)
    head: _Item | None = None
    thread: threading.Thread | None = None


class Dispatcher:
    """Bounded queue + worker thread per channel: submit() never blocks, order per channel
    is kept (a resolved never overtakes its firing), failures are retried with backoff."""

    def __init__(
        self,
        channels: list[Channel],
        *,
        backoff_s: float = 2.0,
        max_backoff_s: float = 300.0,
        give_up_after_s: float = 3600.0,
        queue_size: int = 1000,
    ) -> None:
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.give_up_after_s = give_up_after_s
        self.queue_size = max(1, queue_size)
        self._workers = [_Worker(channel) for channel in channels]
        self._cond = threading.Condition()
        self._stopping = False
        self._started = False

    @property
    def channels(self) -> list[str]:
        return [w.channel.name for w in self._workers]

    def start(self) -> None:
        """Starts one daemon thread per channel (a hung send must not block process exit)."""
        with self._cond:
            if self._started or self._stopping:
                return
            self._started = True
            for worker in self._workers:
                worker.thread = threads.Thread(
                    target=self._run,
                    args=(worker,),
                    daemon=True,
                    name=f"ccvault-alerts-{worker.channel.name}",
                )
                worker.thread.start()

    def submit(self, alert: Alert) -> None:
        """Queues the alert for every channel; never blocks on I/O and never raises."""
        try:
            self._submit(alert)
        except Exception as exc:  # a bug here must not take the caller's loop down
            log.error("alert.submit_failed", alert=alert.name, error=repr(exc))

    def _submit(self, alert: Alert) -> None:
        now = time.monotonic()
        with self._cond:
            for worker in self._workers:
                if self._stopping:
                    log.warning(
                        "alert.dropped",
                        channel=worker.channel.name,
                        reason="stopped",
                        **_fields(alert),
                    )
                    continue
                if len(worker.queue) >= self.queue_size:
                    old = worker.queue.popleft()
                    log.warning(
                        "alert.dropped",
                        channel=worker.channel.name,
                        reason="queue full",
                        queue_size=self.queue_size,
                        **_fields(old.alert),
                    )
                worker.queue.append(_Item(alert, now))
            self._cond.notify_all()

    def pending(self) -> dict[str, int]:
        """Undelivered notifications per channel (queued + the one in flight)."""
        with self._cond:
            return {w.channel.name: len(w.queue) + (w.head is not None) for w in self._workers}

    def wait_idle(self, timeout: float) -> bool:
        """Waits until every queue is delivered or given up (a drain before stop, in tests)."""
        with self._cond:
            return self._cond.wait_for(
                lambda: all(not w.queue and w.head is None for w in self._workers), timeout
            )

    def stop(self, timeout: float = 5.0) -> None:
        """Ends the workers (retry waits wake at once; a send in progress may finish within
        timeout) and logs every notification left undelivered."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for worker in self._workers:
            if worker.thread is not None:
                worker.thread.join(max(0.0, deadline - time.monotonic()))
        with self._cond:
            for worker in self._workers:
                left = ([worker.head] if worker.head else []) + list(worker.queue)
                for item in left:
                    log.warning(
                        "alert.undelivered",
                        channel=worker.channel.name,
                        attempts=item.attempt,
                        **_fields(item.alert),
                    )
                worker.queue.clear()
                worker.head = None
            self._cond.notify_all()

    # -- worker thread --

    def _run(self, worker: _Worker) -> None:
        while True:
            item = self._next(worker)
            if item is None:
                return
            if not self._deliver(worker, item):
                return  # interrupted by stop(), which logs the head as undelivered
            with self._cond:
                if worker.head is item:
                    worker.head = None
                self._cond.notify_all()

    def _next(self, worker: _Worker) -> _Item | None:
        """Blocks until there is something to send; None once stopping."""
        with self._cond:
            self._cond.wait_for(lambda: self._stopping or worker.queue)
            if self._stopping:
                return None
            worker.head = worker.queue.popleft()
            return worker.head

    def _deliver(self, worker: _Worker, item: _Item) -> bool:
        """Retries the head until delivered or given up (True), or stopping (False)."""
        channel = worker.channel
        while True:
            item.attempt += 1
            try:
                channel.send(item.alert)
            except Exception as exc:
                if self._retry(channel, item, exc):
                    continue
                return not self._stopping
            log.info(
                "alert.delivered", channel=channel.name, attempt=item.attempt, **_fields(item.alert)
            )
            return True

    def _retry(self, channel: Channel, item: _Item, exc: Exception) -> bool:
        """Logs the failure and waits the backoff: True to try again, False when given up
        or stopping."""
        if self._stopping:  # stop() has already logged it as undelivered
            return False
        error = scrub(_describe(exc), secrets_of(channel))
        delay = min(self.max_backoff_s, self.backoff_s * 2 ** (item.attempt - 1))
        waited = time.monotonic() - item.submitted
        if waited + delay > self.give_up_after_s:
            log.error(
                "alert.given_up",
                channel=channel.name,
                attempts=item.attempt,
                error=error,
                after_s=round(waited, 1),
                **_fields(item.alert),
            )
            return False
        log.warning(
            "alert.delivery_failed",
            channel=channel.name,
            attempt=item.attempt,
            error=error,
            retry_in_s=round(delay, 3),
            **_fields(item.alert),
        )
        with self._cond:
            stopped = self._cond.wait_for(lambda: self._stopping, delay)
        return not stopped


def _fields(alert: Alert) -> dict[str, Any]:
    return {
        "alert": alert.name,
        "labels": alert.labels,
        "status": alert.status,
        "fingerprint": alert.fingerprint,
    }


def _describe(exc: BaseException) -> str:
    """`Type: message`, never a traceback: frames' locals could hold a header or password."""
    text = str(exc) or repr(exc)
    return f"{type(exc).__name__}: {text}"
