"""Retry-After: a 429 (a rate-limit quota) or a 503 (sealed, standby, overloaded, or a proxy in
front) that says when to come back is retried no sooner than that, still within --wait.

crunch-secrets runs behind the fault proxy (faultproxy.py) in front of a real OpenBao dev
server; the proxy records when each request arrived, so the tests measure the real gap between
a refused read and its retry, and count every read that was sent.
"""

from __future__ import annotations

import email.utils
import time

import pytest

from faultproxy import Action
from test_fault_matrix import assert_success, run_through

READ = "secret/data/app"


def refuse_first_read(status: int, retry_after: str | None):
    """Answers the first read of READ with `status` (and the header), then forwards."""
    def decide(n, m, p):
        if READ in p and decide.refused == 0:
            decide.refused += 1
            return Action("status", status, headers={"Retry-After": retry_after} if retry_after else {})
        return Action()
    decide.refused = 0
    return decide


def read_times(proxy) -> list[float]:
    with proxy.lock:
        return [r["time"] for r in proxy.requests if READ in r["path"]]


@pytest.mark.parametrize("status", [429, 503])
def test_delta_seconds_are_honoured(cs, bao, world, status):
    r, proxy = run_through(cs, bao, refuse_first_read(status, "2"), wait=20.0)
    assert_success(r, world)
    times = read_times(proxy)
    # One refused read and one retry: no request more.
    assert len(times) == 2, f"{len(times)} reads of {READ}: " + r.describe()
    gap = times[1] - times[0]
    assert gap >= 2.0, f"retried {gap:.3f}s after a Retry-After of 2 s"
    assert gap < 4.0, f"retried only {gap:.3f}s after a Retry-After of 2 s"
    # The info line announces the delay that is honoured, not the jittered backoff.
    assert "next try in 2.0s" in r.err, r.describe()
    assert "Retry-After" in r.err, r.describe()
    print(f"HTTP {status}, Retry-After: 2 -> retried after {gap:.3f}s")


def test_http_date_is_honoured(cs, bao, world):
    # An IMF-fixdate three seconds ahead (whole seconds, so 2 to 3 s from now).
    when = email.utils.formatdate(time.time() + 3, usegmt=True)
    r, proxy = run_through(cs, bao, refuse_first_read(429, when), wait=20.0)
    assert_success(r, world)
    times = read_times(proxy)
    assert len(times) == 2, f"{len(times)} reads of {READ}: " + r.describe()
    gap = times[1] - times[0]
    assert gap >= 1.9, f"retried {gap:.3f}s after a Retry-After date ~3 s ahead ({when})"
    assert gap < 5.0, f"retried only {gap:.3f}s after a Retry-After date ~3 s ahead ({when})"
    print(f"Retry-After: {when} -> retried after {gap:.3f}s")


@pytest.mark.parametrize("value", ["soon", "-5", "2.5", "1e3", "Fri, 99 Foo 2026 25:61:61 GMT"])
def test_malformed_header_is_ignored(cs, bao, world, value):
    r, proxy = run_through(cs, bao, refuse_first_read(429, value), wait=20.0)
    assert_success(r, world)
    times = read_times(proxy)
    assert len(times) == 2, f"{len(times)} reads of {READ}: " + r.describe()
    gap = times[1] - times[0]
    # The first retry's full jitter is 0 to 100 ms; a second at most is left for a busy machine.
    assert gap < 1.0, f"retried {gap:.3f}s after a malformed Retry-After {value!r}"
    assert "Retry-After" not in r.err, r.describe()


def test_retry_after_past_wait_gives_up_at_the_deadline(cs, bao):
    wait = 3.0
    r, proxy = run_through(cs, bao, lambda n, m, p: Action("status", 429, headers={"Retry-After": "30"})
                           if READ in p else Action(), wait=wait)
    assert r.code == 69, r.describe()
    assert r.report is None, "the command ran after a failure"
    times = read_times(proxy)
    # The retry would come after the deadline: none is sent, and the run ends at the deadline.
    assert len(times) == 1, f"{len(times)} reads of {READ}: " + r.describe()
    assert wait - 0.5 <= r.elapsed < wait + 3, f"gave up after {r.elapsed:.1f}s with --wait {wait}s"
    errors = [ln for ln in r.err.splitlines() if ln.startswith("crunch-secrets: error: ")]
    assert len(errors) == 1, r.describe()
    assert "the server asked to retry after 30s" in errors[0], r.describe()
    print(f"Retry-After: 30, --wait {wait}s -> exit 69 after {r.elapsed:.2f}s, 1 read")


def test_rate_limited_reads_keep_to_retry_after(cs, bao):
    """The adversarial review's case: every read answered 429 with Retry-After: 3 and --wait 6s
    sent 10 reads (the first retry after 22 ms); honoured, two are sent, 3 s apart."""
    wait = 6.0
    r, proxy = run_through(cs, bao, lambda n, m, p: Action("status", 429, headers={"Retry-After": "3"})
                           if READ in p else Action(), wait=wait)
    assert r.code == 69, r.describe()
    times = read_times(proxy)
    assert len(times) == 2, f"{len(times)} reads of {READ} in {wait}s: " + r.describe()
    gap = times[1] - times[0]
    assert gap >= 3.0, f"retried {gap:.3f}s after a Retry-After of 3 s"
    assert r.elapsed < wait + 3, f"gave up after {r.elapsed:.1f}s with --wait {wait}s"
    assert "the server asked to retry after 3s" in r.err, r.describe()
    print(f"Retry-After: 3, --wait {wait}s -> {len(times)} reads, {gap:.3f}s apart, exit 69 after {r.elapsed:.2f}s")
