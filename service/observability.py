"""Prometheus metrics: jobs by kind/status and job durations (queried at scrape), request latencies."""

import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from db.enums import TERMINAL_STATUSES
from db.models import Job

log = logging.getLogger(__name__)

DURATION_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, float("inf"))


class JobCollector(Collector):
    """Reads the job table at scrape time, so the figures are right across API replicas and restarts."""

    def __init__(self, maker: "sessionmaker[Session] | None" = None) -> None:
        self.maker = maker
        self._lock = threading.Lock()  # concurrent scrapes take one connection, not one each

    def collect(self) -> Iterator[Metric]:
        if self.maker is None:
            return
        try:
            with self._lock, self.maker() as session:
                counts = session.execute(select(Job.kind, Job.status, func.count()).group_by(Job.kind, Job.status)).all()
                finished = session.execute(
                    select(Job.kind, Job.status, Job.started_at, Job.finished_at).where(
                        Job.status.in_(list(TERMINAL_STATUSES)), Job.started_at.is_not(None),
                        Job.finished_at.is_not(None))
                ).all()
        except Exception:
            log.warning("job metrics unavailable (database unreachable?)", exc_info=True)
            return
        gauge = GaugeMetricFamily("molrg_jobs", "Jobs by kind and status", labels=["kind", "status"])
        for kind, status, n in counts:
            gauge.add_metric([str(kind), str(status)], float(n))
        yield gauge
        per: dict[tuple[str, str], list[float]] = {}
        for row in finished:
            started, finished_at = row.started_at, row.finished_at
            if started is None or finished_at is None:  # excluded by the query; keeps the types honest
                continue
            if started.tzinfo is None:
                started = started.replace(tzinfo=UTC)
            if finished_at.tzinfo is None:
                finished_at = finished_at.replace(tzinfo=UTC)
            per.setdefault((str(row.kind), str(row.status)), []).append(
                max(0.0, (finished_at - started).total_seconds()))
        hist = HistogramMetricFamily("molrg_job_duration_seconds", "Run time (started -> finished) of finished jobs",
                                     labels=["kind", "status"])
        for (kind_label, status_label), durations in sorted(per.items()):
            buckets = [(str(float(b)) if b != float("inf") else "+Inf", float(sum(d <= b for d in durations)))
                       for b in DURATION_BUCKETS]
            hist.add_metric([kind_label, status_label], buckets, sum(durations))
        yield hist


class CapacityCollector(Collector):
    """This process's admission state: database slots in use and queued requests, open event streams."""

    def __init__(self) -> None:
        self.sources: tuple[Any, Any, Any] | None = None  # (DbGate, StreamCounter, JobWatcher), set by the lifespan

    def collect(self) -> Iterator[Metric]:
        if self.sources is None:
            return
        gate, streams, watcher = self.sources
        for name, doc, value in (
            ("molrg_db_slots_in_use", "Requests doing database work now (at most MOLRG_DB_POOL_SIZE)", gate.in_use),
            ("molrg_db_queue_waiting", "Requests waiting for a database slot", gate.waiting),
            ("molrg_sse_streams_open", "Open event streams (GET /jobs/{id}/events)", streams.total),
            ("molrg_sse_job_watches", "Jobs polled for open event streams", len(watcher.watches)),
        ):
            yield GaugeMetricFamily(name, doc, value=float(value))


class Metrics:
    """One registry per app (tests create many apps in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs = JobCollector()
        self.registry.register(self.jobs)
        self.capacity = CapacityCollector()
        self.registry.register(self.capacity)
        self.requests = Histogram(
            "molrg_http_request_duration_seconds", "HTTP request latency by route template and status",
            ["method", "route", "status"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )


class RequestMetricsMiddleware:
    """Times every HTTP request; labels use the route template (bounded cardinality)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.requests.labels(scope.get("method", ""), route_template(scope), str(status)).observe(
                time.perf_counter() - start)


def route_template(scope: Scope) -> str:
    """``/api/v1/jobs/{job_id}`` rather than the concrete path; ``unmatched`` when no route matched."""
    if scope.get("route") is None:
        return "unmatched"
    path = str(scope.get("path", ""))
    # Path parameters sit at the end of our templates: replace from the right.
    for name, value in reversed(list((scope.get("path_params") or {}).items())):
        head, sep, tail = path.rpartition(str(value))
        if sep and str(value):
            path = head + "{" + name + "}" + tail
    return path
