"""References in the inherited environment: KV v2 (latest, pinned, deleted), KV v1, embedded
templates, non-string values, grammar errors, and the one-line error messages."""

from __future__ import annotations

import json

from harness import env_bytes

RUN = ["run", "--no-manifest", "--", "{probe}"]


def error_lines(r) -> list[str]:
    return [line for line in r.err.splitlines() if "error" in line.lower()]


def assert_one_line_error(r, *needles: str) -> None:
    lines = error_lines(r)
    assert len(lines) == 1, f"expected one error line: {r.describe()}"
    assert lines[0].startswith("crunch-secrets: error: "), r.describe()
    for n in needles:
        assert n in lines[0], f"error line does not name {n!r}: {r.describe()}"


def test_kv2_latest_whole_value(cs, world):
    r = cs.run(RUN, {"DB_PASSWORD": "vault:secret/data/app#password", "PLAIN": "not a reference"})
    assert r.code == 0, r.describe()
    assert r.env["DB_PASSWORD"] == world.values["password"]
    assert r.env["PLAIN"] == "not a reference"
    assert "VAULT_TOKEN" not in r.env


def test_kv2_latest_is_highest_version(cs, world):
    r = cs.run(RUN, {"V": "vault:secret/data/versioned#value"})
    assert r.code == 0, r.describe()
    assert r.env["V"] == world.versions[3]


def test_kv2_pinned_versions(cs, world):
    r = cs.run(RUN, {"V1": "vault:secret/data/versioned#value#1", "V3": "vault:secret/data/versioned#value#3",
                     "E": "one=${vault:secret/data/versioned#value#1} three=${vault:secret/data/versioned#value#3}"})
    assert r.code == 0, r.describe()
    assert r.env["V1"] == world.versions[1]
    assert r.env["V3"] == world.versions[3]
    assert r.env["E"] == f"one={world.versions[1]} three={world.versions[3]}"


def test_kv2_deleted_version_is_not_found(cs):
    r = cs.run(RUN, {"V": "vault:secret/data/versioned#value#2"})
    assert r.code == 79, r.describe()
    assert r.report is None
    assert_one_line_error(r, "secret/data/versioned")


def test_kv2_deleted_latest_is_not_found(cs):
    r = cs.run(RUN, {"V": "vault:secret/data/gone#value"})
    assert r.code == 79, r.describe()
    assert r.report is None
    assert_one_line_error(r, "secret/data/gone")


def test_kv2_version_that_never_existed(cs):
    r = cs.run(RUN, {"V": "vault:secret/data/versioned#value#99"})
    assert r.code == 79, r.describe()
    assert r.report is None


def test_missing_path_404(cs):
    r = cs.run(RUN, {"X": "vault:secret/data/does-not-exist#key"})
    assert r.code == 79, r.describe()
    assert r.report is None
    assert_one_line_error(r, "secret/data/does-not-exist")


def test_missing_key(cs):
    r = cs.run(RUN, {"X": "vault:secret/data/app#no_such_key"})
    assert r.code == 79, r.describe()
    assert r.report is None
    assert_one_line_error(r, "no_such_key")


def test_permission_denied_403(cs, world):
    r = cs.run(RUN, {"X": "vault:secret/data/forbidden#value"}, token=world.reader_token)
    assert r.code == 77, r.describe()
    assert r.report is None
    assert_one_line_error(r, "secret/data/forbidden")


def test_kv1(cs, world):
    r = cs.run(RUN, {"T": "vault:kv/app#token", "O": "x-${vault:kv/app#other}-y"})
    assert r.code == 0, r.describe()
    assert r.env["T"] == world.kv1["token"]
    assert r.env["O"] == "x-plain-y"


def test_embedded_references(cs, world):
    r = cs.run(RUN, {
        "DB_URL": "postgres://app:${vault:secret/data/app#password}@db/app",
        "TWO": "${vault:secret/data/app#username}:${vault:secret/data/app#api_key}",
        "LITERAL": "cost $${vault:secret/data/app#password} $5 ${HOME}",
    })
    assert r.code == 0, r.describe()
    assert r.env["DB_URL"] == f"postgres://app:{world.values['password']}@db/app"
    assert r.env["TWO"] == f"{world.values['username']}:{world.values['api_key']}"
    assert r.env["LITERAL"] == "cost ${vault:secret/data/app#password} $5 ${HOME}"


def test_no_env_refs_passes_values_through(cs):
    r = cs.run(["run", "--no-manifest", "--no-env-refs", "--", "{probe}"],
               {"X": "vault:secret/data/app#password", "Y": "a${vault:secret/data/app#password}"})
    assert r.code == 0, r.describe()
    assert r.env["X"] == "vault:secret/data/app#password"
    assert r.env["Y"] == "a${vault:secret/data/app#password}"


def test_non_string_values_are_compact_json(cs, world):
    r = cs.run(RUN, {"N": "vault:secret/data/typed#num", "B": "vault:secret/data/typed#flag",
                     "O": "vault:secret/data/typed#obj", "S": "vault:secret/data/typed#s"})
    assert r.code == 0, r.describe()
    assert r.env["N"] == "42"
    assert r.env["B"] == "true"
    assert r.env["O"] == '{"a":[1,2]}'
    assert r.env["S"] == world.values["typed_secret"]


def test_special_characters_byte_for_byte_in_env(cs, world):
    env = {f"SPECIAL_{k.upper()}": f"vault:secret/data/special#{k}" for k in world.specials}
    env["EMBED"] = "<${vault:secret/data/special#mixed}>"
    r = cs.run(RUN, env)
    assert r.code == 0, r.describe()
    for k, v in world.specials.items():
        got = env_bytes(r.env[f"SPECIAL_{k.upper()}"])
        assert got == v.encode(), f"special value {k!r} differs in env (lengths {len(got)} vs {len(v.encode())})"
    assert env_bytes(r.env["EMBED"]) == f"<{world.specials['mixed']}>".encode()


def test_invalid_references_are_errors(cs):
    for bad in ["vault:secret/data/app", "vault:/secret/data/app#k", "vault:secret/../app#k",
                "vault:secret//app#k", "vault:secret/data/app#k#notanumber", "vault:secret/data/app#k#12345678901",
                "vault:secret/data/a pp#k"]:
        r = cs.run(RUN, {"X": bad})
        assert r.code == 65, f"{bad!r}: {r.describe()}"
        assert r.report is None, bad


def test_all_or_nothing_env(cs):
    r = cs.run(RUN, {"A": "vault:secret/data/app#password", "B": "vault:secret/data/does-not-exist#k",
                     "C": "vault:kv/app#token"})
    assert r.code == 79, r.describe()
    assert r.report is None


def test_same_secret_many_references(cs, world):
    env = {f"R{i}": "vault:secret/data/app#password" for i in range(20)}
    env.update({f"K{i}": f"vault:secret/data/versioned#value#{1 + 2 * (i % 2)}" for i in range(10)})
    r = cs.run(RUN, env)
    assert r.code == 0, r.describe()
    for i in range(20):
        assert r.env[f"R{i}"] == world.values["password"]
    for i in range(10):
        assert r.env[f"K{i}"] == world.versions[1 + 2 * (i % 2)]


def test_json_log_format(cs):
    r = cs.run(["run", "--no-manifest", "--log-format", "json", "--", "{probe}"],
               {"X": "vault:secret/data/does-not-exist#key"})
    assert r.code == 79, r.describe()
    lines = [line for line in r.err.splitlines() if line.strip()]
    assert lines, r.describe()
    objs = []
    for line in lines:
        try:
            objs.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"stderr line is not JSON: {r.describe()}")
    errors = [o for o in objs if o.get("level") == "error"]
    assert len(errors) == 1, r.describe()
    assert errors[0].get("exit_code") == 79
    assert "secret/data/does-not-exist" in errors[0].get("msg", "")


def test_only_escaped_reference_in_env(cs):
    """An environment whose only `${vault:` is escaped needs no secret at all."""
    r = cs.run(RUN, {"E": "a $${vault:kv/app#token}"})
    assert r.code == 0, r.describe()
    assert r.env["E"] == "a ${vault:kv/app#token}"


def test_verbose_json_logs_never_show_values(cs, world):
    d = cs.tmpfs_dir()
    m = d / "m.yml"
    m.write_text("version: 1\nsecrets:\n  db:\n    path: secret/data/app\n    key: password\n"
                 "env:\n  DB: ${secret:db}\nfiles:\n  - path: f\n    secret: db\n")
    env = dict(world_special_env(world), CRUNCH_SECRETS_ROLE_ID=world.role_id, CRUNCH_SECRETS_SECRET_ID=world.secret_id)
    r = cs.run(["run", "-m", str(m), "-v", "--log-format", "json", "--", "{probe}"], env, token=None)
    assert r.code == 0, r.describe()
    for line in r.err.splitlines():
        if line.strip():
            obj = json.loads(line)
            assert "level" in obj and "msg" in obj, "log object without level/msg"
    r = cs.run(["run", "-m", str(m), "-v", "--", "{probe}"], env, token=None)
    assert r.code == 0, r.describe()
    assert r.err.strip(), "-v printed nothing"


def world_special_env(world) -> dict:
    return {f"S_{k.upper()}": f"vault:secret/data/special#{k}" for k in world.specials}


def test_quiet_prints_nothing_on_success(cs):
    r = cs.run(["run", "--no-manifest", "-q", "--", "{probe}"], {"X": "vault:secret/data/app#password"})
    assert r.code == 0, r.describe()
    assert r.stderr == b"" and r.stdout == b"", r.describe()


def test_bad_wait_is_usage_error(cs):
    r = cs.run(["run", "--no-manifest", "--wait", "soon", "--", "{probe}"], {"X": "vault:secret/data/app#password"})
    assert r.code == 64, r.describe()


def test_secret_reference_in_inherited_env(cs, world):
    d = cs.tmpfs_dir()
    m = d / "m.yml"
    m.write_text("version: 1\nsecrets:\n  db:\n    path: secret/data/app\n    key: password\n")
    r = cs.run(["run", "-m", str(m), "--", "{probe}"], {"X": "pw=${secret:db}", "Y": "${secret:db#username}"})
    assert r.code == 0, r.describe()
    assert r.env["X"] == f"pw={world.values['password']}"
    assert r.env["Y"] == world.values["username"]
    r = cs.run(RUN, {"X": "pw=${secret:db}"})
    assert r.code == 65, r.describe()


def test_unusual_but_valid_path_and_key(cs):
    from harness import CANARIES
    val = CANARIES.new("odd key")
    cs.bao.kv2_put("secret", "we.ird/p@th=x+y-z_1", {"my key.with-dots and spaces": val})
    r = cs.run(RUN, {"X": "vault:secret/data/we.ird/p@th=x+y-z_1#my key.with-dots and spaces"})
    assert r.code == 0, r.describe()
    assert r.env["X"] == val
