//! The optional capabilities as Daytona REST calls: `checkpoint` (a snapshot made from a
//! sandbox, `POST /sandbox/{id}/snapshot`, read back through `/snapshots`) and `fork`
//! (`POST /sandbox/{id}/fork`, VM-class sandboxes only).
//!
//! Daytona's traps (shared/reference/daytona-api-more.md §2–3): the snapshot call answers with
//! the sandbox, and success shows only on `GET /snapshots/{name}` once the sandbox has left
//! `snapshotting`; a duplicate name fails silently (so the name is checked free first);
//! `DELETE /snapshots/{id}` takes the id, never the name; a fork copies the source's labels
//! verbatim, so the child is relabelled at once.

use serde_json::{Value, json};

use crate::api;
use crate::cbx::provider::http::Method;
use crate::cbx::provider::types::{CreateRequest, ProviderError, Sandbox};
use crate::encode::{LabelObject, percent_encode};
use crate::exports::cbx::provider::checkpoint::{CheckpointInfo, CheckpointState};
use crate::exports::cbx::provider::fork::ForkError;
use crate::ops::{Daytona, sandbox_of, sandbox_path};
use crate::transport::Transport;

/// Page size asked of `GET /snapshots` (its maximum is 200).
const PAGE_LIMIT: u32 = 100;
/// Most pages `list-checkpoints` follows.
const MAX_PAGES: u64 = 1000;

impl<T: Transport> Daytona<'_, T> {
    /// Starts snapshotting sandbox `id` as `name`, after checking the name is free (Daytona
    /// would otherwise fail silently and keep the old snapshot under that name).
    pub fn create_checkpoint(&self, id: &str, name: &str) -> Result<(), ProviderError> {
        self.require_checkpoint_scope(&format!("snapshot sandbox {id}"))?;
        match self.get_checkpoint(name) {
            Err(ProviderError::NotFound(_)) => {}
            Ok(_) => {
                return Err(ProviderError::Conflict(format!(
                    "daytona: a snapshot called {name} already exists; choose another name"
                )));
            }
            Err(e) => return Err(e),
        }
        let action = format!("snapshot sandbox {id}");
        let path = sandbox_path(id, "/snapshot", &action)?;
        let body = api::to_body(&json!({ "name": name }));
        self.call(Method::Post, &path, Some(body), None, &action)?;
        Ok(())
    }

    /// Reads one snapshot by name. `not-found` also for a general (public) snapshot of that
    /// name, which is not the user's.
    pub fn get_checkpoint(&self, name: &str) -> Result<CheckpointInfo, ProviderError> {
        let action = format!("get snapshot {name}");
        if name.trim().is_empty() {
            return Err(ProviderError::Other(format!(
                "daytona {action}: the name is empty"
            )));
        }
        let path = format!("/snapshots/{}", percent_encode(name));
        let resp = self.call(Method::Get, &path, None, None, &action)?;
        let value: Value = serde_json::from_slice(&resp.body)
            .map_err(|_| ProviderError::Other(api::unexpected(&action, &resp.body)))?;
        if value.get("general").and_then(Value::as_bool) == Some(true) {
            return Err(ProviderError::NotFound(format!(
                "daytona {action}: only a public snapshot has this name"
            )));
        }
        checkpoint_from_value(&value)
            .ok_or_else(|| ProviderError::Other(api::unexpected(&action, &resp.body)))
    }

    /// The organization's own snapshots whose names start with `prefix`, every page.
    pub fn list_checkpoints(&self, prefix: &str) -> Result<Vec<CheckpointInfo>, ProviderError> {
        let action = "list snapshots";
        let mut out: Vec<CheckpointInfo> = Vec::new();
        for page in 1..=MAX_PAGES {
            let path = format!(
                "/snapshots?page={page}&limit={PAGE_LIMIT}&name={}",
                percent_encode(prefix)
            );
            let resp = self.call(Method::Get, &path, None, None, action)?;
            let value: Value = serde_json::from_slice(&resp.body)
                .map_err(|_| ProviderError::Other(api::unexpected(action, &resp.body)))?;
            let Some(items) = value.get("items").and_then(Value::as_array) else {
                return Err(ProviderError::Other(api::unexpected(action, &resp.body)));
            };
            for item in items {
                let general = item.get("general").and_then(Value::as_bool) == Some(true);
                if let Some(c) = checkpoint_from_value(item)
                    && !general
                    && c.name.starts_with(prefix)
                    && !out.iter().any(|o| o.id == c.id)
                {
                    out.push(c);
                }
            }
            let total_pages = value.get("totalPages").and_then(Value::as_u64).unwrap_or(1);
            if items.is_empty() || page >= total_pages {
                return Ok(out);
            }
        }
        Err(ProviderError::Other(format!(
            "daytona {action}: gave up after {MAX_PAGES} pages"
        )))
    }

    /// Deletes a snapshot by its id (Daytona refuses names here).
    pub fn delete_checkpoint(&self, id: &str) -> Result<(), ProviderError> {
        let action = format!("delete snapshot {id}");
        if id.trim().is_empty() {
            return Err(ProviderError::Other(format!(
                "daytona {action}: the id is empty"
            )));
        }
        let path = format!("/snapshots/{}", percent_encode(id));
        self.call(Method::Delete, &path, None, None, &action)?;
        Ok(())
    }

    /// Forks sandbox `id` into a new sandbox named `req.name`, then gives the child
    /// `req.labels` (Daytona copied the source's). A 422 is Daytona saying the sandbox's class
    /// cannot fork.
    pub fn fork(&self, id: &str, req: &CreateRequest) -> Result<Sandbox, ForkError> {
        let action = format!("fork sandbox {id}");
        let path = sandbox_path(id, "/fork", &action).map_err(ForkError::Failed)?;
        let body = api::to_body(&json!({ "name": req.name }));
        let resp = match self.call(Method::Post, &path, Some(body), None, &action) {
            Ok(resp) => resp,
            Err(ProviderError::Other(m)) if m.ends_with("(HTTP 422)") => {
                return Err(ForkError::NotForkable(format!(
                    "{m}; Daytona forks only linux-vm (and windows) sandboxes without a GPU"
                )));
            }
            Err(e) => return Err(ForkError::Failed(e)),
        };
        let child = sandbox_of(&action, &resp).map_err(ForkError::Failed)?;
        let relabel = format!("set labels on fork {}", child.id);
        let path = sandbox_path(&child.id, "/labels", &relabel).map_err(ForkError::Failed)?;
        let body = api::to_body(&json!({ "labels": LabelObject(&req.labels) }));
        match self.call(Method::Put, &path, Some(body), None, &relabel) {
            // The host writes the full label set again once the child is ready.
            Ok(_) | Err(_) => Ok(Sandbox {
                labels: req.labels.clone(),
                ..child
            }),
        }
    }
}

/// A SnapshotDto as a checkpoint; none without an `id` and a `name`.
fn checkpoint_from_value(value: &Value) -> Option<CheckpointInfo> {
    let text = |k: &str| {
        value
            .get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let provider_state = text("state").unwrap_or_else(|| "unknown".into());
    Some(CheckpointInfo {
        id: text("id")?,
        name: text("name")?,
        state: map_state(&provider_state),
        reason: text("errorReason"),
        created_at: text("createdAt"),
        provider_state,
    })
}

/// Daytona's SnapshotState, normalised.
fn map_state(state: &str) -> CheckpointState {
    match state.to_ascii_lowercase().as_str() {
        "building" | "pending" | "pulling" => CheckpointState::Creating,
        // `inactive`: unused for a while; Daytona reactivates it on use.
        "active" | "inactive" => CheckpointState::Ready,
        "error" | "build_failed" => CheckpointState::Failed,
        "removing" => CheckpointState::Deleting,
        _ => CheckpointState::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::tests::{Fake, cfg, labels, ok};

    const SNAP: &str = r#"{"id":"5f0c","name":"cbx-x","state":"active","general":false}"#;
    const SB: &str = r#"{"id":"sb-1","name":"cbx-a","state":"snapshotting","labels":{}}"#;
    const KEY: &str =
        r#"{"name":"k","permissions":["write:sandboxes","delete:sandboxes","delete:snapshots"]}"#;

    #[test]
    fn a_checkpoint_checks_the_name_is_free_then_snapshots() {
        let c = cfg(&[], &["api-key"]);
        let fake = Fake::new(vec![
            ok(200, KEY),
            ok(404, r#"{"message":"not found"}"#),
            ok(200, SB),
        ]);
        Daytona::new(&c, &fake)
            .create_checkpoint("sb-1", "cbx-x")
            .unwrap();
        assert_eq!(
            fake.urls(),
            [
                "https://d.example/api/api-keys/current",
                "https://d.example/api/snapshots/cbx-x",
                "https://d.example/api/sandbox/sb-1/snapshot"
            ]
        );
        let sent = fake.sent.borrow();
        let body: Value = serde_json::from_slice(sent[2].body.as_ref().unwrap()).unwrap();
        assert_eq!(body, json!({"name": "cbx-x"}));
    }

    #[test]
    fn a_key_that_cannot_delete_snapshots_makes_no_checkpoint() {
        let c = cfg(&[], &["api-key"]);
        let no_delete = r#"{"permissions":["write:sandboxes","delete:sandboxes"]}"#;
        let fake = Fake::new(vec![ok(200, no_delete)]);
        let err = Daytona::new(&c, &fake)
            .create_checkpoint("sb-1", "cbx-x")
            .unwrap_err();
        let ProviderError::Forbidden(m) = err else {
            panic!("{err:?}")
        };
        assert!(
            m.starts_with("daytona snapshot sandbox sb-1: the API key lacks delete:snapshots"),
            "{m}"
        );
        assert!(m.contains("nothing was made"), "{m}");
        assert!(
            m.contains("Fix: add delete:snapshots to the API key"),
            "{m}"
        );
        assert_eq!(fake.urls().len(), 1, "no snapshot asked for");
        // Scopes the server does not say (an older server: 404) do not stop a checkpoint.
        let fake = Fake::new(vec![
            ok(404, r#"{"message":"not found"}"#),
            ok(404, r#"{"message":"not found"}"#),
            ok(200, SB),
        ]);
        Daytona::new(&c, &fake)
            .create_checkpoint("sb-1", "cbx-x")
            .unwrap();
    }

    #[test]
    fn a_taken_name_is_refused_before_snapshotting() {
        let c = cfg(&[], &["api-key"]);
        let fake = Fake::new(vec![ok(200, KEY), ok(200, SNAP)]);
        let err = Daytona::new(&c, &fake)
            .create_checkpoint("sb-1", "cbx-x")
            .unwrap_err();
        assert!(matches!(err, ProviderError::Conflict(ref m) if m.contains("already exists")));
        assert_eq!(fake.urls().len(), 2);
    }

    #[test]
    fn a_general_snapshot_is_not_ours() {
        let c = cfg(&[], &["api-key"]);
        let general = r#"{"id":"g","name":"cbx-x","state":"active","general":true}"#;
        let fake = Fake::new(vec![ok(200, general)]);
        let err = Daytona::new(&c, &fake).get_checkpoint("cbx-x").unwrap_err();
        assert!(matches!(err, ProviderError::NotFound(_)));
    }

    #[test]
    fn list_follows_pages_and_keeps_own_prefixed_snapshots() {
        let c = cfg(&[], &["api-key"]);
        let p1 = r#"{"items":[{"id":"1","name":"cbx-a","state":"active"},{"id":"2","name":"x-cbx-a","state":"active"}],"totalPages":2}"#;
        let p2 = r#"{"items":[{"id":"3","name":"cbx-b","state":"building"},{"id":"4","name":"cbx-g","state":"active","general":true}],"totalPages":2}"#;
        let fake = Fake::new(vec![ok(200, p1), ok(200, p2)]);
        let got = Daytona::new(&c, &fake).list_checkpoints("cbx-").unwrap();
        let names: Vec<_> = got.iter().map(|c| (c.name.as_str(), c.state)).collect();
        assert_eq!(
            names,
            [
                ("cbx-a", CheckpointState::Ready),
                ("cbx-b", CheckpointState::Creating)
            ]
        );
        assert_eq!(
            fake.urls()[1],
            "https://d.example/api/snapshots?page=2&limit=100&name=cbx-"
        );
    }

    #[test]
    fn a_422_fork_is_not_forkable_and_a_fork_is_relabelled() {
        let c = cfg(&[], &["api-key"]);
        let req = CreateRequest {
            name: "cbx-f".into(),
            labels: labels(&[("cbx", "true"), ("cbx_lease", "cbx_2")]),
            idle_timeout_minutes: 30,
            ttl_minutes: 60,
        };
        let refused = r#"{"statusCode":422,"message":"Forking is not supported for this sandbox"}"#;
        let fake = Fake::new(vec![ok(422, refused)]);
        let err = Daytona::new(&c, &fake).fork("sb-1", &req).unwrap_err();
        assert!(
            matches!(err, ForkError::NotForkable(ref m) if m.contains("Forking is not supported")),
            "{err:?}"
        );
        let child =
            r#"{"id":"sb-2","name":"cbx-f","state":"creating","labels":{"cbx_lease":"cbx_1"}}"#;
        let fake = Fake::new(vec![ok(200, child), ok(200, child)]);
        let sb = Daytona::new(&c, &fake).fork("sb-1", &req).unwrap();
        assert_eq!(sb.labels, req.labels);
        assert_eq!(fake.urls()[1], "https://d.example/api/sandbox/sb-2/labels");
    }
}
