"""The hvac contender: reads N KV v2 secrets with the hvac library, puts each into the
environment as BS_<i>, then replaces itself with the stamp child (as crunch-secrets does).

Usage: hvac_read.py N STAMP_BINARY   (VAULT_ADDR, VAULT_CACERT and VAULT_TOKEN from the environment)
"""

import os
import sys

import hvac


def main() -> None:
    n = int(sys.argv[1])
    client = hvac.Client(url=os.environ["VAULT_ADDR"], token=os.environ["VAULT_TOKEN"],
                         verify=os.environ["VAULT_CACERT"])
    for i in range(n):
        resp = client.secrets.kv.v2.read_secret_version(
            path=f"bench/s{i}", mount_point="secret", raise_on_deleted_version=True)
        os.environ[f"BS_{i}"] = resp["data"]["data"]["v"]
    os.execv(sys.argv[2], [sys.argv[2]])


if __name__ == "__main__":
    main()
