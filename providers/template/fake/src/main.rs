//! A fake of the service the provider speaks to: just enough of its REST API, in memory, for
//! `cbx providers test` and `cbx warmup`/`list`/`stop` while you develop. Make it answer like
//! your real service — the same paths, states, error statuses — and the provider you test
//! against it will work against the real one.
//!
//!     cargo run --manifest-path fake/Cargo.toml -- [PORT] [API_KEY]     (default 8080 test-key)
//!
//! The API (the subset of Daytona's that the provider template speaks), under `/api`:
//! `POST /sandbox`, `GET /sandbox?labels=<json>`, `GET|DELETE /sandbox/ID`,
//! `POST /sandbox/ID/start|stop|last-activity|ssh-access`, `PUT /sandbox/ID/labels`. A sandbox
//! is `creating` for a second, then `started`; `stopping` for a second, then `stopped`. Every
//! request needs `Authorization: Bearer API_KEY` (401 otherwise); unknown ids answer 404.
//! SSH access names 127.0.0.1:2222 (nothing listens there: it is a fake).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

type Labels = BTreeMap<String, String>;

struct Sandbox {
    id: String,
    name: String,
    labels: Labels,
    /// The state it is heading to, and when it gets there.
    state: &'static str,
    next: Option<(&'static str, Instant)>,
}

impl Sandbox {
    fn state(&mut self) -> &'static str {
        if let Some((next, at)) = self.next
            && Instant::now() >= at
        {
            self.state = next;
            self.next = None;
        }
        self.state
    }

    fn go(&mut self, now: &'static str, then: &'static str) {
        self.state = now;
        self.next = Some((then, Instant::now() + Duration::from_secs(1)));
    }

    fn json(&mut self) -> String {
        format!(
            r#"{{"id":{},"name":{},"state":"{}","labels":{}}}"#,
            quote(&self.id),
            quote(&self.name),
            self.state(),
            object(&self.labels)
        )
    }
}

struct Request {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    authorized: bool,
    body: String,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port = args.first().map_or("8080", String::as_str);
    let key = args.get(1).map_or("test-key", String::as_str).to_string();
    let listener = TcpListener::bind(format!("127.0.0.1:{port}")).expect("bind the port");
    eprintln!("fake service on http://127.0.0.1:{port}/api (API key {key})");
    let mut sandboxes: Vec<Sandbox> = Vec::new();
    let mut next_id = 1;
    for stream in listener.incoming().flatten() {
        let Some(request) = read(&stream, &key) else { continue };
        let (status, body) = if request.authorized {
            route(&request, &mut sandboxes, &mut next_id)
        } else {
            (401, error("missing or wrong API key"))
        };
        eprintln!("{} {} → {status}", request.method, request.path);
        respond(stream, status, &body);
    }
}

/// Answers one request: (status, JSON body).
fn route(r: &Request, sandboxes: &mut Vec<Sandbox>, next_id: &mut u32) -> (u16, String) {
    let parts: Vec<&str> = r.path.trim_start_matches("/api/").split('/').collect();
    let find = |sandboxes: &mut Vec<Sandbox>, id: &str| sandboxes.iter().position(|s| s.id == id);
    match (r.method.as_str(), parts.as_slice()) {
        ("POST", ["sandbox"]) => {
            let id = format!("sb-{next_id}");
            *next_id += 1;
            let mut sandbox = Sandbox {
                name: field(&r.body, "name").unwrap_or_else(|| id.clone()),
                labels: labels_in(&r.body),
                id,
                state: "creating",
                next: None,
            };
            sandbox.go("creating", "started");
            let json = sandbox.json();
            sandboxes.push(sandbox);
            (200, json)
        }
        ("GET", ["sandbox"]) => {
            let wanted = r.query.iter().find(|(k, _)| k == "labels").map(|(_, v)| parse_object(v)).unwrap_or_default();
            let items: Vec<String> = sandboxes
                .iter_mut()
                .filter(|s| wanted.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
                .map(Sandbox::json)
                .collect();
            (200, format!(r#"{{"items":[{}]}}"#, items.join(",")))
        }
        (method, ["sandbox", id, rest @ ..]) => {
            let Some(i) = find(sandboxes, id) else {
                return (404, error(&format!("sandbox {id} not found")));
            };
            let s = &mut sandboxes[i];
            let state = s.state();
            match (method, rest) {
                ("GET", []) => (200, s.json()),
                ("DELETE", []) => {
                    sandboxes.remove(i);
                    (200, String::new())
                }
                ("POST", ["start"]) => {
                    s.go("starting", "started");
                    (200, s.json())
                }
                ("POST", ["stop"]) => {
                    s.go("stopping", "stopped");
                    (200, s.json())
                }
                ("PUT", ["labels"]) => {
                    s.labels = labels_in(&r.body);
                    (200, format!(r#"{{"labels":{}}}"#, object(&s.labels)))
                }
                ("POST", ["last-activity"]) => (200, String::new()),
                ("POST", ["ssh-access"]) if state != "started" => {
                    (409, error(&format!("sandbox {id} is not started")))
                }
                ("POST", ["ssh-access"]) => {
                    *next_id += 1;
                    let token = format!("tok{}x{next_id}", s.id.replace('-', ""));
                    (200, format!(
                        r#"{{"token":"{token}","sshCommand":"ssh -p 2222 {token}@127.0.0.1","expiresAt":"2099-01-01T00:00:00Z"}}"#
                    ))
                }
                _ => (404, error("no such route")),
            }
        }
        _ => (404, error("no such route")),
    }
}

/// Reads one HTTP/1.1 request (no keep-alive).
fn read(stream: &TcpStream, key: &str) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut words = line.split_whitespace();
    let method = words.next()?.to_string();
    let target = words.next()?.to_string();
    let (mut length, mut authorized) = (0, false);
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().ok()?,
            "authorization" => authorized = value.trim() == format!("Bearer {key}"),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let query = query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect();
    Some(Request { method, path: path.to_string(), query, authorized, body: String::from_utf8_lossy(&body).into() })
}

fn respond(mut stream: TcpStream, status: u16, body: &str) {
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn error(message: &str) -> String {
    format!(r#"{{"message":{}}}"#, quote(message))
}

/// Percent-decodes a query component.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into()
}

/// A JSON string literal.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON object of strings.
fn object(labels: &Labels) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{}:{}", quote(k), quote(v))).collect();
    format!("{{{}}}", pairs.join(","))
}

/// The `labels` object inside a JSON body.
fn labels_in(body: &str) -> Labels {
    body.find("\"labels\"")
        .and_then(|i| body[i..].find('{').map(|j| i + j))
        .map(|start| parse_object(&body[start..]))
        .unwrap_or_default()
}

/// The string `field` of a flat JSON body.
fn field(body: &str, name: &str) -> Option<String> {
    let i = body.find(&format!("\"{name}\""))?;
    let rest = &body[i + name.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    string_at(rest).map(|(s, _)| s)
}

/// Parses a flat JSON object of strings (`{"k":"v",…}`), the start of `text`.
fn parse_object(text: &str) -> Labels {
    let mut out = Labels::new();
    let mut rest = text.trim_start().strip_prefix('{').unwrap_or("");
    loop {
        rest = rest.trim_start().trim_start_matches(',').trim_start();
        let Some((key, after)) = string_at(rest) else { return out };
        let after = after.trim_start().strip_prefix(':').unwrap_or(after).trim_start();
        let Some((value, after)) = string_at(after) else { return out };
        out.insert(key, value);
        rest = after;
    }
}

/// The JSON string literal at the start of `text`, and what follows it.
fn string_at(text: &str) -> Option<(String, &str)> {
    let mut chars = text.strip_prefix('"')?.char_indices();
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &text[i + 2..])),
            '\\' => match chars.next()?.1 {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'u' => {
                    let hex: String = (0..4).filter_map(|_| chars.next().map(|(_, c)| c)).collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?).unwrap_or('?'));
                }
                c => out.push(c),
            },
            c => out.push(c),
        }
    }
    None
}
