//! API-key scopes: what cbx needs (`write:sandboxes` to create, start, stop, label and reach
//! sandboxes; `delete:sandboxes` to delete them; `delete:snapshots` for checkpoints), reading
//! them from `GET /api-keys/current`, and saying exactly what is missing and how to fix it.

use serde_json::Value;

/// The scopes cbx needs, each with what it is for.
pub const REQUIRED: &[(&str, &str)] = &[
    (
        "write:sandboxes",
        "create, start, stop and label sandboxes and mint SSH access",
    ),
    ("delete:sandboxes", "delete sandboxes"),
];

/// The scope checkpoints need on top of [`REQUIRED`]: a checkpoint is a snapshot, and cbx must
/// be able to delete one it made (`cbx checkpoint delete`, or the clean-up of an interrupted
/// `cbx checkpoint create`). Making one needs only `write:sandboxes`.
pub const CHECKPOINT: &str = "delete:snapshots";

/// What to do about a key without [`CHECKPOINT`].
pub const CHECKPOINT_FIX: &str = "add delete:snapshots to the API key in the Daytona dashboard \
     (Keys), or create one with write:sandboxes, delete:sandboxes and delete:snapshots";

/// Whether `permissions` lets cbx delete the checkpoints it makes.
pub fn can_delete_checkpoints(permissions: &[String]) -> bool {
    permissions.iter().any(|p| p == CHECKPOINT)
}

/// What to do about missing scopes.
pub const FIX: &str = "create an API key with write:sandboxes and delete:sandboxes in the \
     Daytona dashboard (Keys) and set DAYTONA_API_KEY to it";

/// The `permissions` of a `GET /api-keys/current` answer, if it has them.
pub fn parse_permissions(body: &[u8]) -> Option<Vec<String>> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let list = value.get("permissions")?.as_array()?;
    Some(
        list.iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
    )
}

/// The required scopes missing from `permissions`, in [`REQUIRED`]'s order.
pub fn missing(permissions: &[String]) -> Vec<&'static str> {
    REQUIRED
        .iter()
        .map(|(scope, _)| *scope)
        .filter(|scope| !permissions.iter().any(|p| p == scope))
        .collect()
}

/// What the missing scopes stop cbx from doing, in a sentence.
pub fn consequence(missing: &[&str]) -> String {
    let write = missing.contains(&"write:sandboxes");
    let delete = missing.contains(&"delete:sandboxes");
    match (write, delete) {
        (true, _) => "cbx cannot create or start sandboxes with it".to_string(),
        (false, true) => "cbx could create sandboxes but not delete them: a failed start, an \
             interrupted command or an ended lease would be left running and billed"
            .to_string(),
        (false, false) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_scopes_in_order_with_their_consequence() {
        let perms = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let body =
            br#"{"name":"k","value":"dtn****","permissions":["write:sandboxes","read:volumes"]}"#;
        let got = parse_permissions(body).unwrap();
        assert_eq!(got, perms(&["write:sandboxes", "read:volumes"]));
        assert_eq!(missing(&got), ["delete:sandboxes"]);
        assert!(consequence(&missing(&got)).contains("not delete them"));
        assert_eq!(
            missing(&perms(&[])),
            ["write:sandboxes", "delete:sandboxes"]
        );
        assert!(consequence(&missing(&perms(&[]))).contains("cannot create"));
        assert!(missing(&perms(&["delete:sandboxes", "write:sandboxes"])).is_empty());
        assert!(!can_delete_checkpoints(&got));
        assert!(can_delete_checkpoints(&perms(&["delete:snapshots"])));
        assert_eq!(parse_permissions(b"<html>"), None);
        assert_eq!(parse_permissions(br#"{"permissions":"all"}"#), None);
    }
}
