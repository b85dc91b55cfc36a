"""The lease operations as Daytona REST calls: one request (or one page walk) per operation.

All requests go through a transport: the host's `http` and `log` imports in the component
(`HostTransport`), a scripted fake in the unit tests. Credentials never pass through here: the
host attaches them after checking each request against the provider's grant.
"""

from componentize_py_types import Err
from wit_world.imports import http, log, types

from . import errors, wire

# Timeout for calls the server may hold while the sandbox starts (it waits up to 30 s).
SLOW_CALL_TIMEOUT_MS = 90_000
# Page size asked of `GET /sandbox`.
PAGE_LIMIT = 100
# Most pages `list` follows before it gives up.
MAX_PAGES = 1000


class HostTransport:
    """The real transport: the host's imports."""

    def send(self, request):
        """Sends one request; raises `Err(http-error)` when the host cannot deliver it."""
        return http.send(request)

    def debug(self, message):
        """Writes one debug line to cbx's log (never a header or a body)."""
        log.log(log.Level.DEBUG, message)


class Daytona:
    """A configured Daytona client over a transport."""

    def __init__(self, cfg, transport):
        self.cfg = cfg
        self.transport = transport

    def doctor(self):
        """Lists at most one sandbox to prove the endpoint answers and accepts the credentials."""
        action = "list sandboxes"
        path = "/sandbox?limit=1&labels=" + wire.percent_encode(wire.labels_json([("cbx", "true")]))
        resp = self._call(http.Method.GET, path, None, None, action)
        if self.cfg.auth == "none":
            auth = check(
                "auth",
                types.CheckStatus.WARN,
                "no credentials are attached, yet the server answered",
            )
        else:
            auth = check("auth", types.CheckStatus.OK, f"credentials accepted ({self.cfg.auth})")
        try:
            wire.parse_page(action, resp.body)
            api = check("api", types.CheckStatus.OK, f"GET /sandbox answered {resp.status}")
        except Err:
            api = check(
                "api",
                types.CheckStatus.FAIL,
                f"GET /sandbox answered {resp.status} but not with a sandbox list; the `api` "
                "endpoint must be Daytona's API base URL, e.g. https://app.daytona.io/api",
            )
        return [auth, api]

    def create(self, request):
        """Creates a sandbox from the configured snapshot, in the configured region."""
        action = "create sandbox"
        body = wire.create_body(request, self.cfg)
        resp = self._call(http.Method.POST, "/sandbox", body, SLOW_CALL_TIMEOUT_MS, action)
        return wire.parse_sandbox_body(action, resp.body)

    def get(self, sandbox_id):
        """Reads one sandbox by id or name."""
        action = f"get sandbox {sandbox_id}"
        resp = self._call(http.Method.GET, sandbox_path(sandbox_id, "", action), None, None, action)
        return wire.parse_sandbox_body(action, resp.body)

    def list(self, labels):
        """Every sandbox carrying all `labels`, following `nextCursor` to the end."""
        action = "list sandboxes"
        first = f"/sandbox?limit={PAGE_LIMIT}&labels=" + wire.percent_encode(wire.labels_json(labels))
        path = first
        seen_cursors = set()
        seen_ids = set()
        out = []
        for _ in range(MAX_PAGES):
            resp = self._call(http.Method.GET, path, None, None, action)
            sandboxes, cursor = wire.parse_page(action, resp.body)
            for sandbox in sandboxes:
                # A sandbox whose sort key changes mid-walk can show up on two pages.
                if sandbox.id not in seen_ids:
                    seen_ids.add(sandbox.id)
                    out.append(sandbox)
            if cursor is None:
                return out
            if cursor in seen_cursors:
                raise errors.other(
                    f"daytona {action}: the server repeated a pagination cursor after "
                    f"{len(seen_cursors) + 1} pages"
                )
            seen_cursors.add(cursor)
            path = f"{first}&cursor={wire.percent_encode(cursor)}"
        raise errors.other(f"daytona {action}: gave up after {MAX_PAGES} pages")

    def start(self, sandbox_id):
        """Starts a stopped or archived sandbox."""
        action = f"start sandbox {sandbox_id}"
        path = sandbox_path(sandbox_id, "/start", action)
        resp = self._call(http.Method.POST, path, None, SLOW_CALL_TIMEOUT_MS, action)
        return wire.parse_sandbox_body(action, resp.body)

    def stop(self, sandbox_id):
        """Stops a running sandbox."""
        action = f"stop sandbox {sandbox_id}"
        path = sandbox_path(sandbox_id, "/stop", action)
        resp = self._call(http.Method.POST, path, None, None, action)
        return wire.parse_sandbox_body(action, resp.body)

    def delete(self, sandbox_id):
        """Deletes a sandbox; `not-found` when it is already gone."""
        action = f"delete sandbox {sandbox_id}"
        self._call(http.Method.DELETE, sandbox_path(sandbox_id, "", action), None, None, action)

    def set_labels(self, sandbox_id, labels):
        """Replaces all of a sandbox's labels; returns the sandbox as it is afterwards."""
        action = f"set labels on sandbox {sandbox_id}"
        path = sandbox_path(sandbox_id, "/labels", action)
        resp = self._call(http.Method.PUT, path, wire.labels_body(labels), None, action)
        # Real servers answer with the Sandbox; the published spec says only `{labels}`.
        if wire.has_sandbox_id(resp.body):
            return wire.parse_sandbox_body(action, resp.body)
        return self.get(sandbox_id)

    def touch(self, sandbox_id):
        """Resets the sandbox's idle timer."""
        action = f"touch sandbox {sandbox_id}"
        path = sandbox_path(sandbox_id, "/last-activity", action)
        self._call(http.Method.POST, path, None, None, action)

    def mint_ssh_access(self, sandbox_id):
        """Mints SSH access: the token is the SSH user, marked secret."""
        action = f"mint ssh access for sandbox {sandbox_id}"
        path = (
            sandbox_path(sandbox_id, "/ssh-access", action)
            + f"?expiresInMinutes={self.cfg.ssh_access_minutes}"
        )
        resp = self._call(http.Method.POST, path, None, None, action)
        token, ssh_command, expires_at = wire.parse_ssh_access(action, resp.body)
        host, port = wire.ssh_endpoint(ssh_command)
        return types.SshAccess(
            user=token,
            user_is_secret=True,
            host=host,
            port=port,
            identity_file=None,
            expires_at=expires_at,
        )

    def _call(self, method, path, body, timeout_ms, action):
        """Sends one request under the API base; non-2xx answers raise typed errors."""
        headers = [("accept", "application/json")]
        if body is not None:
            headers.append(("content-type", "application/json"))
        self.transport.debug(f"{method.name} {path}")
        request = http.Request(
            method=method,
            url=self.cfg.base + path,
            headers=headers,
            body=body,
            timeout_ms=timeout_ms,
        )
        try:
            resp = self.transport.send(request)
        except Err as e:
            raise errors.from_http_error(action, e.value) from None
        if 200 <= resp.status < 300:
            return resp
        raise errors.from_status(action, resp.status, resp.headers, resp.body)


def sandbox_path(sandbox_id, suffix, action):
    """`/sandbox/{id}{suffix}` with the id percent-encoded. An empty id is refused: it would
    address the collection instead."""
    if not sandbox_id.strip():
        raise errors.other(f"daytona {action}: the sandbox id is empty")
    return f"/sandbox/{wire.percent_encode(sandbox_id)}{suffix}"


def check(name, status, detail):
    """One doctor line."""
    return types.Check(name=name, status=status, detail=detail)
