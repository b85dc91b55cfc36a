"""Daytona's wire format: encoding requests and parsing responses leniently.

Responses are read as plain JSON values, so unknown fields, missing optional fields and fields
of an unexpected type never fail a call; only a body that is not JSON, or a sandbox without an
`id`, is an error. Nothing here ever quotes an SSH access answer or command: they hold a token.
"""

import json
from urllib.parse import quote

from wit_world.imports import types

from .errors import excerpt, other

# Longest excerpt of an unexpected response quoted in an error, in characters.
UNEXPECTED_EXCERPT_CHARS = 200

# Daytona's public SSH gateway, used when the access answer has no `sshCommand`.
DEFAULT_GATEWAY_HOST = "ssh.app.daytona.io"
# The SSH port used when the command names none.
DEFAULT_SSH_PORT = 22

# Options of `ssh` that take a value in the next word (or attached, e.g. `-oKey=value`).
# `-p` is handled separately.
SSH_OPTIONS_WITH_VALUE = frozenset("oiFJlbBcDEeLmOQRSWw")

# Daytona's states (lowercase) and the normalised state each maps to; others are `unknown`
# (`unknown`, `resizing`, `snapshotting`, `forking` and anything newer).
_STATES = {
    "started": types.SandboxState.READY,
    "creating": types.SandboxState.CREATING,
    "pending_build": types.SandboxState.CREATING,
    "building_snapshot": types.SandboxState.CREATING,
    "pulling_snapshot": types.SandboxState.CREATING,
    "starting": types.SandboxState.STARTING,
    "restoring": types.SandboxState.STARTING,
    "resuming": types.SandboxState.STARTING,
    "stopping": types.SandboxState.STOPPING,
    "pausing": types.SandboxState.STOPPING,
    "stopped": types.SandboxState.STOPPED,
    "paused": types.SandboxState.STOPPED,
    "archived": types.SandboxState.ARCHIVED,
    "archiving": types.SandboxState.ARCHIVED,
    "error": types.SandboxState.FAILED,
    "build_failed": types.SandboxState.FAILED,
    "destroyed": types.SandboxState.DELETED,
    "destroying": types.SandboxState.DELETED,
}


# ---------------------------------------------------------------------------------------------
# Encoding


def percent_encode(text):
    """Percent-encodes every byte of `text` except the unreserved `A-Za-z0-9-._~` (RFC 3986)."""
    return quote(text, safe="", encoding="utf-8")


def label_object(labels):
    """A label list as a dict, keys in the list's order; a repeated key keeps its last value."""
    out = {}
    for key, value in labels:
        out[key] = value
    return out


def to_json(value):
    """Compact JSON text, non-ASCII kept as it is."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def to_body(value):
    """A request body: compact UTF-8 JSON."""
    return to_json(value).encode("utf-8")


def labels_json(labels):
    """The labels as a compact JSON object, e.g. `{"cbx":"true"}` (for the list query)."""
    return to_json(label_object(labels))


def create_body(request, cfg):
    """The body of `POST /sandbox`. Resources (cpu, memory, disk) are never sent: the snapshot
    sets the size. Empty snapshot, target and user are left out for Daytona's defaults."""
    body = {
        "name": request.name,
        "labels": label_object(request.labels),
        "autoStopInterval": request.idle_timeout_minutes,
        "autoArchiveInterval": cfg.auto_archive_minutes,
        "autoDeleteInterval": cfg.auto_delete_interval(request.ttl_minutes),
        "public": False,
    }
    for key, value in (("snapshot", cfg.snapshot), ("target", cfg.target), ("user", cfg.user)):
        if value:
            body[key] = value
    return to_body(body)


def labels_body(labels):
    """The body of `PUT /sandbox/{id}/labels`: the complete new label set."""
    return to_body({"labels": label_object(labels)})


# ---------------------------------------------------------------------------------------------
# Parsing


def _load(body):
    """The JSON value of a body, or None when it is not JSON."""
    try:
        return json.loads(bytes(body))
    except Exception:  # malformed JSON, bad UTF-8, absurd nesting
        return None


def unexpected(action, body):
    """The error for a 2xx body cbx cannot read, quoting its start."""
    if isinstance(body, (bytes, bytearray)):
        body = bytes(body).decode("utf-8", errors="replace")
    text = body.strip()
    shown = excerpt(text, UNEXPECTED_EXCERPT_CHARS) if text else "(empty body)"
    return other(f"daytona {action}: unexpected response: {shown}")


def _str_field(value, key):
    """A string field of an object, or None."""
    if not isinstance(value, dict):
        return None
    field = value.get(key)
    return field if isinstance(field, str) else None


def _nonblank(value, key):
    """A string field that is present and not blank, trimmed; else None."""
    field = _str_field(value, key)
    if field is None or not field.strip():
        return None
    return field.strip()


def _id_of(value):
    """The `id` of a Sandbox object, when it is a non-blank string."""
    sid = _str_field(value, "id")
    return sid if sid is not None and sid.strip() else None


def _labels_of(value):
    """The `labels` object's entries: strings as they are, other non-null values as JSON."""
    labels = value.get("labels")
    if not isinstance(labels, dict):
        return []
    out = []
    for key, val in labels.items():
        if val is None:
            continue
        out.append((key, val if isinstance(val, str) else to_json(val)))
    return out


def map_state(daytona_state):
    """Daytona's `state` (any case, surrounding blanks ignored) as a normalised state."""
    return _STATES.get(daytona_state.strip().lower(), types.SandboxState.UNKNOWN)


def sandbox_from_value(value):
    """A Sandbox from a JSON value; None when it is not an object with a string `id`."""
    sid = _id_of(value)
    if sid is None:
        return None
    provider_state = _nonblank(value, "state") or "unknown"
    return types.Sandbox(
        id=sid,
        name=_nonblank(value, "name") or sid,
        state=map_state(provider_state),
        provider_state=provider_state,
        reason=_nonblank(value, "errorReason"),
        labels=_labels_of(value),
        created_at=_nonblank(value, "createdAt"),
    )


def parse_sandbox_body(action, body):
    """The Sandbox in a response body; raises `other` when there is none."""
    sandbox = sandbox_from_value(_load(body))
    if sandbox is None:
        raise unexpected(action, body)
    return sandbox


def has_sandbox_id(body):
    """Whether a body is a JSON object with a non-blank string `id` (looks like a Sandbox)."""
    return _id_of(_load(body)) is not None


def parse_page(action, body):
    """One page of `GET /sandbox`: `(sandboxes, next cursor or None)`.

    Accepts `{items, nextCursor}` and, from older servers, a bare array (no further pages).
    """
    value = _load(body)
    cursor = None
    if isinstance(value, list):
        items = value
    elif isinstance(value, dict) and isinstance(value.get("items"), list):
        items = value["items"]
        raw = value.get("nextCursor")
        if isinstance(raw, str) and raw.strip():
            cursor = raw.strip()
    else:
        raise unexpected(action, body)
    sandboxes = []
    for item in items:
        sandbox = sandbox_from_value(item)
        if sandbox is None:
            raise unexpected(action, to_json(item))
        sandboxes.append(sandbox)
    return sandboxes, cursor


def parse_ssh_access(action, body):
    """`(token, sshCommand or None, expiresAt or None)` from the SSH access answer.

    Errors never quote the body: it holds the token.
    """
    value = _load(body)
    if value is None:
        raise other(f"daytona {action}: unexpected response ({len(body)} bytes, not JSON)")
    token = _str_field(value, "token")
    if token is None or not token.strip():
        raise other("daytona ssh access response has no token")
    return token.strip(), _str_field(value, "sshCommand"), _nonblank(value, "expiresAt")


def ssh_endpoint(ssh_command):
    """`(host, port)` of the SSH gateway: from `ssh_command` when it is present and not blank,
    else Daytona's public gateway on port 22."""
    if ssh_command is None or not ssh_command.strip():
        return DEFAULT_GATEWAY_HOST, DEFAULT_SSH_PORT
    return parse_ssh_command(ssh_command)


def parse_ssh_command(cmd):
    """`(host, port)` from `ssh [options] [-p PORT] TOKEN@HOST`.

    `-p N`/`-pN` set the port, options that take a value skip it, other flags are ignored, and
    the last non-option word with an `@` is the destination, split at its last `@`. The
    command holds the token as its user name, so errors never quote it or any of its words.
    """
    words = cmd.split()
    if words and words[0] == "ssh":
        words = words[1:]
    port = DEFAULT_SSH_PORT
    destination = None
    options_done = False
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if options_done or not word.startswith("-") or word == "-":
            if "@" in word:
                destination = word
            continue
        if word == "--":
            options_done = True
            continue
        letter, attached = word[1], word[2:]
        if letter == "p":
            if attached:
                value = attached
            elif i < len(words):
                value = words[i]
                i += 1
            else:
                raise other("daytona sshCommand has -p without a port")
            if not value.isascii() or not value.isdigit() or not 0 < int(value) <= 65535:
                raise other("daytona sshCommand has an invalid -p port")
            port = int(value)
        elif letter in SSH_OPTIONS_WITH_VALUE and not attached:
            if i >= len(words):
                raise other(f"daytona sshCommand has -{letter} without a value")
            i += 1
        # Any other flag (or a value option with its value attached) is ignored.
    if destination is None:
        raise other("daytona sshCommand has no user@host destination")
    host = destination.rsplit("@", 1)[1]
    if not host:
        raise other("daytona sshCommand has an empty host")
    return host, port
