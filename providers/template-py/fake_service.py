"""A fake of the service the provider speaks to: just enough of its REST API, in memory, for
`cbx providers test` while you develop. Make it answer like your real service — the same
paths, states and error statuses — and the provider you test against it will work against the
real one. Only the standard library:

    python3 fake_service.py [PORT] [API_KEY]        (default 8080 test-key)

The API, under /api: POST /sandbox, GET /sandbox?labels=<json>, GET|DELETE /sandbox/ID,
POST /sandbox/ID/start|stop|last-activity|ssh-access, PUT /sandbox/ID/labels. A sandbox is
`creating` for a second, then `started`; `stopping` for a second, then `stopped`. Every
request needs `Authorization: Bearer API_KEY` (401 otherwise); unknown ids answer 404. SSH
access names 127.0.0.1:2222 (nothing listens there: it is a fake).
"""

import itertools
import json
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
KEY = sys.argv[2] if len(sys.argv) > 2 else "test-key"
SANDBOXES = {}
IDS = itertools.count(1)


def state(sb):
    """The sandbox's state, after any transition that is due."""
    nxt = sb.get("next")
    if nxt and time.monotonic() >= nxt[1]:
        sb["state"], sb["next"] = nxt[0], None
    return sb["state"]


def go(sb, now, then):
    sb["state"], sb["next"] = now, (then, time.monotonic() + 1)


def view(sb):
    return {"id": sb["id"], "name": sb["name"], "state": state(sb), "labels": sb["labels"]}


class Handler(BaseHTTPRequestHandler):
    def answer(self, status, value=None):
        body = b"" if value is None else json.dumps(value).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def handle_any(self):
        if self.headers.get("authorization") != f"Bearer {KEY}":
            return self.answer(401, {"message": "missing or wrong API key"})
        url = urllib.parse.urlsplit(self.path)
        parts = url.path.removeprefix("/api/").split("/")
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length) or b"null") if length else None
        method = self.command
        if parts == ["sandbox"] and method == "POST":
            sid = f"sb-{next(IDS)}"
            sb = {"id": sid, "name": body.get("name") or sid, "labels": body.get("labels") or {}}
            go(sb, "creating", "started")
            SANDBOXES[sid] = sb
            return self.answer(200, view(sb))
        if parts == ["sandbox"] and method == "GET":
            query = dict(urllib.parse.parse_qsl(url.query))
            wanted = json.loads(query.get("labels") or "{}")
            items = [view(sb) for sb in SANDBOXES.values()
                     if all(sb["labels"].get(k) == v for k, v in wanted.items())]
            return self.answer(200, {"items": items})
        if len(parts) >= 2 and parts[0] == "sandbox":
            sb = SANDBOXES.get(urllib.parse.unquote(parts[1]))
            if sb is None:
                return self.answer(404, {"message": f"sandbox {parts[1]} not found"})
            return self.sandbox(sb, method, parts[2:], body)
        return self.answer(404, {"message": "no such route"})

    def sandbox(self, sb, method, rest, body):
        if (method, rest) == ("GET", []):
            return self.answer(200, view(sb))
        if (method, rest) == ("DELETE", []):
            del SANDBOXES[sb["id"]]
            return self.answer(200)
        if (method, rest) in (("POST", ["start"]), ("POST", ["stop"])):
            go(sb, *(("starting", "started") if rest == ["start"] else ("stopping", "stopped")))
            return self.answer(200, view(sb))
        if (method, rest) == ("PUT", ["labels"]):
            sb["labels"] = body.get("labels") or {}
            return self.answer(200, {"labels": sb["labels"]})
        if (method, rest) == ("POST", ["last-activity"]):
            return self.answer(200)
        if (method, rest) == ("POST", ["ssh-access"]):
            if state(sb) != "started":
                return self.answer(409, {"message": f"sandbox {sb['id']} is not started"})
            token = f"tok{sb['id'].replace('-', '')}x{next(IDS)}"
            return self.answer(200, {"token": token, "sshCommand": f"ssh -p 2222 {token}@127.0.0.1",
                                     "expiresAt": "2099-01-01T00:00:00Z"})
        return self.answer(404, {"message": "no such route"})

    do_GET = do_POST = do_PUT = do_DELETE = handle_any


if __name__ == "__main__":
    print(f"fake service on http://127.0.0.1:{PORT}/api (API key {KEY})", file=sys.stderr, flush=True)
    ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
