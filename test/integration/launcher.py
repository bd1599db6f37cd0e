#!/usr/bin/env python3
"""The reference launcher of docs/crunch-run-protocol.md: what a crunch-run patch would do.

    launcher.py CRUNCH_SECRETS_BIN CONTAINER_JSON SECRETS_DIR

Runs `crunch-secrets prepare` with the result on a pipe (never logged), starts the container's
command as a process with the record's environment plus the result's, the result's command, and
the result's mount (a read-only bind mount in a private mount namespace, `unshare -m`, as a
container runtime would make it), waits for it, then always runs `crunch-secrets cleanup`.
Exits with the command's status (or prepare's, when prepare fails and nothing is started).
The launcher's own environment (ARVADOS_API_*, VAULT_*) is prepare's; the child gets only the
container's.
"""

import json
import os
import shlex
import subprocess
import sys


def main(cs_bin, record_path, secrets_dir):
    with open(record_path, encoding="utf-8") as f:
        record = json.load(f)
    r, w = os.pipe()
    prep = subprocess.Popen([cs_bin, "prepare", "--container", record_path,
                             "--secrets-dir", secrets_dir, "--result-fd", str(w)], pass_fds=(w,))
    os.close(w)
    with os.fdopen(r, "rb") as pipe:
        raw = pipe.read()
    if prep.wait() != 0:
        return prep.returncode  # nothing to start, nothing to clean up
    result = json.loads(raw)
    if result.get("version") != 1:
        sys.exit("launcher: unsupported prepare result version")
    env = {k: v for k, v in record.get("environment", {}).items()
           if k not in result.get("unset_environment", [])}
    env.update(result.get("environment", {}))
    env.setdefault("PATH", os.environ.get("PATH", "/usr/bin:/bin"))
    command = result["command"]
    mount = result.get("mount")
    if mount:
        # A private mount namespace stands in for the container's own.
        script = 'mkdir -p "$1" && mount --bind -o ro "$2" "$1" && shift 2 && exec "$@"'
        command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                   mount["container_path"], mount["host_path"], *command]
    try:
        child = subprocess.run(command, env=env)
        status = child.returncode
    finally:
        clean = subprocess.run([cs_bin, "cleanup", "--state", result["state"]])
    if clean.returncode != 0:
        print(f"launcher: cleanup failed ({clean.returncode}): "
              f"{shlex.quote(result['state'])}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
