"""A cbx provider in Python, built into a component with componentize-py.

It speaks a small REST API (the one `fake_service.py` serves), so it works end to end before
you change anything. To write a provider for your service, change the requests in the
`Provider` class and the two mappings `state_of` and `error_of`; keep everything else.

componentize-py generates the `wit_world` bindings from `wit/provider.wit` (world
`provider-world`) while it builds. The names to know:

- records and enums of the contract are in `wit_world.imports.types`: `types.Sandbox`,
  `types.SandboxState.READY`, `types.OptionKind.TEXT`, `types.CheckStatus.OK`, …
- an error is raised as `Err(types.ProviderError_NotFound("…"))` (`Err` from
  `componentize_py_types`); the cases are `ProviderError_InvalidConfig`, `_Unauthorized`,
  `_Forbidden`, `_NotFound`, `_Conflict`, `_RateLimited(types.RateLimit(message=…,
  retry_after_ms=…))`, `_Quota`, `_Unavailable` and `_Other`.
- HTTP goes through the host: `http.send(http.Request(method=http.Method.GET, url=…,
  headers=[…], body=None, timeout_ms=None))`; a failure raises `Err(http.HttpError_…)`.
"""

import json
import urllib.parse

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import http, log, types

NAME = "template"
VERSION = "0.1.0"

# What `configure` accepted; an instance lives for one cbx command.
_api = None


def state_of(word):
    """Maps the service's state words to the contract's states. Adapt to your service."""
    return {
        "started": types.SandboxState.READY,
        "creating": types.SandboxState.CREATING,
        "starting": types.SandboxState.STARTING,
        "stopping": types.SandboxState.STOPPING,
        "stopped": types.SandboxState.STOPPED,
        "error": types.SandboxState.FAILED,
    }.get(word, types.SandboxState.UNKNOWN)


def error_of(status, headers, body, action):
    """Maps a service error to the contract's typed errors (cbx picks exit codes and retries
    from them; `cbx providers test` checks 404, 401 and 429). Adapt to your service."""
    try:
        message = json.loads(bytes(body)).get("message") or f"HTTP {status}"
    except Exception:
        message = bytes(body).decode("utf-8", errors="replace")[:200] or f"HTTP {status}"
    m = f"{action}: {message} (HTTP {status})"
    if status == 401:
        return Err(types.ProviderError_Unauthorized(m))
    if status == 403:
        return Err(types.ProviderError_Forbidden(m))
    if status == 404:
        return Err(types.ProviderError_NotFound(m))
    if status == 409:
        return Err(types.ProviderError_Conflict(m))
    if status == 429:
        wait = None
        for name, value in headers:
            if name.lower() == "retry-after" and value.strip().replace(".", "", 1).isdigit():
                wait = int(float(value) * 1000)
        return Err(types.ProviderError_RateLimited(types.RateLimit(message=m, retry_after_ms=wait)))
    if 500 <= status <= 599:
        return Err(types.ProviderError_Unavailable(m))
    return Err(types.ProviderError_Other(m))


def call(method, path, body, action):
    """Sends one request through the host (which checks it against the grant and attaches the
    credentials) and returns the JSON of a 2xx answer."""
    if _api is None:
        raise Err(types.ProviderError_InvalidConfig("configure was not called"))
    log.log(log.Level.DEBUG, f"{action}: {method.name} {path}")
    request = http.Request(
        method=method,
        url=_api + path,
        headers=[("accept", "application/json"), ("content-type", "application/json")],
        body=None if body is None else json.dumps(body).encode(),
        timeout_ms=60_000,
    )
    try:
        response = http.send(request)
    except Err as e:
        failure = e.value
        if isinstance(failure, (http.HttpError_Timeout, http.HttpError_Connect)):
            raise Err(types.ProviderError_Unavailable(f"{action}: {failure.value}")) from None
        raise Err(types.ProviderError_Other(f"{action}: {getattr(failure, 'value', failure)}")) from None
    if not 200 <= response.status < 300:
        raise error_of(response.status, response.headers, response.body, action)
    text = bytes(response.body).decode("utf-8", errors="replace").strip()
    return json.loads(text) if text else None


def sandbox_of(value):
    """Reads one sandbox from the service's JSON."""
    word = value.get("state") or "unknown"
    labels = value.get("labels") or {}
    return types.Sandbox(
        id=value["id"],
        name=value.get("name") or value["id"],
        state=state_of(word),
        provider_state=word,
        reason=value.get("errorReason"),
        labels=[(k, str(v)) for k, v in labels.items()],
        created_at=value.get("createdAt"),
    )


def path_of(sandbox_id, suffix=""):
    return f"/sandbox/{urllib.parse.quote(sandbox_id, safe='')}{suffix}"


class Provider(exports.Provider):
    """The `provider` export: each method is one short step; cbx does the waiting."""

    def describe(self):
        return types.ProviderInfo(
            name=NAME,
            version=VERSION,
            description="A template provider in Python (speaks the fake service's API)",
            options=[],
            features=["start", "stop", "touch", "labels"],
        )

    def configure(self, settings):
        global _api
        _api = dict(settings.endpoints).get("api", "").rstrip("/")
        if not _api:
            raise Err(types.ProviderError_InvalidConfig("the grant has no `api` endpoint"))
        return types.Profile(work_root="cbx", summary=[("api", _api)])

    def doctor(self):
        call(http.Method.GET, "/sandbox?limit=1", None, "list sandboxes")
        return [types.Check(name="api", status=types.CheckStatus.OK, detail="the API answers")]

    def create(self, request):
        body = {"name": request.name, "labels": dict(request.labels),
                "autoStopInterval": request.idle_timeout_minutes}
        return sandbox_of(call(http.Method.POST, "/sandbox", body, "create sandbox"))

    def get(self, id):
        return sandbox_of(call(http.Method.GET, path_of(id), None, "get sandbox"))

    def list(self, labels):
        query = urllib.parse.quote(json.dumps(dict(labels)), safe="")
        page = call(http.Method.GET, f"/sandbox?limit=100&labels={query}", None, "list sandboxes")
        return [sandbox_of(item) for item in page.get("items", [])]

    def start(self, id):
        return sandbox_of(call(http.Method.POST, path_of(id, "/start"), None, "start sandbox"))

    def stop(self, id):
        return sandbox_of(call(http.Method.POST, path_of(id, "/stop"), None, "stop sandbox"))

    def delete(self, id):
        call(http.Method.DELETE, path_of(id), None, "delete sandbox")

    def set_labels(self, id, labels):
        call(http.Method.PUT, path_of(id, "/labels"), {"labels": dict(labels)}, "set labels")
        return self.get(id)

    def touch(self, id):
        call(http.Method.POST, path_of(id, "/last-activity"), None, "touch sandbox")

    def mint_ssh_access(self, id):
        v = call(http.Method.POST, path_of(id, "/ssh-access?expiresInMinutes=60"), None, "mint ssh access")
        # `sshCommand` looks like `ssh [-p PORT] TOKEN@HOST`.
        words = (v.get("sshCommand") or "").split()
        port = int(words[words.index("-p") + 1]) if "-p" in words else 22
        host = words[-1].rsplit("@", 1)[-1] if words else "localhost"
        return types.SshAccess(
            user=v["token"], user_is_secret=True, host=host, port=port,
            identity_file=None, expires_at=v.get("expiresAt"),
        )
