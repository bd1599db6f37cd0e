"""--redact: the child's output passes through crunch-secrets, which replaces every delivered
value (raw, base64, base64url, percent-encoded) with [redacted:<name>] — also when a value is
split across writes — and leaves every other byte alone; under a terminal the child still gets
a terminal (pty) with the same window size, and colour and line endings survive."""

from __future__ import annotations

import base64
import fcntl
import os
import struct
import subprocess
import sys
import termios
import threading
import urllib.parse

from harness import crunch_secrets_bin, fail
from supervised import Supervised

WRITER = r"""
import base64, os, sys, time, urllib.parse
v = os.environ["X"].encode()
out = sys.stdout.buffer
out.write(b"before:"); out.flush()
for i in range(0, len(v), 3):
    out.write(v[i:i + 3]); out.flush(); time.sleep(0.01)
out.write(b":after\n")
out.write(b"b64=" + base64.b64encode(v) + b"\n")
out.write(b"b64url=" + base64.urlsafe_b64encode(v).rstrip(b"=") + b"\n")
out.write(b"url=" + urllib.parse.quote(v, safe="").encode() + b"\n")
out.write(b"almost=" + v[:17] + b"|\n")
out.flush()
sys.stderr.buffer.write(b"err:" + v + b"\n"); sys.stderr.flush()
"""


def test_values_and_encodings_are_redacted_even_split_across_writes(cs, bao, world):
    v = world.specials["quotes"].encode()
    run = Supervised(cs, ["run", "--redact", "--no-manifest", "--", sys.executable, "-c", WRITER],
                     {"X": "vault:secret/data/special#quotes"}, bao=bao)
    assert run.wait(30) == 0, run.describe()
    tag = b"[redacted:secret/data/special]"
    expected = (b"before:" + tag + b":after\n" + b"b64=" + tag + b"\n" + b"b64url=" + tag + b"\n"
                + b"url=" + tag + b"\n" + b"almost=" + v[:17] + b"|\n")
    # `almost` is a prefix of the value (short of the canary's unique part): no form matches,
    # every byte passes unchanged.
    if run.stdout != expected:
        fail(f"stdout differs from the expected redaction ({len(run.stdout)} vs {len(expected)} bytes)")
    assert run.stderr.startswith(b"err:" + tag + b"\n"), run.describe()
    for form in (v, base64.b64encode(v), urllib.parse.quote(v, safe="").encode()):
        assert form not in run.stdout + run.stderr


def test_binary_output_is_byte_identical(cs, bao, world):
    d = cs.tmpfs_dir()
    blob = bytearray(os.urandom(1 << 20))
    # Near misses that the redactor must hold back and then release unchanged.
    v = world.values["password"].encode()
    for i, n in enumerate((1, 7, len(v) - 1)):
        at = 1000 + i * 5000
        blob[at: at + n] = v[:n]
        # The byte after a near miss must not complete it (a random one did, 1 time in 256).
        blob[at + n] = (v[n] + 1) % 256
    data = bytes(blob)
    if v in data:
        fail("the random blob happens to contain the value; run again")
    (d / "blob").write_bytes(data)
    run = Supervised(cs, ["run", "--redact", "--no-manifest", "--", "cat", str(d / "blob")],
                     {"X": "vault:secret/data/app#password"}, bao=bao)
    assert run.wait(30) == 0, run.describe()
    if run.stdout != data:
        fail(f"binary output changed: {len(run.stdout)} bytes out, {len(data)} in")


TTY_CHILD = r"""
import os, sys
print("stdout-tty=%s stderr-tty=%s" % (os.isatty(1), os.isatty(2)))
print("size=%d,%d" % os.get_terminal_size(1))
sys.stdout.write("\x1b[31mred\x1b[0m value=" + os.environ["X"] + "\n")
sys.stdout.flush()
"""


def test_the_child_keeps_a_terminal_under_a_pty(cs, bao, world):
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
    env = cs.base_env(bao, "root")
    env["X"] = "vault:secret/data/app#password"
    env["CRUNCH_SECRETS_DIR"] = str(cs.tmpfs_dir() / "secrets")
    proc = subprocess.Popen([str(crunch_secrets_bin()), "run", "--redact", "--no-manifest", "--",
                             sys.executable, "-c", TTY_CHILD],
                            env=env, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    chunks: list[bytes] = []

    def pump():
        while True:
            try:
                b = os.read(master, 65536)
            except OSError:  # EIO: every writer has closed the terminal
                break
            if not b:
                break
            chunks.append(b)

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    try:
        code = proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        fail("crunch-secrets did not exit under the pty")
    t.join(10)
    os.close(master)
    out = b"".join(chunks)
    cs.scan(out, "terminal output")
    assert code == 0, out.decode(errors="replace")[-2000:]
    text = out.decode(errors="replace")
    assert "stdout-tty=True stderr-tty=True" in text, text
    assert "size=101,33" in text, text
    # Colour codes pass unchanged; the child's "\n" became "\r\n" once (by the outer terminal),
    # not twice.
    assert "\x1b[31mred\x1b[0m value=[redacted:secret/data/app]\r\n" in text, repr(text)
    assert "\r\r\n" not in text
