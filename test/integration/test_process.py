"""The exec'd command: exit status, PATH lookup, 126/127, stdio, fds, signal mask, dumpable."""

from __future__ import annotations

import os
import stat

RUN = ["run", "--no-manifest", "--", "{probe}"]
REF = {"X": "vault:secret/data/app#password"}


def test_exit_status_passed_through(cs):
    for status in (0, 7, 255):
        r = cs.run(RUN, dict(REF), probe_exit=status)
        assert r.code == status, r.describe()
        assert r.report is not None


def test_exec_replaces_process(cs):
    r = cs.run(RUN, dict(REF))
    assert r.code == 0, r.describe()
    assert r.report["pid"] == r.pid, "the command is not crunch-secrets' own process (no exec)"


def test_command_found_in_path(cs, world):
    from harness import probe_bin
    pb = probe_bin()
    r = cs.run(["run", "--no-manifest", "--", pb.name, "arg"], dict(REF, PATH=f"/nonexistent:{pb.parent}:/usr/bin:/bin"))
    assert r.code == 0, r.describe()
    assert r.env["X"] == world.values["password"]
    assert r.argv[1:] == ["arg"]


def test_command_not_found_127(cs):
    r = cs.run(["run", "--no-manifest", "--", "no-such-command-xyz"], dict(REF))
    assert r.code == 127, r.describe()
    r = cs.run(["run", "--no-manifest", "--", "/nonexistent/cmd"], dict(REF))
    assert r.code == 127, r.describe()


def test_command_not_executable_126(cs):
    d = cs.tmpfs_dir()
    p = d / "notexec"
    p.write_text("#!/bin/sh\nexit 0\n")
    os.chmod(p, 0o644)
    r = cs.run(["run", "--no-manifest", "--", str(p)], dict(REF))
    assert r.code == 126, r.describe()
    r = cs.run(["run", "--no-manifest", "--", str(d)], dict(REF))
    assert r.code == 126, r.describe()


def test_missing_command_is_usage_error(cs):
    r = cs.run(["run", "--no-manifest"], dict(REF))
    assert r.code == 64, r.describe()
    r = cs.run(["run", "--no-manifest", "--no-such-option", "--", "{probe}"], dict(REF))
    assert r.code == 64, r.describe()


def test_stdin_stdout_untouched(cs, world):
    d = cs.tmpfs_dir()
    inp = d / "stdin.txt"
    inp.write_bytes(b"input data\n" * 1000)
    outp = d / "stdout.txt"
    with open(inp, "rb") as fin, open(outp, "wb") as fout:
        st_in = os.fstat(fin.fileno())
        st_out = os.fstat(fout.fileno())
        r = cs.run(RUN, dict(REF, PROBE_STDIN="1", PROBE_ECHO="probe-marker"), stdin=fin, stdout=fout)
    assert r.code == 0, r.describe()
    rep = r.report
    assert (rep["stdio"]["0"]["dev"], rep["stdio"]["0"]["ino"]) == (st_in.st_dev, st_in.st_ino), "stdin replaced"
    assert (rep["stdio"]["1"]["dev"], rep["stdio"]["1"]["ino"]) == (st_out.st_dev, st_out.st_ino), "stdout replaced"
    assert rep["stdin"]["size"] == 11000, "stdin was read by crunch-secrets"
    data = outp.read_bytes()
    cs.scan(data, "stdout file")
    assert data == b"probe-marker\n", "crunch-secrets wrote to stdout"


def test_stdin_pipe_untouched(cs):
    r = cs.run(RUN, dict(REF, PROBE_STDIN="1"), stdin=b"piped input")
    assert r.code == 0, r.describe()
    assert r.report["stdin"]["content"] == "piped input"


def test_no_leaked_fds_and_clean_signal_state(cs):
    r = cs.run(RUN, dict(REF))
    assert r.code == 0, r.describe()
    rep = r.report
    assert rep["open_fds"] == [0, 1, 2], f"extra fds in the child: {rep['fd_targets']}"
    assert rep["sigmask"] == [], f"blocked signals in the child: {rep['sigmask']}"
    assert rep["sigignored"] == [], f"ignored signals in the child: {rep['sigignored']}"
    assert rep["dumpable"] == 1, "exec should restore the default dumpable flag"


def test_no_leaked_fds_with_files_and_tls(cs_tls):
    d = cs_tls.tmpfs_dir()
    m = d / "m.yml"
    m.write_text("version: 1\nfiles:\n  - path: a\n    template: ${vault:secret/data/app#password}\n")
    r = cs_tls.run(["run", "-m", str(m), "--", "{probe}"])
    assert r.code == 0, r.describe()
    assert r.report["open_fds"] == [0, 1, 2], f"extra fds in the child: {r.report['fd_targets']}"


def test_nothing_on_stdout(cs):
    r = cs.run(["run", "--no-manifest", "-v", "--", "{probe}"], dict(REF))
    assert r.code == 0, r.describe()
    assert r.stdout == b"", "crunch-secrets wrote to stdout"


def test_version(cs):
    r = cs.run(["--version"])
    assert r.code == 0, r.describe()
    assert r.out.strip(), "no version printed"
