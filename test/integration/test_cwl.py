"""CWL end to end with a real cwltool (PyPI, pinned in packaging/install-cwltool.sh) run with
`--no-container`, a real OpenBao dev server and crunch-secrets as the first element of the tool's
baseCommand (examples/cwl/).

The job gives a *reference* as the value of a `cwltool:Secrets` input; the tool consumes it on
its command line, in an EnvVarRequirement variable and in an InitialWorkDir config file. The
program must receive the real value (it reports SHA-256 digests only), and cwltool's --debug
output, the output directory, the working and temporary directories, the provenance research
object and the cache must hold no secret value: every file under the run's directory is scanned.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from harness import CANARIES, REPO_ROOT, crunch_secrets_bin, fail
from test_arvados_source import arvs  # noqa: F401 (fixture: the Arvados stand-in over HTTPS)

EXAMPLES = REPO_ROOT / "examples" / "cwl"
_cwltool: list[str] = []


def cwltool_bin() -> str:
    """The pinned cwltool from packaging/install-cwltool.sh (installed once, cached)."""
    if not _cwltool:
        proc = subprocess.run(["bash", str(REPO_ROOT / "packaging" / "install-cwltool.sh")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=1800)
        if proc.returncode != 0:
            fail("packaging/install-cwltool.sh failed:\n" + proc.stderr.decode(errors="replace")[-3000:])
        _cwltool.append(proc.stdout.decode().strip().splitlines()[-1])
    return _cwltool[0]


def scan_tree(root: Path, where: str) -> int:
    """Scans every regular file under `root` (names and contents); returns how many."""
    n = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            CANARIES.check(name, f"a file name under {where}")
        for name in filenames:
            p = Path(dirpath) / name
            if p.is_symlink() or not p.is_file():
                continue
            CANARIES.check(p.read_bytes(), f"{where}/{p.relative_to(root)}")
            n += 1
    return n


@pytest.fixture
def cwl_run(bao, world):
    """Runs cwltool on an example with a job file; returns (result, run dir, secrets dir)."""
    runs: list[Path] = []

    def run(cwl: str, reference: str, *extra: str, token_file: bool = False,
            env_extra: dict[str, str] | None = None):
        base = Path(tempfile.mkdtemp(prefix="cs-cwl-", dir="/var/tmp"))
        runs.append(base)
        shm = Path(tempfile.mkdtemp(prefix="cs-cwl-", dir="/dev/shm"))
        runs.append(shm)
        bindir = base / "bin"
        bindir.mkdir()
        (bindir / "crunch-secrets").symlink_to(crunch_secrets_bin())
        for d in ("out", "tmp", "tmpout"):
            (base / d).mkdir()
        job = {"db_password": reference, "secrets_dir": str(shm / "secrets")}
        env = {
            "PATH": f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(base),
            "LANG": "C.UTF-8",
            "VAULT_ADDR": bao.addr,
        }
        preserve = ["--preserve-environment", "VAULT_ADDR"]
        if token_file:
            # The token on tmpfs, its path in the job: nothing secret in cwltool's cache key.
            tf = shm / "vault-token"
            tf.write_text(world.reader_token)
            tf.chmod(0o600)
            job["vault_token_file"] = str(tf)
        else:
            env["VAULT_TOKEN"] = world.reader_token
            preserve += ["--preserve-environment", "VAULT_TOKEN"]
        for k, v in (env_extra or {}).items():
            env[k] = v
            preserve += ["--preserve-environment", k]
        (base / "job.json").write_text(json.dumps(job))
        job = base / "job.json"
        args = [cwltool_bin(), "--debug", "--no-container", *preserve,
                "--outdir", str(base / "out"), "--tmpdir-prefix", str(base / "tmp") + "/",
                # cwltool refuses --tmp-outdir-prefix with --cachedir (the cache is the outdir).
                *([] if "--cachedir" in extra else ["--tmp-outdir-prefix", str(base / "tmpout") + "/"]),
                *extra,
                str(EXAMPLES / cwl), str(job)]
        proc = subprocess.run(args, env=env, cwd=base, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=600)
        CANARIES.check(proc.stdout, f"cwltool stdout ({cwl})")
        CANARIES.check(proc.stderr, f"cwltool --debug stderr ({cwl})")
        return proc, base, shm

    yield run
    for d in runs:
        shutil.rmtree(d, ignore_errors=True)


def report_of(proc, base: Path) -> dict:
    if proc.returncode != 0:
        fail(f"cwltool exited {proc.returncode}; stderr tail (scanned, no secret):\n"
             + proc.stderr.decode(errors="replace")[-4000:])
    out = json.loads(proc.stdout)
    return json.loads(Path(out["report"]["path"]).read_text())


def sha256(v: str) -> str:
    return hashlib.sha256(v.encode()).hexdigest()


def check_received(report: dict, value: str) -> None:
    assert report["all_equal"], "argv, env and the config file did not all receive the value"
    assert report["argv_sha256"] == sha256(value), "the program did not receive the real value"
    assert not report["looks_like_a_reference"], "a reference reached the program unresolved"
    assert not report["vault_token_in_env"], "the Vault token reached the program"


def check_clean(proc, base: Path, shm: Path) -> None:
    files = scan_tree(base, "the cwltool run directory (outdir, tmp, tmp-outdir, cache, provenance)")
    assert files >= 2, f"expected cwltool's files under {base}, found {files}"
    # The program deleted the rendered config; nothing stays in tmpfs either.
    assert not (shm / "secrets").exists(), "the tmpfs secrets directory outlived the tool"
    (shm / "vault-token").unlink(missing_ok=True)
    # --debug shows cwltool's placeholder, not the reference, for the secret input.
    assert b"(secret-" in proc.stderr, "no cwltool secret placeholder in the --debug output"


def test_tool_gets_vault_secret_on_argv_env_and_config_file(cwl_run, world):
    proc, base, shm = cwl_run("secret-tool.cwl", "${vault:secret/data/app#password}",
                              "--provenance", "prov")
    check_received(report_of(proc, base), world.values["password"])
    check_clean(proc, base, shm)
    assert (base / "prov").is_dir(), "cwltool wrote no provenance research object"


def test_workflow_with_cache(cwl_run, world):
    proc, base, shm = cwl_run("secret-wf.cwl", "${vault:secret/data/app#api_key}",
                              "--cachedir", "cache", token_file=True)
    check_received(report_of(proc, base), world.values["api_key"])
    check_clean(proc, base, shm)
    assert any((base / "cache").iterdir()), "cwltool wrote no cache"


def test_tool_gets_an_arvados_credential(cwl_run, arvs):
    """The same tool with an Arvados credential reference as the input: crunch-secrets reads it
    with the container's token (here passed with --preserve-environment, as a container has it)."""
    from test_arvados_plugin import ALICE_RUN1, FIXTURE_DATA, container_token

    secret = next(c["secret"] for c in FIXTURE_DATA["credentials"] if c["name"] == "lab-db")
    proc, base, shm = cwl_run("secret-tool.cwl", "${arvados:credential/lab-db#secret}",
                              env_extra={"ARVADOS_API_HOST": arvs.host,
                                         "CRUNCH_SECRETS_ARVADOS_CACERT": arvs.ca,
                                         "ARVADOS_API_TOKEN": container_token(ALICE_RUN1)})
    check_received(report_of(proc, base), secret)
    check_clean(proc, base, shm)


def test_a_bad_reference_runs_nothing(cwl_run):
    proc, base, shm = cwl_run("secret-tool.cwl", "${vault:secret/data/no-such#password}")
    assert proc.returncode != 0, "cwltool succeeded with a missing secret"
    assert b"secret/data/no-such" in proc.stderr, "crunch-secrets' error is not in cwltool's log"
    # cwltool still collects the (empty) stdout file of the failed step: the program never ran.
    for f in (base / "out").iterdir():
        assert f.stat().st_size == 0, f"{f.name}: the program ran although a secret was missing"
    scan_tree(base, "the failed cwltool run directory")
