"""Every Prometheus object of the service, in one place, with conventional names.

Labels never carry a jti, sub, token or key: only bounded sets (route templates, kinds,
sources, reasons).
"""

from __future__ import annotations

import platform
from typing import Final

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

from revoker import __version__

# ``*_created`` series double the scrape size and no dashboard here uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]

LATENCY_BUCKETS: Final = (0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.0075,
                          0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

HTTP_REQUESTS = Counter("revoker_http_requests", "HTTP requests answered",
                        ["route", "method", "status"])
HTTP_DURATION = Histogram("revoker_http_request_duration_seconds",
                          "Time to answer an HTTP request", ["route"], buckets=LATENCY_BUCKETS)
CHECKS = Counter("revoker_checks", "Revocation checks by result (ok, revoked, error)",
                 ["result"])
REVOCATIONS = Counter("revoker_revocations", "Revocations stored, by kind and source",
                      ["kind", "source"])
UNREVOCATIONS = Counter("revoker_unrevocations", "Revocations removed by an admin", ["kind"])
STORE_DURATION = Histogram("revoker_store_operation_duration_seconds",
                           "Time of one store operation", ["operation"],
                           buckets=LATENCY_BUCKETS)
STORE_ERRORS = Counter("revoker_store_errors", "Store operations that failed", ["operation"])
FAIL_OPEN = Counter("revoker_fail_open", "Requests accepted without revocation state "
                    "because the store failed and REVOKER_FAIL_MODE=open")
TOKEN_REJECTIONS = Counter("revoker_token_rejections", "Tokens refused, by reason", ["reason"])
# Sampled in the background by one process (revoker.active), never computed per scrape.
REVOCATIONS_ACTIVE = Gauge("revoker_revocations_active",
                           "Revocations currently stored, by kind, as of the last sample "
                           "(see revoker_revocations_active_sampled_timestamp_seconds)",
                           ["kind"], multiprocess_mode="livemax")
ACTIVE_SAMPLED = Gauge("revoker_revocations_active_sampled_timestamp_seconds",
                       "Unix time at which revoker_revocations_active was last counted",
                       multiprocess_mode="livemax")
WORKER_RESTARTS = Counter("revoker_worker_restarts", "Worker processes restarted by the "
                          "supervisor after they died (REVOKER_WORKERS > 1)")
# An Info metric is not aggregated in multiprocess mode; a constant gauge is.
BUILD_INFO = Gauge("revoker_build_info", "Version of the running revoker (always 1)",
                   ["version", "python"], multiprocess_mode="max")
BUILD_INFO.labels(version=__version__, python=platform.python_version()).set(1)
