"""Retry-After from the Arvados API: a 429 or 503 that says when to come back is retried no
sooner than that, still within --wait, as Vault's are (test_retry_after.py), with the same
parser and the same rule for a Retry-After past the deadline.

crunch-secrets reads an Arvados credential (no Vault reference, so no OpenBao is needed) from
the Arvados stand-in over HTTPS, whose outage knob answers the next API calls with a status and
a Retry-After header (test/arvados-standin/README.md). The stand-in's request log records when
each call arrived, so the tests measure the real gap between a refused call and its retry, and
count every call that was sent.
"""

from __future__ import annotations

import email.utils
import ssl
import time
import urllib.error
import urllib.request

import pytest

from harness import CANARIES
from test_arvados_source import ALICE_RUN1, CRED, container_token
from test_arvados_source import arvs  # noqa: F401 (a pytest fixture: the TLS stand-in)

pytestmark = pytest.mark.offline

REF = "arvados:credential/lab-db#secret"


@pytest.fixture
def standin(arvs):
    # A fresh world and request log for each test; an outage left on ends here too
    # (test_attack_today uses this fixture as well).
    arvs.control("POST", "reset")
    yield arvs
    arvs.control("POST", "reset")


def fetch(cs, arvs, wait: str):
    token = container_token(ALICE_RUN1)
    CANARIES.add("alice's container token (retry-after tests)", token)
    env = {"ARVADOS_API_HOST": arvs.host, "CRUNCH_SECRETS_ARVADOS_CACERT": arvs.ca,
           "ARVADOS_API_TOKEN": token, "S": REF}
    return cs.run(["run", "--no-manifest", "--wait", wait, "--", "{probe}"], env, token=None, timeout=90)


def api_calls(arvs) -> list[dict]:
    return [e for e in arvs.control("GET", "log")["items"] if e["path"].startswith("/arvados/v1/")]


def refused_and_retried(arvs, status: int) -> tuple[list[dict], float]:
    """The calls to the path first refused with `status`, and the gap before its retry."""
    calls = api_calls(arvs)
    refused = [e for e in calls if e["status"] == status]
    assert refused, f"no call was answered {status}: {calls}"
    path = refused[0]["path"]
    same = [e for e in calls if e["path"] == path]
    assert len(same) >= 2, f"{path} was not retried: {calls}"
    return same, same[1]["time"] - same[0]["time"]


def assert_delivered(r):
    assert r.code == 0, r.describe()
    assert r.env["S"] == CRED["lab-db"]["secret"], "the credential's secret was not delivered"


@pytest.mark.parametrize("status", [429, 503])
def test_delta_seconds_are_honoured(cs, standin, status):
    standin.control("POST", "outage", {"status": status, "retry_after": "2", "count": 1})
    r = fetch(cs, standin, "20s")
    assert_delivered(r)
    same, gap = refused_and_retried(standin, status)
    # One refused call and one retry: no request more.
    assert len(same) == 2, f"{len(same)} calls of {same[0]['path']}: " + r.describe()
    assert gap >= 2.0, f"retried {gap:.3f}s after a Retry-After of 2 s"
    assert gap < 4.0, f"retried only {gap:.3f}s after a Retry-After of 2 s"
    print(f"Arvados HTTP {status}, Retry-After: 2 -> retried after {gap:.3f}s")


def test_http_date_is_honoured(cs, standin):
    # An IMF-fixdate three seconds ahead (whole seconds, so 2 to 3 s from now).
    when = email.utils.formatdate(time.time() + 3, usegmt=True)
    standin.control("POST", "outage", {"status": 503, "retry_after": when, "count": 1})
    r = fetch(cs, standin, "20s")
    assert_delivered(r)
    same, gap = refused_and_retried(standin, 503)
    assert len(same) == 2, f"{len(same)} calls of {same[0]['path']}: " + r.describe()
    assert gap >= 1.9, f"retried {gap:.3f}s after a Retry-After date ~3 s ahead ({when})"
    assert gap < 5.0, f"retried only {gap:.3f}s after a Retry-After date ~3 s ahead ({when})"
    print(f"Arvados Retry-After: {when} -> retried after {gap:.3f}s")


@pytest.mark.parametrize("value", ["soon", "-5", "2.5"])
def test_malformed_header_is_ignored(cs, standin, value):
    standin.control("POST", "outage", {"status": 503, "retry_after": value, "count": 1})
    r = fetch(cs, standin, "20s")
    assert_delivered(r)
    same, gap = refused_and_retried(standin, 503)
    # The first retry's full jitter is 0 to 100 ms; a second at most is left for a busy machine.
    assert gap < 1.0, f"retried {gap:.3f}s after a malformed Retry-After {value!r}"


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_past_wait_gives_up_at_the_deadline(cs, standin, status):
    wait = 3.0
    standin.control("POST", "outage", {"status": status, "retry_after": "30"})
    r = fetch(cs, standin, f"{wait:g}s")
    assert r.code == 69, r.describe()
    assert r.report is None, "the command ran after a failure"
    calls = api_calls(standin)
    # The retry would come after the deadline: none is sent, and the run ends at the deadline.
    paths = [e["path"] for e in calls]
    assert len(paths) == len(set(paths)), f"a call was retried: {paths}"
    assert wait - 0.5 <= r.elapsed < wait + 3, f"gave up after {r.elapsed:.1f}s with --wait {wait:g}s"
    errors = [ln for ln in r.err.splitlines() if ln.startswith("crunch-secrets: error: ")]
    assert len(errors) == 1, r.describe()
    assert f"HTTP {status}" in errors[0], r.describe()
    assert "the server asked to retry after 30s" in errors[0], r.describe()
    print(f"Arvados HTTP {status}, Retry-After: 30, --wait {wait:g}s -> exit 69 after {r.elapsed:.2f}s, "
          f"{len(calls)} calls")


def test_rate_limited_calls_keep_to_retry_after(cs, standin):
    """Every call answered 429 with Retry-After: 3 and --wait 6s: each call is sent twice, 3 s
    apart, and the run gives up at the deadline (without the header: a retry every 0.1-2 s)."""
    wait = 6.0
    standin.control("POST", "outage", {"status": 429, "retry_after": "3"})
    r = fetch(cs, standin, f"{wait:g}s")
    assert r.code == 69, r.describe()
    same, gap = refused_and_retried(standin, 429)
    assert len(same) == 2, f"{len(same)} calls of {same[0]['path']} in {wait:g}s: " + r.describe()
    assert gap >= 3.0, f"retried {gap:.3f}s after a Retry-After of 3 s"
    assert r.elapsed < wait + 3, f"gave up after {r.elapsed:.1f}s with --wait {wait:g}s"
    assert "the server asked to retry after 3s" in r.err, r.describe()
    print(f"Arvados Retry-After: 3, --wait {wait:g}s -> {len(same)} calls, {gap:.3f}s apart, "
          f"exit 69 after {r.elapsed:.2f}s")


def test_outage_knob_without_retry_after_sends_no_header(standin):
    """The knob itself: the header is sent only when asked for, and `count` ends the outage."""
    ctx = ssl.create_default_context(cafile=standin.ca)
    url = f"https://{standin.host}/arvados/v1/containers/current"
    headers = {"Authorization": f"Bearer {container_token(ALICE_RUN1)}"}
    for body, want in (({"status": 503, "count": 1}, None), ({"status": 429, "retry_after": "7", "count": 1}, "7")):
        standin.control("POST", "outage", body)
        try:
            urllib.request.urlopen(urllib.request.Request(url, headers=headers), context=ctx, timeout=10)
            pytest.fail("the outage did not answer")
        except urllib.error.HTTPError as e:
            assert e.code == body["status"]
            assert e.headers.get("Retry-After") == want
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), context=ctx, timeout=10) as ok:
            assert ok.status == 200, "count 1 did not end the outage after one call"
