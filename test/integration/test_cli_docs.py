"""--version, the generated man page and the shell completions: every option --help lists is in
the man page and the completions, and the long sections come from the same source as --help."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from harness import REPO_ROOT, crunch_secrets_bin

pytestmark = pytest.mark.offline

HELPS = [["--help"], ["run", "--help"], ["check", "--help"]]


def generated(name: str) -> Path:
    """A file the build generated with `crunch-secrets --generate` (build/packaging/)."""
    p = crunch_secrets_bin().parent / "packaging" / name
    assert p.is_file(), f"{p} was not generated: run ninja in the build directory"
    return p


def run_cs(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(crunch_secrets_bin()), *args], capture_output=True, text=True,
                          timeout=30)


def help_options(args: list[str]) -> set[str]:
    r = run_cs(*args)
    assert r.returncode == 0, r.stderr
    text = r.stdout.split("\nREFERENCES\n")[0]  # options only, not the epilog
    opts = set(re.findall(r"^\s+(?:-\w,)?(--[a-z][a-z0-9-]*)", text, re.M))
    assert len(opts) >= 3, f"no options found in crunch-secrets {' '.join(args)}:\n{r.stdout}"
    return opts


def test_version_names_release_revision_and_libraries():
    r = run_cs("--version")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    project_version = re.search(r"version\s*:\s*'([^']+)'", (REPO_ROOT / "meson.build").read_text()).group(1)
    m = re.fullmatch(r"crunch-secrets (\S+) \(git (\S+)\)", lines[0])
    assert m, r.stdout
    assert m.group(1) == project_version
    head = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short=12", "HEAD"],
                          capture_output=True, text=True)
    if head.returncode == 0:
        assert m.group(2).startswith(head.stdout.strip()), (m.group(2), head.stdout)
    else:
        assert m.group(2) != "", r.stdout
    assert re.search(r"^libcurl \d+\.\d+\.\d+, TLS OpenSSL/\d", lines[1]), lines[1]
    assert "HTTP/2 nghttp2/" in lines[1], lines[1]
    assert "resolver " in lines[1], lines[1]


def test_man_page_lists_every_option_and_section():
    man = generated("crunch-secrets.1").read_text()
    for args in HELPS:
        for opt in help_options(args):
            assert opt.replace("-", "\\-") in man, f"{opt} (crunch-secrets {' '.join(args)}) missing from the man page"
    for section in ["NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "OPTIONS", "REFERENCES", "MANIFEST",
                    "EXIT STATUS", "ENVIRONMENT", "FILES", "EXAMPLES"]:
        assert f'\n.SH {section}\n' in man, f"section {section} missing"
    # Every exit code of the README's table is documented.
    readme = (REPO_ROOT / "README.md").read_text().split("## Exit codes")[1].split("\n## ")[0]
    codes = set(re.findall(r"^\| (\d+) \|", readme, re.M))
    assert len(codes) >= 10, readme
    exit_section = man.split(".SH EXIT STATUS")[1].split("\n.SH ")[0]
    assert codes <= set(re.findall(r"^\\fB(\d+)\\fR$", exit_section, re.M)), exit_section
    # Every manifest field the README's example uses at the top level.
    manifest = man.split(".SH MANIFEST")[1].split("\n.SH ")[0]
    for field in ["version", "auth", "secrets", "env", "files", "argv", "secrets_dir"]:
        assert f"\\fB{field}\\fR" in manifest.replace("\\-", "-").replace("secrets\\_dir", "secrets_dir")


def test_man_page_renders_without_warnings():
    page = generated("crunch-secrets.1")
    r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(page)], capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    r = subprocess.run(["man", "-l", str(page)], capture_output=True, text=True, env={"MANWIDTH": "80", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    assert "--arvados-token-file" in r.stdout.replace("‐", "-")


def test_help_epilog_and_man_page_share_their_text():
    r = run_cs("--help")
    words = " ".join(r.stdout.split())
    man = generated("crunch-secrets.1").read_text()
    exit_section = man.split(".SH EXIT STATUS")[1].split("\n.SH ")[0]
    entries = re.findall(r"^\.TP\n\\fB(\d+)\\fR\n(.+)$", exit_section, re.M)
    assert len(entries) >= 10
    for code, text in entries:
        plain = text.replace("\\-", "-").replace("\\e", "\\")
        assert f"{code} {plain}" in words, f"exit code {code}: the man page and --help differ"


def complete_bash(words: list[str]) -> list[str]:
    script = generated("crunch-secrets")
    # COMP_WORDS as bash would split the line; the last word is the one being completed.
    quoted = " ".join("'" + w + "'" for w in words)
    r = subprocess.run(
        ["bash", "-c", f'source "{script}"; COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; '
                       '_crunch_secrets; printf "%s\\n" "${COMPREPLY[@]}"'],
        capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def test_bash_completion():
    assert set(complete_bash(["crunch-secrets", ""])) >= {"run", "check", "--version", "--help"}
    assert complete_bash(["crunch-secrets", "run", "--arvados-r"]) == ["--arvados-role"]
    assert set(complete_bash(["crunch-secrets", "run", "--auth", ""])) == {"auto", "token", "approle", "wrapped", "arvados"}
    for args in HELPS[1:]:
        offered = set(complete_bash(["crunch-secrets", args[0], "--"]))
        assert help_options(args) <= offered, help_options(args) - offered
    assert "online" not in " ".join(complete_bash(["crunch-secrets", "run", "--o"]))
    # After "--" the command is completed from PATH.
    assert "bash" in complete_bash(["crunch-secrets", "run", "--", "bas"])


def test_zsh_completion_is_valid_and_complete():
    script = generated("_crunch-secrets")
    text = script.read_text()
    assert text.startswith("#compdef crunch-secrets\n")
    r = subprocess.run(["zsh", "-n", str(script)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for args in HELPS:
        for opt in help_options(args):
            assert opt in text, f"{opt} missing from the zsh completion"
    # The function loads in a real zsh with compinit, as from a directory on $fpath.
    r = subprocess.run(
        ["zsh", "-fc", f'fpath=({script.parent} $fpath); autoload -Uz compinit; compinit -u -D; '
                       'autoload -Uz _crunch-secrets; whence -w _crunch-secrets; print ${_comps[crunch-secrets]}'],
        capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "_crunch-secrets: function" in r.stdout and "_crunch-secrets" in r.stdout.splitlines()[-1], r.stdout
