//! Daytona's wire format: request bodies and lenient parsing of responses.
//!
//! Responses are read through `serde_json::Value` rather than strict structs so that unknown
//! fields, missing optional fields and fields of an unexpected type never fail a call; only a
//! body that is not JSON, or a sandbox without an `id`, is an error.

use serde::Serialize;
use serde_json::Value;

use crate::cbx::provider::types::{Labels, Sandbox};
use crate::encode::LabelObject;
use crate::errors::excerpt;
use crate::states::map_state;

/// Longest excerpt of an unexpected response quoted in an error, in characters.
const UNEXPECTED_EXCERPT_CHARS: usize = 200;

/// The body of `POST /sandbox`. Resource fields (cpu, memory, disk, gpu) are never sent:
/// sizing comes from the snapshot.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateSandbox<'a> {
    /// The sandbox's name.
    pub name: &'a str,
    /// Labels to set at creation.
    pub labels: LabelObject<'a>,
    /// Idle minutes before Daytona stops the sandbox (0: never).
    pub auto_stop_interval: u32,
    /// Minutes a stopped sandbox waits before it is archived (0: Daytona's maximum).
    pub auto_archive_interval: u32,
    /// Minutes after it stops before Daytona deletes the sandbox (-1: never).
    pub auto_delete_interval: i64,
    /// Whether HTTP previews are public; always false.
    pub public: bool,
    /// Snapshot name or id; omitted for the account's default.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub snapshot: &'a str,
    /// Region name or id; omitted for the organization's default.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub target: &'a str,
    /// OS user; omitted for Daytona's default.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub user: &'a str,
}

/// The body of `PUT /sandbox/{id}/labels`: the complete new label set.
#[derive(Serialize)]
pub struct ReplaceLabels<'a> {
    /// Every label the sandbox should carry afterwards.
    pub labels: LabelObject<'a>,
}

/// One page of `GET /sandbox`.
#[derive(Debug)]
pub struct Page {
    /// The sandboxes on this page.
    pub items: Vec<Sandbox>,
    /// The cursor of the next page; none on the last page (or from servers without paging).
    pub next_cursor: Option<String>,
}

/// The parts of `POST /sandbox/{id}/ssh-access`'s answer cbx uses.
pub struct SshAccessResponse {
    /// The access token (the SSH user name). Secret.
    pub token: String,
    /// The ready-made command, e.g. `ssh -p 2222 <token>@host`, if given. Contains the token.
    pub ssh_command: Option<String>,
    /// When the access expires (RFC 3339), if given.
    pub expires_at: Option<String>,
}

/// Serialises a request body to JSON bytes.
pub fn to_body<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("request bodies always serialise")
}

/// The error for a 2xx body cbx cannot read, quoting its start.
pub fn unexpected(action: &str, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let shown = if text.is_empty() {
        "(empty body)".to_string()
    } else {
        excerpt(text, UNEXPECTED_EXCERPT_CHARS)
    };
    format!("daytona {action}: unexpected response: {shown}")
}

/// Parses a body holding one Sandbox object.
pub fn parse_sandbox_body(action: &str, body: &[u8]) -> Result<Sandbox, String> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| sandbox_from_value(&v))
        .ok_or_else(|| unexpected(action, body))
}

/// Whether a body is a JSON object with a non-empty string `id` (i.e. looks like a Sandbox).
pub fn has_sandbox_id(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body).is_ok_and(|v| id_of(&v).is_some())
}

/// Parses one page of the list: `{items, nextCursor}` or, from older servers, a bare array.
pub fn parse_page(action: &str, body: &[u8]) -> Result<Page, String> {
    let value: Value = serde_json::from_slice(body).map_err(|_| unexpected(action, body))?;
    let (items, next_cursor) = match &value {
        Value::Array(items) => (items, None),
        Value::Object(obj) => match obj.get("items") {
            Some(Value::Array(items)) => {
                let cursor = obj
                    .get("nextCursor")
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_string);
                (items, cursor)
            }
            _ => return Err(unexpected(action, body)),
        },
        _ => return Err(unexpected(action, body)),
    };
    let items = items
        .iter()
        .map(|item| {
            sandbox_from_value(item).ok_or_else(|| {
                let text = item.to_string();
                unexpected(action, text.as_bytes())
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page { items, next_cursor })
}

/// Parses the SSH access answer. Errors never quote the body, which holds the token.
pub fn parse_ssh_access(action: &str, body: &[u8]) -> Result<SshAccessResponse, String> {
    let value: Value = serde_json::from_slice(body).map_err(|_| {
        format!(
            "daytona {action}: unexpected response ({} bytes, not JSON)",
            body.len()
        )
    })?;
    let token = str_field(&value, "token")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| "daytona ssh access response has no token".to_string())?
        .to_string();
    Ok(SshAccessResponse {
        token,
        ssh_command: str_field(&value, "sshCommand").map(str::to_string),
        expires_at: nonblank(&value, "expiresAt"),
    })
}

/// Converts a Sandbox JSON object; none when it is not an object with a string `id`.
pub fn sandbox_from_value(value: &Value) -> Option<Sandbox> {
    let id = id_of(value)?.to_string();
    let provider_state = nonblank(value, "state").unwrap_or_else(|| "unknown".to_string());
    Some(Sandbox {
        name: nonblank(value, "name").unwrap_or_else(|| id.clone()),
        state: map_state(&provider_state),
        provider_state,
        reason: nonblank(value, "errorReason"),
        labels: labels_of(value),
        created_at: nonblank(value, "createdAt"),
        id,
    })
}

/// The `id` of a Sandbox object, when it is a non-empty string.
fn id_of(value: &Value) -> Option<&str> {
    str_field(value, "id").filter(|id| !id.trim().is_empty())
}

/// The `labels` object's entries; string values as they are, other non-null values as JSON.
fn labels_of(value: &Value) -> Labels {
    let Some(Value::Object(map)) = value.get("labels") else {
        return Vec::new();
    };
    map.iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), v)
        })
        .collect()
}

/// A string field of an object.
fn str_field<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

/// A string field that is present and not blank, trimmed.
fn nonblank(value: &Value, key: &str) -> Option<String> {
    str_field(value, key)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cbx::provider::types::SandboxState;

    fn labels(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn create_body_has_no_resources() {
        let l = labels(&[("cbx", "true"), ("lease", "cbx_1")]);
        let body = to_body(&CreateSandbox {
            name: "cbx-a",
            labels: LabelObject(&l),
            auto_stop_interval: 30,
            auto_archive_interval: 10080,
            auto_delete_interval: 90,
            public: false,
            snapshot: "daytona-small",
            target: "",
            user: "daytona",
        });
        let text = String::from_utf8(body).unwrap();
        assert_eq!(
            text,
            r#"{"name":"cbx-a","labels":{"cbx":"true","lease":"cbx_1"},"autoStopInterval":30,"autoArchiveInterval":10080,"autoDeleteInterval":90,"public":false,"snapshot":"daytona-small","user":"daytona"}"#
        );
        for field in ["cpu", "memory", "disk", "gpu", "target"] {
            assert!(!text.contains(&format!("\"{field}\"")), "{field} in {text}");
        }
    }

    #[test]
    fn replace_labels_body() {
        let l = labels(&[("b", "2"), ("a", "1")]);
        let body = to_body(&ReplaceLabels {
            labels: LabelObject(&l),
        });
        assert_eq!(body, br#"{"labels":{"b":"2","a":"1"}}"#);
    }

    #[test]
    fn full_sandbox() {
        let body = br#"{"id":"5f1c","organizationId":"o","name":"cbx-a","state":"started",
            "desiredState":"started","errorReason":null,"labels":{"cbx":"true","n":"1"},
            "createdAt":"2026-06-23T12:00:00.000Z","cpu":1,"unknownField":{"x":[1]}}"#;
        let sb = parse_sandbox_body("get sandbox 5f1c", body).unwrap();
        assert_eq!(sb.id, "5f1c");
        assert_eq!(sb.name, "cbx-a");
        assert_eq!(sb.state, SandboxState::Ready);
        assert_eq!(sb.provider_state, "started");
        assert_eq!(sb.reason, None);
        assert_eq!(sb.labels, labels(&[("cbx", "true"), ("n", "1")]));
        assert_eq!(sb.created_at.as_deref(), Some("2026-06-23T12:00:00.000Z"));
    }

    #[test]
    fn minimal_sandbox() {
        let sb = parse_sandbox_body("x", br#"{"id":"abc","labels":null,"name":7}"#).unwrap();
        assert_eq!(sb.name, "abc");
        assert_eq!(sb.provider_state, "unknown");
        assert_eq!(sb.state, SandboxState::Unknown);
        assert!(sb.labels.is_empty());
        assert_eq!(sb.created_at, None);
    }

    #[test]
    fn failed_sandbox_reason() {
        let sb = parse_sandbox_body(
            "x",
            br#"{"id":"a","state":"error","errorReason":"Timeout while starting sandbox"}"#,
        )
        .unwrap();
        assert_eq!(sb.state, SandboxState::Failed);
        assert_eq!(sb.reason.as_deref(), Some("Timeout while starting sandbox"));
    }

    #[test]
    fn unexpected_bodies() {
        let err = parse_sandbox_body("get sandbox a", b"<html>dashboard</html>").unwrap_err();
        assert_eq!(
            err,
            "daytona get sandbox a: unexpected response: <html>dashboard</html>"
        );
        let err = parse_sandbox_body("get sandbox a", br#"{"labels":{}}"#).unwrap_err();
        assert!(
            err.starts_with("daytona get sandbox a: unexpected response: {"),
            "{err}"
        );
        let long = "y".repeat(500);
        let err = parse_sandbox_body("a", long.as_bytes()).unwrap_err();
        assert!(err.chars().count() < 260, "{err}");
    }

    #[test]
    fn page_with_cursor() {
        let body = br#"{"items":[{"id":"a","state":"stopped"},{"id":"b"}],"nextCursor":"Y3Vy"}"#;
        let page = parse_page("list sandboxes", body).unwrap();
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.items[0].state, SandboxState::Stopped);
        assert_eq!(page.next_cursor.as_deref(), Some("Y3Vy"));
    }

    #[test]
    fn last_page_variants() {
        for body in [
            &br#"{"items":[],"nextCursor":null}"#[..],
            br#"{"items":[]}"#,
            br#"{"items":[],"nextCursor":""}"#,
        ] {
            assert_eq!(parse_page("l", body).unwrap().next_cursor, None);
        }
    }

    #[test]
    fn bare_array_page() {
        let page = parse_page("l", br#"[{"id":"a"},{"id":"b","name":"bee"}]"#).unwrap();
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.items[1].name, "bee");
        assert_eq!(page.next_cursor, None);
    }

    #[test]
    fn bad_pages() {
        assert!(parse_page("l", br#"{"total":3}"#).is_err());
        assert!(parse_page("l", b"nope").is_err());
        assert!(parse_page("l", br#"[{"name":"no id"}]"#).is_err());
    }

    #[test]
    fn ssh_access() {
        let body = br#"{"id":"x","sandboxId":"s","token":"TOK123","expiresAt":"2026-01-01T12:00:00.000Z","sshCommand":"ssh TOK123@ssh.app.daytona.io"}"#;
        let a = parse_ssh_access("mint", body).unwrap();
        assert_eq!(a.token, "TOK123");
        assert_eq!(
            a.ssh_command.as_deref(),
            Some("ssh TOK123@ssh.app.daytona.io")
        );
        assert_eq!(a.expires_at.as_deref(), Some("2026-01-01T12:00:00.000Z"));
    }

    #[test]
    fn ssh_access_without_token() {
        for body in [&br#"{"token":""}"#[..], br#"{"sshCommand":"ssh TOK@h"}"#] {
            let err = parse_ssh_access("mint", body).err().unwrap();
            assert_eq!(err, "daytona ssh access response has no token");
        }
        let err = parse_ssh_access("mint ssh access for sandbox s", b"token=SECRET")
            .err()
            .unwrap();
        assert!(!err.contains("SECRET"), "{err}");
    }
}
