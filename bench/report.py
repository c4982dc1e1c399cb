"""The printed table and the issue's targets, computed from one run's rows."""

from __future__ import annotations

from typing import Any

CHECK = "GET /v1/check/{jti}"


def _find(rows: list[Any], name: str, workers: int) -> Any | None:
    return next((r for r in rows if r.name == name and r.workers == workers), None)


def render(rows: list[Any], extra: dict[str, Any]) -> str:
    head = (f"| {'row':<36} | w | {'req/s':>8} | {'p50 ms':>6} | {'p99 ms':>6} | "
            f"{'p99.9':>6} | {'µs CPU/req':>10} | {'redis µs':>8} | {'wrk µs':>6} | "
            f"{'non2xx':>6} | {'x hello':>7} | {'x naive':>7} |")
    lines = [head, "|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|"]
    for r in rows:
        m = r.measure
        hello, naive = _find(rows, "hello", r.workers), _find(rows, "naive", r.workers)
        x_hello = f"{m.rps / hello.measure.rps:.2f}" if hello else "-"
        x_naive = f"{m.rps / naive.measure.rps:.2f}" if naive else "-"
        lines.append(f"| {r.name:<36} | {r.workers} | {m.rps:>8.0f} | {m.p50_ms:>6.2f} | "
                     f"{m.p99_ms:>6.2f} | {m.p999_ms:>6.2f} | {m.server_cpu_us:>10.1f} | "
                     f"{m.redis_cpu_us:>8.1f} | {m.wrk_cpu_us:>6.1f} | {m.non2xx:>6} | "
                     f"{x_hello:>7} | {x_naive:>7} |")
    for command, rb in extra.get("redis_benchmark", {}).items():
        lines.append(f"| redis-benchmark {command:<20} | - | {rb['rps']:>8.0f} | "
                     f"{rb['p50_ms']:>6.2f} | {rb['p99_ms']:>6.2f} | {'-':>6} | {'-':>10} | "
                     f"{'-':>8} | {'-':>6} | {'-':>6} | {'-':>7} | {'-':>7} |")
    return "\n".join(lines)


def targets(rows: list[Any], extra: dict[str, Any]) -> list[str]:
    """The issue's targets, each with the figure it was judged on."""
    out: list[str] = []

    def verdict(label: str, ok: bool, figure: str) -> None:
        out.append(f"{'PASS' if ok else 'FAIL'}  {label}: {figure}")

    hello, naive = _find(rows, "hello", 2), _find(rows, "naive", 2)
    for mode in ("strict", "mirror"):
        check = _find(rows, f"{mode} check {CHECK}", 2)
        if check and hello:
            ratio = check.measure.rps / hello.measure.rps
            verdict(f"{mode} check 2w >= 0.8x hello", ratio >= 0.8, f"{ratio:.2f}x")
        if check and naive:
            ratio = check.measure.rps / naive.measure.rps
            verdict(f"{mode} check 2w >= 2.5x naive", ratio >= 2.5, f"{ratio:.2f}x")
        if check:
            verdict(f"{mode} check 2w p99 <= 5 ms", check.measure.p99_ms <= 5,
                    f"{check.measure.p99_ms:.2f} ms")
        authz = _find(rows, f"{mode} authz RS256 repeated", 2)
        if authz and hello:
            ratio = authz.measure.rps / hello.measure.rps
            verdict(f"{mode} authz RS256 repeated 2w >= 0.6x hello", ratio >= 0.6,
                    f"{ratio:.2f}x")
        revoke = _find(rows, f"{mode} revoke POST /v1/revocations", 2)
        if revoke:
            verdict(f"{mode} revokes 2w >= 10k/s", revoke.measure.rps >= 10_000,
                    f"{revoke.measure.rps:.0f}/s")
        pyjwt = extra.get("pyjwt_decode_per_s", {}).get("ES256")
        distinct = _find(rows, f"{mode} authz ES256 distinct", 1)
        if pyjwt and distinct:
            out.append(f"INFO  {mode} authz ES256 distinct 1w / bare PyJWT decode loop: "
                       f"{distinct.measure.rps / pyjwt:.2f} ({distinct.measure.rps:.0f} vs "
                       f"{pyjwt:.0f}/s)")
    prop = extra.get("propagation_ms")
    if prop:
        for label, figures in prop.items():
            verdict(f"mirror propagation p99 <= 50 ms ({label})", figures["p99"] <= 50,
                    f"p50 {figures['p50']:.2f} ms, p99 {figures['p99']:.2f} ms")
    memory = extra.get("memory", {})
    if "redis_bytes_per_jti_record_only" in memory:
        figure = memory["redis_bytes_per_jti_record_only"]
        verdict("Redis bytes per revoked jti (record, no reason) <= 160", figure <= 160,
                f"{figure} B (+{memory['redis_stream_bytes_per_event']} B of audit event; "
                f"bare SET EXAT {memory['set_exat_bytes_per_key']} B; mirror "
                f"{memory.get('mirror_bytes_per_entry')} B/entry per worker)")
    return out
