#!/usr/bin/env python3
"""The example's program: receives one secret on argv (--password), in $DB_PASSWORD and in
$CRUNCH_SECRETS_DIR/app.conf, and reports on stdout only whether the three agree and a SHA-256
of the value (so a test can check it received the real value without the value appearing in any
output). It then deletes the rendered config file: under `cwltool --no-container` the tmpfs
secrets directory would otherwise outlive the tool (inside a container it dies with it)."""

import hashlib
import json
import os
import sys


def main():
    args = sys.argv[1:]
    argv_value = args[args.index("--password") + 1] if "--password" in args else None
    env_value = os.environ.get("DB_PASSWORD")
    secrets_dir = os.environ.get("CRUNCH_SECRETS_DIR", "")
    conf_path = os.path.join(secrets_dir, "app.conf")
    file_value = None
    with open(conf_path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("password = "):
                file_value = line[len("password = "):].rstrip("\n")
    os.unlink(conf_path)
    # The secrets directory is a symlink crunch-secrets made to this run's own directory beside
    # it (README, "Files"): remove both.
    run_dir = os.path.realpath(secrets_dir)
    if os.path.islink(secrets_dir):
        os.unlink(secrets_dir)
    os.rmdir(run_dir)

    def digest(v):
        return None if v is None else hashlib.sha256(v.encode()).hexdigest()

    print(json.dumps({
        "argv_sha256": digest(argv_value),
        "env_sha256": digest(env_value),
        "file_sha256": digest(file_value),
        "all_equal": argv_value is not None and argv_value == env_value == file_value,
        "looks_like_a_reference": any(v is not None and ("vault:" in v or "arvados:" in v)
                                      for v in (argv_value, env_value, file_value)),
        "vault_token_in_env": "VAULT_TOKEN" in os.environ,
    }, indent=1))


if __name__ == "__main__":
    main()
