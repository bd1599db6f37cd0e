"""Self-tests of the harness: the leak scanner finds canaries and never prints them."""

from __future__ import annotations

import json

import pytest

from harness import Canaries


@pytest.mark.offline
def test_scanner_reports_index_not_value():
    c = Canaries()
    v1 = c.new("first")
    v2 = c.new("second", "\nwith newline")
    hits = c.findings(b"prefix " + v2.encode() + b" suffix", "stderr")
    assert hits == [f"canary 2 (second) found in stderr at offset 7"]
    assert v1 not in hits[0] and v2 not in hits[0]
    # An escaped rendering is still found through the unique hex marker.
    hits = c.findings(json.dumps({"x": v2}), "log")
    assert len(hits) == 1 and hits[0].startswith("canary 2 ")
    assert c.findings("nothing here", "stdout") == []


def test_runner_detects_a_leak_end_to_end(cs, world):
    """If the child printed a secret, the runner would fail the test without quoting it."""
    pw = world.values["password"]
    with pytest.raises(pytest.fail.Exception) as exc:
        cs.run(["run", "--no-manifest", "--", "{probe}"], {"PROBE_ECHO": pw})
    msg = str(exc.value)
    assert "found in stdout at offset 0" in msg, "leak not reported as expected"
    assert pw not in msg and pw[7:] not in msg, "the leak report quotes the secret"
