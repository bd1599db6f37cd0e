"""The Arvados stand-in's credentials resource (Arvados 3.2+), as the public API documentation
describes it: list (with filters, never the secret), get, and `credentials/{uuid}/secret`, which
answers only the token of a Running container whose user can read the credential, only before
`expires_at`, and logs a `secret_access` event. These are the answers crunch-secrets' Arvados
client is written against, so they are pinned here.
"""

from __future__ import annotations

import json

from harness import CANARIES
from test_arvados_plugin import (  # noqa: F401 (fixture)
    ALICE_RUN1, BOB_RUN, FIXTURE_DATA, arv_get, container_token, plain_token, standin,
)

LAB_AWS = "zzzzz-oss07-labawscred00001"
LAB_DB = "zzzzz-oss07-labdbpasswd0001"
LAB_EXPIRED = "zzzzz-oss07-labexpired00001"
DUP_1 = "zzzzz-oss07-dupname00000001"
DUP_2 = "zzzzz-oss07-dupname00000002"
OTHER_AWS = "zzzzz-oss07-otheronly000001"
ALICE_LOCKED = "zzzzz-dz642-alicelocked0001"
ALICE_PERSONAL = "zzzzz-gj3su-alicetoken00001"
SECRETS = {c["uuid"]: c["secret"] for c in FIXTURE_DATA["credentials"]}


def checked(status_body, where):
    status, body = status_body
    CANARIES.check(json.dumps(body), where)
    return status, body


def assert_error_body(status, body, want_status, want_text):
    assert status == want_status, (status, body)
    assert isinstance(body.get("errors"), list) and body["errors"], body
    assert want_text in body["errors"][0], body
    assert body.get("error_token"), body


def test_list_shows_readable_credentials_without_secrets(standin):
    status, body = checked(arv_get(standin, "credentials", container_token(ALICE_RUN1)), "list")
    assert status == 200 and body["kind"] == "arvados#credentialList", body
    uuids = {c["uuid"] for c in body["items"]}
    assert {LAB_AWS, LAB_DB, LAB_EXPIRED, DUP_1, DUP_2} <= uuids, uuids
    assert OTHER_AWS not in uuids, "alice is not in the other group"
    for c in body["items"]:
        assert "secret" not in c
        assert {"name", "credential_class", "external_id", "expires_at", "scopes"} <= set(c), c
    assert body["items_available"] == len(body["items"])


def test_list_with_a_name_filter(standin):
    token = container_token(ALICE_RUN1)
    status, body = checked(arv_get(standin, "credentials", token,
                                   filters=[["name", "=", "lab-aws"]]), "name filter")
    assert status == 200 and [c["uuid"] for c in body["items"]] == [LAB_AWS], body
    status, body = checked(arv_get(standin, "credentials", token,
                                   filters=[["name", "=", "shared-name"]]), "dup filter")
    assert status == 200 and sorted(c["uuid"] for c in body["items"]) == [DUP_1, DUP_2], body
    status, body = arv_get(standin, "credentials", token, filters=[["name", "=", "no-such"]])
    assert status == 200 and body["items"] == [] and body["items_available"] == 0, body
    # Bob sees only his group's credential under its name, never alice's.
    status, body = arv_get(standin, "credentials", container_token(BOB_RUN),
                           filters=[["name", "in", ["lab-aws", "other-aws"]]])
    assert status == 200 and [c["uuid"] for c in body["items"]] == [OTHER_AWS], body


def test_the_secret_cannot_be_queried(standin):
    status, body = arv_get(standin, "credentials", container_token(ALICE_RUN1),
                           filters=[["secret", "like", "%"]])
    assert_error_body(status, body, 422, "secret")


def test_get_by_uuid(standin):
    status, body = checked(arv_get(standin, f"credentials/{LAB_DB}", container_token(ALICE_RUN1)),
                           "get")
    assert status == 200 and body["name"] == "lab-db" and "secret" not in body, body
    status, body = arv_get(standin, f"credentials/{OTHER_AWS}", container_token(ALICE_RUN1))
    assert_error_body(status, body, 404, "Path not found")


def test_secret_for_a_running_container(standin):
    status, body = arv_get(standin, f"credentials/{LAB_DB}/secret", container_token(ALICE_RUN1))
    assert status == 200 and set(body) == {"external_id", "secret"}, sorted(body)
    assert body["external_id"] == "labdbuser" and body["secret"] == SECRETS[LAB_DB], "wrong value"
    status, body = arv_get(standin, f"credentials/{OTHER_AWS}/secret", container_token(BOB_RUN))
    assert status == 200 and body["secret"] == SECRETS[OTHER_AWS], status


def test_secret_refusals(standin):
    # Not readable by alice: not found, as for any object she cannot see.
    status, body = arv_get(standin, f"credentials/{OTHER_AWS}/secret", container_token(ALICE_RUN1))
    assert_error_body(status, body, 404, "Path not found")
    # A personal token (no container): permission denied.
    status, body = arv_get(standin, f"credentials/{LAB_AWS}/secret", plain_token(ALICE_PERSONAL))
    assert_error_body(status, body, 403, "running container")
    # A Locked container's token is valid, but the container is not Running yet.
    status, body = arv_get(standin, f"credentials/{LAB_AWS}/secret", container_token(ALICE_LOCKED))
    assert_error_body(status, body, 403, "running container")
    # Past expires_at.
    status, body = checked(arv_get(standin, f"credentials/{LAB_EXPIRED}/secret",
                                   container_token(ALICE_RUN1)), "expired answer")
    assert_error_body(status, body, 403, "expired")
    status, body = arv_get(standin, "credentials/zzzzz-oss07-nosuchcredent01/secret",
                           container_token(ALICE_RUN1))
    assert_error_body(status, body, 404, "Path not found")


def test_each_secret_answer_is_a_secret_access_event(standin):
    before = [e for e in standin.control("GET", "log")["items"]
              if e.get("event", {}).get("event_type") == "secret_access"]
    for _ in range(2):
        assert arv_get(standin, f"credentials/{LAB_AWS}/secret", container_token(ALICE_RUN1))[0] == 200
    assert arv_get(standin, f"credentials/{LAB_EXPIRED}/secret", container_token(ALICE_RUN1))[0] == 403
    after = [e for e in standin.control("GET", "log")["items"]
             if e.get("event", {}).get("event_type") == "secret_access"]
    new = after[len(before):]
    assert [(e["event"]["object_uuid"], e["event"]["container_uuid"]) for e in new] == \
        [(LAB_AWS, ALICE_RUN1)] * 2, new
    CANARIES.check(json.dumps(after), "the stand-in's request log")


def test_control_api_creates_expires_and_deletes_credentials(standin):
    value = CANARIES.new("credential made through the control API")
    made = standin.control("POST", "credentials", {"name": "made-here", "secret": value,
                                                   "external_id": "AKIAMADE"})
    uuid = made["uuid"]
    try:
        assert "secret" not in made and made["credential_class"] == "arv:aws_access_key", made
        # Readable only by its owner (the system user by default) until shared with a link.
        assert arv_get(standin, f"credentials/{uuid}/secret", container_token(ALICE_RUN1))[0] == 404
        link = standin.control("POST", "links", {"tail_uuid": "zzzzz-j7d0g-labgroup0000001",
                                                 "head_uuid": uuid, "name": "can_read"})
        status, body = arv_get(standin, f"credentials/{uuid}/secret", container_token(ALICE_RUN1))
        assert status == 200 and body["secret"] == value, status
        standin.control("POST", f"credentials/{uuid}", {"expires_at": "2020-01-01T00:00:00Z"})
        status, body = arv_get(standin, f"credentials/{uuid}/secret", container_token(ALICE_RUN1))
        assert_error_body(status, body, 403, "expired")
        standin.control("DELETE", f"links/{link['uuid']}")
    finally:
        standin.control("DELETE", f"credentials/{uuid}")
    assert arv_get(standin, f"credentials/{uuid}", container_token(ALICE_RUN1))[0] == 404
