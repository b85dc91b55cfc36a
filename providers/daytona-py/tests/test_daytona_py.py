"""Unit tests of the Python Daytona provider, run natively (CPython 3.10+) against the binding
stubs `componentize-py bindings` writes: `build.sh` puts those and the provider on PYTHONPATH.
The host is replaced by a scripted transport, so no test touches the network."""

import json
import unittest

from componentize_py_types import Err
from wit_world.imports import http, types

import app
from daytona_py import config, errors, wire
from daytona_py.client import MAX_PAGES, Daytona

SB = b'{"id":"id-1","name":"cbx-a","state":"creating","labels":{"cbx":"true"}}'


class Fake:
    """Answers in order and records every request and debug line."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.sent = []
        self.logs = []

    def send(self, request):
        self.sent.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def debug(self, message):
        self.logs.append(message)

    def urls(self):
        return [r.url for r in self.sent]


def ok(status, body, headers=()):
    if isinstance(body, str):
        body = body.encode()
    return http.Response(status=status, headers=list(headers), body=body)


def settings(options=(), credentials=("api-key",), base="https://d.example/api/"):
    return types.Settings(
        options=list(options), endpoints=[("api", base)], credentials=list(credentials)
    )


def cfg(options=(), credentials=("api-key",)):
    return config.Config.from_settings(settings(options, credentials))


def error_of(fn, *args):
    try:
        fn(*args)
    except Err as e:
        return e.value
    raise AssertionError("expected an error")


class ConfigTests(unittest.TestCase):
    def test_defaults_and_profile(self):
        c = cfg()
        self.assertEqual(c.base, "https://d.example/api")
        self.assertEqual((c.user, c.work_root), ("daytona", "cbx"))
        self.assertEqual((c.ssh_access_minutes, c.auto_archive_minutes), (60, 10080))
        self.assertEqual(c.auth, "api-key")
        p = c.profile()
        self.assertEqual(p.work_root, "cbx")
        self.assertEqual(
            p.summary,
            [
                ("api", "https://d.example/api"),
                ("snapshot", "account default"),
                ("target", "organization default"),
                ("user", "daytona"),
                ("auth", "api-key"),
            ],
        )

    def test_auth_kinds(self):
        self.assertEqual(config.auth_kind([]), "none")
        self.assertEqual(config.auth_kind(["jwt", "organization"]), "jwt")
        self.assertEqual(config.auth_kind(["api-key", "jwt"]), "api-key")

    def test_bad_values(self):
        for options, needle in [
            ([("user", "Root")], "option user"),
            ([("user", "a" * 33)], "option user"),
            ([("work-root", "")], "work-root"),
            ([("work-root", "a\x07b")], "work-root"),
            ([("ssh-access-minutes", "0")], "ssh-access-minutes"),
            ([("ssh-access-minutes", "1441")], "ssh-access-minutes"),
            ([("auto-archive-minutes", "-1")], "auto-archive-minutes"),
            ([("auto-archive-minutes", "4294967296")], "auto-archive-minutes"),
            ([("auto-delete-minutes", "0")], "auto-delete-minutes"),
            ([("auto-delete-minutes", "soon")], "auto-delete-minutes"),
            ([("auto-delete-minutes", "2147483648")], "auto-delete-minutes"),
        ]:
            err = error_of(config.Config.from_settings, settings(options))
            self.assertIsInstance(err, types.ProviderError_InvalidConfig, options)
            self.assertIn(needle, err.value)

    def test_missing_endpoint(self):
        s = types.Settings(options=[], endpoints=[], credentials=[])
        err = error_of(config.Config.from_settings, s)
        self.assertIsInstance(err, types.ProviderError_InvalidConfig)

    def test_describe_and_configure_through_the_export(self):
        p = app.Provider()
        info = p.describe()
        self.assertEqual(info.name, "daytona-py")
        self.assertEqual(info.features, ["start", "stop", "touch", "labels"])
        self.assertEqual(
            [o.name for o in info.options],
            [
                "snapshot",
                "target",
                "user",
                "work-root",
                "ssh-access-minutes",
                "auto-archive-minutes",
                "auto-delete-minutes",
            ],
        )
        self.assertTrue(all(o.default is not None and "\n" not in o.description for o in info.options))
        app._config = None
        err = error_of(p.get, "x")
        self.assertEqual(err, types.ProviderError_InvalidConfig("configure was not called"))
        self.assertEqual(p.configure(settings()).work_root, "cbx")
        self.assertIsNotNone(app._config)


class WireTests(unittest.TestCase):
    def test_percent_encode(self):
        self.assertEqual(wire.percent_encode("AZaz09-._~"), "AZaz09-._~")
        self.assertEqual(wire.percent_encode("a b/c?d=e&f+g"), "a%20b%2Fc%3Fd%3De%26f%2Bg")
        self.assertEqual(wire.percent_encode("é"), "%C3%A9")

    def test_labels_json_keeps_order_and_last_value(self):
        labels = [("zeta", "1"), ("alpha", "2"), ("zeta", "3")]
        self.assertEqual(wire.labels_json(labels), '{"zeta":"3","alpha":"2"}')

    def test_states(self):
        S = types.SandboxState
        for word, want in [
            ("started", S.READY),
            (" Started\n", S.READY),
            ("pulling_snapshot", S.CREATING),
            ("restoring", S.STARTING),
            ("pausing", S.STOPPING),
            ("paused", S.STOPPED),
            ("archiving", S.ARCHIVED),
            ("BUILD_FAILED", S.FAILED),
            ("destroying", S.DELETED),
            ("resizing", S.UNKNOWN),
            ("", S.UNKNOWN),
        ]:
            self.assertEqual(wire.map_state(word), want, word)

    def test_lenient_sandbox(self):
        sb = wire.parse_sandbox_body(
            "x",
            b'{"id":"a","state":"error","errorReason":"boom","labels":{"n":1,"z":null},"x":[]}',
        )
        self.assertEqual(sb.state, types.SandboxState.FAILED)
        self.assertEqual(sb.reason, "boom")
        self.assertEqual(sb.labels, [("n", "1")])
        self.assertEqual(sb.name, "a")
        minimal = wire.parse_sandbox_body("x", b'{"id":"abc","labels":null,"name":7}')
        self.assertEqual((minimal.provider_state, minimal.labels), ("unknown", []))

    def test_unexpected_bodies(self):
        err = error_of(wire.parse_sandbox_body, "get sandbox a", b"<html>dashboard</html>")
        self.assertEqual(
            err,
            types.ProviderError_Other(
                "daytona get sandbox a: unexpected response: <html>dashboard</html>"
            ),
        )
        err = error_of(wire.parse_sandbox_body, "a", b"y" * 500)
        self.assertLess(len(err.value), 260)
        for body in [b'{"total":3}', b"nope", b'[{"name":"no id"}]', b"\xff\xfe"]:
            error_of(wire.parse_page, "l", body)

    def test_ssh_command(self):
        self.assertEqual(wire.ssh_endpoint(None), ("ssh.app.daytona.io", 22))
        self.assertEqual(wire.ssh_endpoint("  "), ("ssh.app.daytona.io", 22))
        for cmd, want in [
            ("ssh tok@h.example", ("h.example", 22)),
            ("ssh -p 2222 tok@h.example", ("h.example", 2222)),
            ("ssh -p2222 tok@h.example", ("h.example", 2222)),
            ("tok@h.example -p 2200", ("h.example", 2200)),
            ("ssh -o A=b -oC=d -t -i key -p 2222 tok@r.example", ("r.example", 2222)),
            ("ssh -J jump@bastion tok@inner", ("inner", 22)),
            ("ssh a@b@host", ("host", 22)),
            ("ssh t@first t@second", ("second", 22)),
        ]:
            self.assertEqual(wire.parse_ssh_command(cmd), want, cmd)

    def test_ssh_command_errors_never_echo_it(self):
        secret = "SeCrEtToKeN"
        for cmd in [
            f"ssh {secret}",
            f"ssh -p {secret}@host",
            f"ssh {secret}@host -p",
            f"ssh -p 99999 {secret}@host",
            f"ssh -p 0 {secret}@host",
            f"ssh {secret}@",
            f"ssh {secret}@host -o",
        ]:
            err = error_of(wire.parse_ssh_command, cmd)
            self.assertNotIn(secret, err.value)
            self.assertTrue(err.value.startswith("daytona sshCommand"), err.value)


class ErrorTests(unittest.TestCase):
    def test_statuses(self):
        body = json.dumps({"statusCode": 400, "message": "nope"}).encode()
        for status, kind in [
            (401, types.ProviderError_Unauthorized),
            (403, types.ProviderError_Forbidden),
            (404, types.ProviderError_NotFound),
            (409, types.ProviderError_Conflict),
            (408, types.ProviderError_Unavailable),
            (500, types.ProviderError_Unavailable),
            (503, types.ProviderError_Unavailable),
            (400, types.ProviderError_Other),
            (422, types.ProviderError_Other),
        ]:
            self.assertIsInstance(errors.from_status("a", status, [], body).value, kind, status)

    def test_message_and_quota_and_config(self):
        err = errors.from_status("get sandbox abc", 404, [], b'{"message":"Sandbox abc not found"}')
        self.assertEqual(err.value.value, "daytona get sandbox abc: Sandbox abc not found (HTTP 404)")
        quota = b'{"message":"Total CPU limit exceeded. Maximum allowed: 10."}'
        self.assertIsInstance(errors.from_status("c", 400, [], quota).value, types.ProviderError_Quota)
        snap = b'{"message":"Snapshot foo not found."}'
        self.assertIsInstance(
            errors.from_status("c", 400, [], snap).value, types.ProviderError_InvalidConfig
        )
        region = b'{"message":"Region not found"}'
        self.assertIsInstance(
            errors.from_status("c", 404, [], region).value, types.ProviderError_InvalidConfig
        )
        listed = b'{"message":["a must be set","b too"]}'
        self.assertIn("a must be set, b too", errors.from_status("c", 400, [], listed).value.value)
        self.assertIn("(HTTP 502)", errors.from_status("c", 502, [], b"").value.value)
        self.assertIn("HTTP 502 (HTTP 502)", errors.from_status("c", 502, [], b"").value.value)

    def test_rate_limit(self):
        headers = [
            ("retry-after-1s", "2"),
            ("retry-after-1m", "0.25"),
            ("x-ratelimit-reset", "99"),
            ("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT"),
        ]
        err = errors.from_status("l", 429, headers, b'{"message":"slow down"}').value
        self.assertIsInstance(err, types.ProviderError_RateLimited)
        self.assertEqual(err.value.retry_after_ms, 2000)
        self.assertEqual(err.value.message, "daytona l: slow down (HTTP 429)")
        self.assertIsNone(errors.retry_after_ms([]))
        self.assertEqual(errors.retry_after_ms([("Retry-After", " 1.0001 ")]), 1001)
        self.assertEqual(errors.retry_after_ms([("retry-after", "9" * 30)]), errors.U64_MAX)

    def test_host_errors(self):
        cases = [
            (http.HttpError_Denied("not granted"), types.ProviderError_Other("not granted")),
            (
                http.HttpError_Timeout("after 30 s"),
                types.ProviderError_Unavailable("daytona get sandbox x: after 30 s"),
            ),
            (http.HttpError_Connect("dns"), types.ProviderError_Unavailable("daytona get sandbox x: dns")),
        ]
        for err, want in cases:
            self.assertEqual(errors.from_http_error("get sandbox x", err).value, want)
        big = errors.from_http_error("l", http.HttpError_TooLarge(1024)).value
        self.assertIn("1024", big.value)
        self.assertIsInstance(
            errors.from_http_error("l", http.HttpError_InvalidRequest("bad")).value,
            types.ProviderError_Other,
        )


class OperationTests(unittest.TestCase):
    def test_create_request(self):
        c = cfg([("snapshot", "daytona-medium"), ("target", "eu")])
        fake = Fake([ok(200, SB)])
        req = types.CreateRequest(
            name="cbx-a", labels=[("cbx", "true"), ("lease", "l1")], idle_timeout_minutes=30, ttl_minutes=90
        )
        sb = Daytona(c, fake).create(req)
        self.assertEqual(sb.state, types.SandboxState.CREATING)
        r = fake.sent[0]
        self.assertEqual((r.method, r.url, r.timeout_ms), (http.Method.POST, "https://d.example/api/sandbox", 90_000))
        self.assertIn(("content-type", "application/json"), r.headers)
        self.assertIn(("accept", "application/json"), r.headers)
        self.assertEqual(
            json.loads(r.body),
            {
                "name": "cbx-a",
                "labels": {"cbx": "true", "lease": "l1"},
                "autoStopInterval": 30,
                "autoArchiveInterval": 10080,
                "autoDeleteInterval": 90,
                "public": False,
                "snapshot": "daytona-medium",
                "target": "eu",
                "user": "daytona",
            },
        )
        self.assertEqual(fake.logs, ["POST /sandbox"])
        fake = Fake([ok(200, SB)])
        Daytona(cfg(), fake).create(req)
        body = json.loads(fake.sent[0].body)
        self.assertNotIn("snapshot", body)
        self.assertNotIn("target", body)

    def test_get_encodes_id_and_refuses_empty(self):
        fake = Fake([ok(200, SB)])
        Daytona(cfg(), fake).get("a b/c")
        self.assertEqual(fake.urls(), ["https://d.example/api/sandbox/a%20b%2Fc"])
        self.assertIsNone(fake.sent[0].body)
        fake = Fake([])
        error_of(Daytona(cfg(), fake).delete, " ")
        self.assertEqual(fake.sent, [])

    def test_list_follows_cursors(self):
        fake = Fake(
            [
                ok(200, '{"items":[{"id":"a"},{"id":"b"}],"nextCursor":"c/1"}'),
                ok(200, '{"items":[{"id":"b"},{"id":"c"}],"nextCursor":"c2"}'),
                ok(200, '{"items":[],"nextCursor":null}'),
            ]
        )
        out = Daytona(cfg(), fake).list([("cbx", "true"), ("p", "d")])
        self.assertEqual([s.id for s in out], ["a", "b", "c"])
        q = "https://d.example/api/sandbox?limit=100&labels=%7B%22cbx%22%3A%22true%22%2C%22p%22%3A%22d%22%7D"
        self.assertEqual(fake.urls(), [q, q + "&cursor=c%2F1", q + "&cursor=c2"])

    def test_list_bare_array_repeated_cursor_and_page_cap(self):
        fake = Fake([ok(200, '[{"id":"a"}]')])
        self.assertEqual(len(Daytona(cfg(), fake).list([])), 1)
        fake = Fake(
            [
                ok(200, '{"items":[],"nextCursor":"x"}'),
                ok(200, '{"items":[],"nextCursor":"y"}'),
                ok(200, '{"items":[],"nextCursor":"x"}'),
            ]
        )
        self.assertIn("repeated", error_of(Daytona(cfg(), fake).list, []).value)
        fake = Fake([ok(200, f'{{"items":[],"nextCursor":"c{i}"}}') for i in range(MAX_PAGES)])
        self.assertIn("1000 pages", error_of(Daytona(cfg(), fake).list, []).value)

    def test_start_stop_touch_paths(self):
        fake = Fake([ok(200, SB), ok(200, SB), ok(201, "")])
        d = Daytona(cfg(), fake)
        d.start("id-1")
        d.stop("id-1")
        self.assertIsNone(d.touch("id-1"))
        self.assertEqual(
            fake.urls(),
            [
                "https://d.example/api/sandbox/id-1/start",
                "https://d.example/api/sandbox/id-1/stop",
                "https://d.example/api/sandbox/id-1/last-activity",
            ],
        )
        self.assertEqual([r.timeout_ms for r in fake.sent], [90_000, None, None])
        self.assertTrue(all(r.method == http.Method.POST and r.body is None for r in fake.sent))

    def test_delete_outcomes(self):
        fake = Fake(
            [
                ok(200, SB),
                ok(404, '{"message":"Sandbox with ID or name id-1 not found"}'),
                ok(409, '{"message":"Sandbox state change in progress"}'),
            ]
        )
        d = Daytona(cfg(), fake)
        self.assertIsNone(d.delete("id-1"))
        self.assertIsInstance(error_of(d.delete, "id-1"), types.ProviderError_NotFound)
        self.assertEqual(
            error_of(d.delete, "id-1"),
            types.ProviderError_Conflict(
                "daytona delete sandbox id-1: Sandbox state change in progress (HTTP 409)"
            ),
        )
        self.assertEqual(fake.sent[0].method, http.Method.DELETE)

    def test_set_labels(self):
        fake = Fake([ok(200, SB)])
        sb = Daytona(cfg(), fake).set_labels("id-1", [("cbx", "true")])
        self.assertEqual(sb.id, "id-1")
        r = fake.sent[0]
        self.assertEqual((r.method, r.url), (http.Method.PUT, "https://d.example/api/sandbox/id-1/labels"))
        self.assertEqual(r.body, b'{"labels":{"cbx":"true"}}')
        fake = Fake([ok(200, '{"labels":{"cbx":"true"}}'), ok(200, SB)])
        sb = Daytona(cfg(), fake).set_labels("id-1", [("cbx", "true")])
        self.assertEqual(sb.name, "cbx-a")
        self.assertEqual(fake.sent[1].method, http.Method.GET)
        self.assertEqual(fake.sent[1].url, "https://d.example/api/sandbox/id-1")

    def test_mint_ssh_access(self):
        fake = Fake(
            [
                ok(
                    200,
                    '{"token":"TOKsecret","sshCommand":"ssh -p 2222 TOKsecret@gw.example",'
                    '"expiresAt":"2026-01-01T00:00:00Z"}',
                )
            ]
        )
        a = Daytona(cfg([("ssh-access-minutes", "120")]), fake).mint_ssh_access("id-1")
        self.assertEqual(
            a,
            types.SshAccess(
                user="TOKsecret",
                user_is_secret=True,
                host="gw.example",
                port=2222,
                identity_file=None,
                expires_at="2026-01-01T00:00:00Z",
            ),
        )
        self.assertEqual(fake.urls(), ["https://d.example/api/sandbox/id-1/ssh-access?expiresInMinutes=120"])
        self.assertFalse(any("TOKsecret" in line for line in fake.logs))

    def test_mint_ssh_access_defaults_and_errors(self):
        fake = Fake(
            [
                ok(200, '{"token":"T1"}'),
                ok(200, '{"token":""}'),
                ok(200, '{"token":"T2secret","sshCommand":"ssh -p T2secret@h"}'),
                ok(200, "token=T3secret"),
            ]
        )
        d = Daytona(cfg(), fake)
        a = d.mint_ssh_access("id-1")
        self.assertEqual((a.host, a.port), ("ssh.app.daytona.io", 22))
        self.assertEqual(
            error_of(d.mint_ssh_access, "id-1"),
            types.ProviderError_Other("daytona ssh access response has no token"),
        )
        self.assertNotIn("T2secret", error_of(d.mint_ssh_access, "id-1").value)
        self.assertNotIn("T3secret", error_of(d.mint_ssh_access, "id-1").value)

    def test_doctor(self):
        fake = Fake([ok(200, '{"items":[],"nextCursor":null}')])
        checks = Daytona(cfg(credentials=["jwt"]), fake).doctor()
        self.assertEqual(
            checks,
            [
                types.Check("auth", types.CheckStatus.OK, "credentials accepted (jwt)"),
                types.Check("api", types.CheckStatus.OK, "GET /sandbox answered 200"),
            ],
        )
        self.assertEqual(
            fake.urls(), ["https://d.example/api/sandbox?limit=1&labels=%7B%22cbx%22%3A%22true%22%7D"]
        )
        fake = Fake([ok(200, "<!doctype html><html></html>")])
        self.assertEqual(Daytona(cfg(), fake).doctor()[1].status, types.CheckStatus.FAIL)
        fake = Fake([ok(200, "[]")])
        self.assertEqual(Daytona(cfg(credentials=[]), fake).doctor()[0].status, types.CheckStatus.WARN)

    def test_doctor_maps_errors(self):
        fake = Fake([ok(401, '{"message":"Invalid credentials"}')])
        self.assertEqual(
            error_of(Daytona(cfg(), fake).doctor),
            types.ProviderError_Unauthorized("daytona list sandboxes: Invalid credentials (HTTP 401)"),
        )
        fake = Fake([Err(http.HttpError_Connect("connection refused"))])
        self.assertIsInstance(error_of(Daytona(cfg(), fake).doctor), types.ProviderError_Unavailable)


if __name__ == "__main__":
    unittest.main()
