//! Daytona's sandbox states, normalised to cbx's `sandbox-state`.

use crate::cbx::provider::types::SandboxState;

/// Maps Daytona's `state` string (any case, surrounding blanks ignored) to a normalised state.
pub fn map_state(daytona_state: &str) -> SandboxState {
    match daytona_state.trim().to_ascii_lowercase().as_str() {
        "started" => SandboxState::Ready,
        "creating" | "pending_build" | "building_snapshot" | "pulling_snapshot" => {
            SandboxState::Creating
        }
        "starting" | "restoring" | "resuming" => SandboxState::Starting,
        "stopping" | "pausing" => SandboxState::Stopping,
        "stopped" | "paused" => SandboxState::Stopped,
        "archived" | "archiving" => SandboxState::Archived,
        "error" | "build_failed" => SandboxState::Failed,
        "destroyed" | "destroying" => SandboxState::Deleted,
        // `unknown`, `resizing`, `snapshotting`, `forking` and anything newer.
        _ => SandboxState::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_every_documented_state() {
        let cases = [
            ("started", SandboxState::Ready),
            ("creating", SandboxState::Creating),
            ("pending_build", SandboxState::Creating),
            ("building_snapshot", SandboxState::Creating),
            ("pulling_snapshot", SandboxState::Creating),
            ("starting", SandboxState::Starting),
            ("restoring", SandboxState::Starting),
            ("resuming", SandboxState::Starting),
            ("stopping", SandboxState::Stopping),
            ("pausing", SandboxState::Stopping),
            ("stopped", SandboxState::Stopped),
            ("paused", SandboxState::Stopped),
            ("archived", SandboxState::Archived),
            ("archiving", SandboxState::Archived),
            ("error", SandboxState::Failed),
            ("build_failed", SandboxState::Failed),
            ("destroyed", SandboxState::Deleted),
            ("destroying", SandboxState::Deleted),
            ("unknown", SandboxState::Unknown),
            ("resizing", SandboxState::Unknown),
            ("snapshotting", SandboxState::Unknown),
            ("forking", SandboxState::Unknown),
            ("hibernating", SandboxState::Unknown),
            ("", SandboxState::Unknown),
        ];
        for (word, want) in cases {
            assert_eq!(map_state(word), want, "state {word:?}");
        }
    }

    #[test]
    fn ignores_case_and_blanks() {
        assert_eq!(map_state(" Started\n"), SandboxState::Ready);
        assert_eq!(map_state("BUILD_FAILED"), SandboxState::Failed);
    }
}
