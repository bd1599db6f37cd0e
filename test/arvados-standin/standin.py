#!/usr/bin/env python3
"""A small stand-in for the Arvados API server, for tests.

It serves, from a JSON fixture file, the parts of the public Arvados REST API that
crunch-secrets and vault-plugin-auth-arvados use, with the public field names, error bodies
(``{"errors": [...], "error_token": "..."}``) and status codes:

    GET /arvados/v1/api_client_authorizations/current
    GET /arvados/v1/users/current            GET /arvados/v1/users/{uuid}
    GET /arvados/v1/containers/current       GET /arvados/v1/containers/{uuid}
    GET /arvados/v1/groups[/{uuid}]          GET /arvados/v1/links[/{uuid}]
    GET /arvados/v1/computed_permissions     (admin tokens only)
    GET /arvados/v1/credentials[/{uuid}]     GET /arvados/v1/credentials/{uuid}/secret
    GET /discovery/v1/apis/arvados/v1/rest

Tokens are accepted as ``v2/<uuid>/<secret>``, ``v2/<uuid>/<secret>/<container uuid>`` or a
bare secret, in ``Authorization: Bearer`` (or ``OAuth2``). As on a real cluster, a container's
token is valid only while the container is Locked or Running.

Tests change the world while it runs through a control API, answered only to loopback peers:

    POST   /_control/containers/{uuid}   {"state": "Complete"}     (any container fields)
    POST   /_control/users/{uuid}        {"is_active": false}
    POST   /_control/links               {"tail_uuid", "head_uuid", "name"} -> the new link
    DELETE /_control/links/{uuid}
    POST   /_control/credentials         {"name", "secret", ...} -> the new credential (no secret)
    POST   /_control/credentials/{uuid}  {"expires_at": "2020-01-01T00:00:00Z"}  (any fields)
    DELETE /_control/credentials/{uuid}
    POST   /_control/outage              {"status": 503}  (0 ends it; API calls get that status)
                                         optional: "retry_after": "2" (sent as Retry-After;
                                         a list sends one Retry-After header per value),
                                         "count": N (only the next N API calls; then it ends)
    POST   /_control/delay               {"ms": 20}  (every API answer waits that long; 0 ends it)
    GET    /_control/counters            API requests so far per endpoint: {"GET /arvados/v1/users/{uuid}": 3}
    POST   /_control/reset               reload the fixtures
    GET    /_control/log                 requests so far: method, path, token uuid, status, time
    POST   /_control/shutdown            stop serving and exit

Standard library only. Nothing it logs or answers contains a token secret; credential secrets
are answered only by credentials/{uuid}/secret.

Usage: standin.py --fixtures F [--host 127.0.0.1] [--port 0] [--port-file P]
                  [--tls-cert C --tls-key K] [--delay-ms MS] [--verbose]
"""

import argparse
import copy
import hmac
import json
import os
import re
import secrets
import socket
import ssl
import sys
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

UUID_RE = re.compile(r"^[a-z0-9]{5}-[a-z0-9]{5}-[a-z0-9]{15}$")
PERM_LEVELS = {"can_read": 1, "can_write": 2, "can_manage": 3}
PERM_NAMES = {v: k for k, v in PERM_LEVELS.items()}
VALID_CONTAINER_TOKEN_STATES = ("Locked", "Running")
KINDS = {
    "tpzed": "arvados#user",
    "j7d0g": "arvados#group",
    "o0j2j": "arvados#link",
    "dz642": "arvados#container",
    "gj3su": "arvados#apiClientAuthorization",
    "oss07": "arvados#credential",
}
NOW = "2025-01-01T00:00:00.000000000Z"


class ApiError(Exception):
    """An answer with an Arvados error body."""

    def __init__(self, status, message, headers=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def now_rfc3339():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(s):
    if not s:
        return None
    s = s.replace("Z", "+00:00")
    # Python < 3.11 does not accept nanoseconds; keep microseconds.
    m = re.match(r"^(.*\.\d{6})\d*(.*)$", s)
    if m:
        s = m.group(1) + m.group(2)
    return datetime.fromisoformat(s)


class World:
    """The fixture data and everything derived from it. All access holds `lock`."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.RLock()
        self.log = []
        self.outage = 0
        self.outage_retry_after = None
        self.outage_left = None  # API calls the outage still answers; None: until ended
        # Like a real API server's latency; a delay survives /_control/reset.
        self.delay_ms = 0
        self.load()

    def take_outage(self):
        """Raises the outage's answer for one API call, if an outage is on (holding `lock`)."""
        if not self.outage:
            return
        status = self.outage
        headers = {}
        if self.outage_retry_after is not None:
            headers["Retry-After"] = self.outage_retry_after
        if self.outage_left is not None:
            self.outage_left -= 1
            if self.outage_left <= 0:
                self.outage = 0
                self.outage_retry_after = None
                self.outage_left = None
        raise ApiError(status, "stand-in outage", headers)

    def load(self):
        with open(self.path, encoding="utf-8") as f:
            data = json.load(f)
        with self.lock:
            self.cluster_id = data.get("cluster_id", "zzzzz")
            self.users = {u["uuid"]: self._base(u) for u in data.get("users", [])}
            self.groups = {g["uuid"]: self._base(g) for g in data.get("groups", [])}
            self.links = {l["uuid"]: self._base(l) for l in data.get("links", [])}
            self.containers = {c["uuid"]: self._base(c) for c in data.get("containers", [])}
            self.tokens = {t["uuid"]: self._base(t) for t in data.get("tokens", [])}
            self.credentials = {c["uuid"]: self._base(c) for c in data.get("credentials", [])}
            self.outage = 0
            self.outage_retry_after = None
            self.outage_left = None
            self.log = []
            for table in (self.users, self.groups, self.links, self.containers, self.tokens,
                          self.credentials):
                for uuid in table:
                    if not UUID_RE.match(uuid):
                        raise ValueError(f"fixture uuid {uuid!r} is not an Arvados uuid")

    @staticmethod
    def _base(record):
        r = copy.deepcopy(record)
        infix = r["uuid"][6:11]
        r.setdefault("kind", KINDS.get(infix, "arvados#object"))
        r.setdefault("etag", secrets.token_hex(4))
        r.setdefault("created_at", NOW)
        r.setdefault("modified_at", NOW)
        r.setdefault("owner_uuid", r["uuid"][:5] + "-tpzed-000000000000000")
        return r

    # -- tokens --------------------------------------------------------------------------------

    def authenticate(self, header):
        """Returns (token record, user record, container uuid or None) or raises 401."""
        if not header:
            raise ApiError(401, "Not logged in")
        scheme, _, value = header.partition(" ")
        if scheme not in ("Bearer", "OAuth2") or not value:
            raise ApiError(401, "Not logged in")
        value = value.strip()
        token = None
        container_part = None
        if value.startswith("v2/"):
            parts = value.split("/")
            if len(parts) not in (3, 4):
                raise ApiError(401, "Not logged in")
            candidate = self.tokens.get(parts[1])
            if candidate and hmac.compare_digest(candidate.get("secret", ""), parts[2]):
                token = candidate
            if len(parts) == 4:
                container_part = parts[3]
        else:
            for candidate in self.tokens.values():
                if hmac.compare_digest(candidate.get("secret", ""), value):
                    token = candidate
                    break
        if token is None:
            raise ApiError(401, "Not logged in")
        expires = parse_time(token.get("expires_at"))
        if expires is not None and expires <= datetime.now(timezone.utc):
            raise ApiError(401, "Not logged in")
        # A container's token lives only while the container is Locked or Running.
        owning = self.container_of_token(token["uuid"])
        if container_part is not None:
            c = self.containers.get(container_part)
            if c is None or c.get("auth_uuid") != token["uuid"]:
                raise ApiError(401, "Not logged in")
        if owning is not None and owning.get("state") not in VALID_CONTAINER_TOKEN_STATES:
            raise ApiError(401, "Not logged in")
        user = self.users.get(token.get("owner_uuid"))
        if user is None:
            raise ApiError(401, "Not logged in")
        return token, user, (owning["uuid"] if owning else None)

    def container_of_token(self, token_uuid):
        for c in self.containers.values():
            if c.get("auth_uuid") == token_uuid:
                return c
        return None

    # -- permissions ---------------------------------------------------------------------------

    def computed_permissions(self, user_uuid):
        """Highest permission level of `user_uuid` on every object it can reach, following
        permission links and ownership through groups, as Arvados materializes them."""
        best = {user_uuid: PERM_LEVELS["can_manage"]}
        queue = [(user_uuid, PERM_LEVELS["can_manage"])]
        while queue:
            node, level = queue.pop()
            if best.get(node, 0) > level:
                continue
            edges = []
            for l in self.links.values():
                if l.get("link_class") == "permission" and l.get("tail_uuid") == node:
                    edges.append((l.get("head_uuid"), PERM_LEVELS.get(l.get("name"), 0)))
            for table in (self.groups, self.credentials):
                for obj in table.values():
                    if obj.get("owner_uuid") == node and obj["uuid"] != node:
                        edges.append((obj["uuid"], PERM_LEVELS["can_manage"]))
            for target, edge_level in edges:
                if not target or edge_level == 0:
                    continue
                new = min(level, edge_level)
                if new > best.get(target, 0):
                    best[target] = new
                    # Membership and sharing pass on only through groups.
                    if target in self.groups:
                        queue.append((target, new))
        return best

    def perm(self, user, target_uuid):
        if user.get("is_admin"):
            return PERM_LEVELS["can_manage"]
        return self.computed_permissions(user["uuid"]).get(target_uuid, 0)


def match_filter(record, flt):
    if not isinstance(flt, list) or len(flt) != 3:
        raise ApiError(422, f"Invalid filter {json.dumps(flt)}")
    attr, op, operand = flt
    value = record.get(attr)
    op = op.lower() if isinstance(op, str) else op
    if op == "=":
        return value == operand
    if op in ("!=", "<>"):
        return value != operand
    if op == "in":
        if not isinstance(operand, list):
            raise ApiError(422, f"Invalid operand for 'in' filter on {attr}")
        return value in operand
    if op == "not in":
        if not isinstance(operand, list):
            raise ApiError(422, f"Invalid operand for 'not in' filter on {attr}")
        return value not in operand
    if op in ("like", "ilike"):
        pattern = "^" + re.escape(str(operand)).replace("%", ".*").replace("_", ".") + "$"
        flags = re.IGNORECASE if op == "ilike" else 0
        return value is not None and re.match(pattern, str(value), flags) is not None
    if op == "is_a":
        kinds = operand if isinstance(operand, list) else [operand]
        infix = str(value)[6:11] if value else ""
        return KINDS.get(infix) in kinds
    if op == "exists":
        return (attr in record) == bool(operand)
    raise ApiError(422, f"Invalid operator '{op}' in filter on {attr}")


def list_response(kind, items, query):
    try:
        filters = json.loads(query.get("filters", ["[]"])[0])
    except json.JSONDecodeError:
        raise ApiError(422, "Invalid filters: not JSON")
    if not isinstance(filters, list):
        raise ApiError(422, "Invalid filters: not an array")
    if filters and not isinstance(filters[0], list):
        filters = [filters]
    selected = [r for r in items if all(match_filter(r, f) for f in filters)]
    try:
        limit = int(query.get("limit", ["100"])[0])
        offset = int(query.get("offset", ["0"])[0])
    except ValueError:
        raise ApiError(422, "Invalid limit or offset")
    if limit < 0 or offset < 0:
        raise ApiError(422, "Invalid limit or offset")
    page = selected[offset:offset + limit]
    body = {"kind": kind, "etag": "", "self_link": "", "offset": offset, "limit": limit,
            "items": page}
    if query.get("count", ["exact"])[0] != "none":
        body["items_available"] = len(selected)
    return body


def public(record, hidden=("secret",)):
    return {k: v for k, v in record.items() if k not in hidden}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "arvados-standin/1"
    world = None  # set by main
    verbose = False

    # -- plumbing ------------------------------------------------------------------------------

    def setup(self):
        super().setup()
        # http.server writes headers and body separately: without TCP_NODELAY, Nagle's algorithm
        # and the client's delayed ACK hold every answer back by ~40 ms on loopback.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):  # noqa: N802 (http.server API)
        if self.verbose:
            # Only the request line's path, never headers; paths carry no secrets.
            sys.stderr.write("arvados-standin: %s\n" % (fmt % args))

    def send_json(self, status, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            # A list is the same header repeated, as a hostile server may send it.
            for v in value if isinstance(value, list) else [value]:
                self.send_header(name, v)
        self.end_headers()
        self.wfile.write(data)

    def send_error_body(self, status, message, headers=None):
        token = "%d+%08x" % (int(time.time()), secrets.randbits(32))
        self.send_json(status, {"errors": [message], "error_token": token}, headers)

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length == 0:
            return {}
        raw = self.rfile.read(length)
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            raise ApiError(422, "request body is not JSON")

    def is_loopback(self):
        host = self.client_address[0]
        return host.startswith("127.") or host in ("::1", "::ffff:127.0.0.1")

    def handle_any(self, method):
        url = urlsplit(self.path)
        path = unquote(url.path)
        query = parse_qs(url.query)
        entry = {"method": method, "path": path, "token_uuid": None, "status": None,
                 "time": time.time()}
        try:
            if path.startswith("/_control/"):
                if not self.is_loopback():
                    raise ApiError(403, "control API is only served to loopback clients")
                status, body = self.control(method, path, query)
                entry = None
            else:
                if self.world.delay_ms:
                    # Outside the lock, so concurrent requests wait in parallel as on a server.
                    time.sleep(self.world.delay_ms / 1000)
                with self.world.lock:
                    self.world.take_outage()
                    status, body = self.api(method, path, query, entry)
        except ApiError as e:
            if entry is not None:
                entry["status"] = e.status
                with self.world.lock:
                    self.world.log.append(entry)
            self.send_error_body(e.status, e.message, e.headers)
            return
        if entry is not None:
            entry["status"] = status
            with self.world.lock:
                self.world.log.append(entry)
        if getattr(self, "shutdown_after_reply", False):
            self.close_connection = True
            self.send_json(status, body)
            self.wfile.flush()
            threading.Thread(target=self.server.shutdown, daemon=True).start()
            return
        self.send_json(status, body)

    def do_GET(self):  # noqa: N802
        self.handle_any("GET")

    def do_POST(self):  # noqa: N802
        self.handle_any("POST")

    def do_DELETE(self):  # noqa: N802
        self.handle_any("DELETE")

    def do_PUT(self):  # noqa: N802
        self.handle_any("PUT")

    # -- the API -------------------------------------------------------------------------------

    def api(self, method, path, query, entry):
        w = self.world
        if path == "/discovery/v1/apis/arvados/v1/rest" and method == "GET":
            return 200, {"kind": "discovery#restDescription", "uuidPrefix": w.cluster_id,
                         "rootUrl": "/", "servicePath": "arvados/v1/",
                         "revision": "standin", "version": "v1"}
        if not path.startswith("/arvados/v1/"):
            raise ApiError(404, "Path not found")
        if method != "GET":
            raise ApiError(405, "method not supported by the stand-in")
        parts = [p for p in path[len("/arvados/v1/"):].split("/") if p]
        token, user, container_uuid = w.authenticate(self.headers.get("Authorization"))
        entry["token_uuid"] = token["uuid"]
        admin = bool(user.get("is_admin"))
        resource = parts[0] if parts else ""
        rest = parts[1:]

        if resource == "api_client_authorizations" and rest == ["current"]:
            t = public(token)
            t.setdefault("scopes", ["all"])
            t.setdefault("expires_at", None)
            return 200, t

        if resource == "users":
            if rest == ["current"]:
                return 200, public(user)
            if len(rest) == 1:
                u = w.users.get(rest[0])
                if u is None or not (admin or u["uuid"] == user["uuid"]):
                    raise ApiError(404, "Path not found")
                return 200, public(u)
            if not rest:
                visible = [public(u) for u in w.users.values()
                           if admin or u["uuid"] == user["uuid"]]
                return 200, list_response("arvados#userList", visible, query)

        if resource == "containers":
            if rest == ["current"]:
                if container_uuid is None:
                    raise ApiError(404, "Token is not associated with a container.")
                return 200, public(w.containers[container_uuid])
            if len(rest) == 1:
                c = w.containers.get(rest[0])
                if c is None or not (admin or c.get("runtime_user_uuid") == user["uuid"]):
                    raise ApiError(404, "Path not found")
                return 200, public(c)

        if resource == "groups":
            def readable(g):
                return admin or g.get("group_class") == "role" or w.perm(user, g["uuid"]) > 0
            if len(rest) == 1:
                g = w.groups.get(rest[0])
                if g is None or not readable(g):
                    raise ApiError(404, "Path not found")
                return 200, public(g)
            if not rest:
                items = [public(g) for g in w.groups.values() if readable(g)]
                return 200, list_response("arvados#groupList", items, query)

        if resource == "links":
            def readable(l):
                return (admin or user["uuid"] in (l.get("tail_uuid"), l.get("head_uuid"))
                        or w.perm(user, l.get("head_uuid")) >= PERM_LEVELS["can_manage"])
            if len(rest) == 1:
                l = w.links.get(rest[0])
                if l is None or not readable(l):
                    raise ApiError(404, "Path not found")
                return 200, public(l)
            if not rest:
                items = [public(l) for l in w.links.values() if readable(l)]
                return 200, list_response("arvados#linkList", items, query)

        if resource == "computed_permissions" and not rest:
            if not admin:
                raise ApiError(403, "Forbidden: computed_permissions is only available to admin users")
            # As documented: no offset, and count is "none" (the default) or nothing.
            if query.get("offset", ["0"])[0] not in ("", "0"):
                raise ApiError(422, "Invalid offset: computed_permissions does not support offset")
            if query.get("count", ["none"])[0] != "none":
                raise ApiError(422, "Invalid count: computed_permissions supports only count=none")
            query = dict(query, count=["none"])
            rows = []
            for u in w.users.values():
                for target, level in sorted(w.computed_permissions(u["uuid"]).items()):
                    rows.append({"user_uuid": u["uuid"], "target_uuid": target,
                                 "perm_level": PERM_NAMES[level]})
            return 200, list_response("arvados#computedPermissionList", rows, query)

        if resource == "credentials":
            return self.credentials(rest, query, entry, user, admin, container_uuid)

        raise ApiError(404, "Path not found")

    def credentials(self, rest, query, entry, user, admin, container_uuid):
        """The credentials resource (Arvados 3.2+, doc.arvados.org api/methods/credentials):
        list and get never show `secret`, which cannot be used in queries either; `secret`
        answers {"external_id", "secret"} only to the token of a Running container whose user
        can read the credential, and only before `expires_at`; each answer is a
        `secret_access` event."""
        w = self.world

        def readable(c):
            return admin or c.get("owner_uuid") == user["uuid"] or w.perm(user, c["uuid"]) > 0

        if not rest:
            try:
                flts = json.loads(query.get("filters", ["[]"])[0])
            except json.JSONDecodeError:
                flts = []  # list_response reports it
            if isinstance(flts, list) and flts and not isinstance(flts[0], list):
                flts = [flts]
            if isinstance(flts, list) and any(isinstance(f, list) and f and f[0] == "secret"
                                              for f in flts):
                raise ApiError(422, "Invalid attribute 'secret' in filter")
            items = [public(c) for c in w.credentials.values() if readable(c)]
            return 200, list_response("arvados#credentialList", items, query)
        c = w.credentials.get(rest[0])
        if c is None or not readable(c):
            raise ApiError(404, "Path not found")
        if len(rest) == 1:
            return 200, public(c)
        if rest[1:] != ["secret"]:
            raise ApiError(404, "Path not found")
        running = (container_uuid is not None and
                   w.containers[container_uuid].get("state") == "Running")
        if not running:
            raise ApiError(403, "Forbidden: credential secrets are only available to a running container")
        expires = parse_time(c.get("expires_at"))
        if expires is not None and expires <= datetime.now(timezone.utc):
            # The public docs say only "return an error"; the stand-in answers 403.
            raise ApiError(403, "Forbidden: credential has expired")
        entry["event"] = {"event_type": "secret_access", "object_uuid": c["uuid"],
                          "container_uuid": container_uuid, "at": now_rfc3339()}
        return 200, {"external_id": c.get("external_id", ""), "secret": c.get("secret", "")}

    # -- control -------------------------------------------------------------------------------

    def control(self, method, path, query):
        w = self.world
        parts = [p for p in path[len("/_control/"):].split("/") if p]
        body = self.read_body() if method in ("POST", "PUT") else {}
        if not isinstance(body, dict):
            raise ApiError(422, "control body must be a JSON object")
        with w.lock:
            if parts == ["log"] and method == "GET":
                return 200, {"items": list(w.log)}
            if parts == ["reset"] and method == "POST":
                w.load()
                return 200, {}
            if parts == ["outage"] and method == "POST":
                w.outage = int(body.get("status", 0))
                retry_after = body.get("retry_after")
                if isinstance(retry_after, list):
                    w.outage_retry_after = [str(v) for v in retry_after]
                else:
                    w.outage_retry_after = None if retry_after is None else str(retry_after)
                count = body.get("count")
                w.outage_left = None if count is None else int(count)
                return 200, {"status": w.outage}
            if parts == ["delay"] and method == "POST":
                w.delay_ms = max(0, int(body.get("ms", 0)))
                return 200, {"ms": w.delay_ms}
            if parts == ["counters"] and method == "GET":
                counts = {}
                for e in w.log:
                    key = e["method"] + " " + "/".join(
                        "{uuid}" if UUID_RE.match(p) else p for p in e["path"].split("/"))
                    counts[key] = counts.get(key, 0) + 1
                return 200, counts
            if parts == ["shutdown"] and method == "POST":
                # handle_any stops the server once this answer is written.
                self.shutdown_after_reply = True
                return 200, {}
            if len(parts) == 2 and parts[0] in ("containers", "users", "groups", "tokens",
                                                "credentials") and method == "POST":
                table = {"containers": w.containers, "users": w.users, "groups": w.groups,
                         "tokens": w.tokens, "credentials": w.credentials}[parts[0]]
                record = table.get(parts[1])
                if record is None:
                    raise ApiError(404, "no such record")
                record.update({k: v for k, v in body.items() if k != "uuid"})
                record["modified_at"] = now_rfc3339()
                return 200, public(record)
            if parts == ["credentials"] and method == "POST":
                # A new credential; `secret` is required, `uuid` is generated unless given.
                if not isinstance(body.get("secret"), str) or not body.get("name"):
                    raise ApiError(422, "a credential needs a name and a string secret")
                uuid = body.get("uuid") or "%s-oss07-%s" % (w.cluster_id, secrets.token_hex(8)[:15])
                if not UUID_RE.match(uuid) or uuid in w.credentials:
                    raise ApiError(422, "bad or duplicate credential uuid")
                record = dict(body, uuid=uuid)
                record.setdefault("description", "")
                record.setdefault("credential_class", "arv:aws_access_key")
                record.setdefault("scopes", [])
                record.setdefault("external_id", "")
                record.setdefault("expires_at", None)
                w.credentials[uuid] = w._base(record)
                return 200, public(w.credentials[uuid])
            if len(parts) == 2 and parts[0] == "credentials" and method == "DELETE":
                if w.credentials.pop(parts[1], None) is None:
                    raise ApiError(404, "no such credential")
                return 200, {}
            if parts == ["links"] and method == "POST":
                uuid = body.get("uuid") or "%s-o0j2j-%s" % (w.cluster_id, secrets.token_hex(8)[:15])
                link = w._base({"uuid": uuid, "link_class": body.get("link_class", "permission"),
                                "name": body.get("name", "can_read"),
                                "tail_uuid": body.get("tail_uuid"),
                                "head_uuid": body.get("head_uuid")})
                w.links[uuid] = link
                return 200, link
            if len(parts) == 2 and parts[0] == "links" and method == "DELETE":
                if w.links.pop(parts[1], None) is None:
                    raise ApiError(404, "no such link")
                return 200, {}
        raise ApiError(404, "no such control endpoint")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fixtures", required=True, help="JSON fixture file")
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=0, help="port (default 0: any free port)")
    ap.add_argument("--port-file", help="write the port here once listening")
    ap.add_argument("--tls-cert", help="PEM certificate (chain) to serve HTTPS with")
    ap.add_argument("--tls-key", help="PEM private key for --tls-cert")
    ap.add_argument("--delay-ms", type=int, default=0,
                    help="delay every API answer this long, like a real server (default 0)")
    ap.add_argument("--verbose", action="store_true", help="log request lines to stderr")
    args = ap.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        ap.error("--tls-cert and --tls-key go together")

    Handler.world = World(args.fixtures)
    Handler.world.delay_ms = max(0, args.delay_ms)
    Handler.verbose = args.verbose
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.port_file)
    print(port, flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
