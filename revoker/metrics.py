"""Every Prometheus object of the service, in one place, with conventional names.

Labels never carry a jti, sub, token or key: only bounded sets (route templates, kinds,
sources, reasons).
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge, Histogram, Info

from revoker import __version__

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
REVOCATIONS_ACTIVE = Gauge("revoker_revocations_active",
                           "Revocations currently stored, by kind", ["kind"],
                           multiprocess_mode="livemax")
BUILD_INFO = Info("revoker_build", "Version of the running revoker")
BUILD_INFO.info({"version": __version__})
