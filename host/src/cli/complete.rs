//! Dynamic completion values: lease arguments complete to the slugs and ids of the leases
//! claimed on this machine, read from the local claims only (never the network, never a
//! provider). Used by the clap definitions in `args`.

use std::ffi::OsStr;

use clap_complete::engine::CompletionCandidate;

/// The leases claimed here whose slug or id starts with `current`, as candidates.
pub fn lease_candidates(current: &OsStr) -> Vec<CompletionCandidate> {
    let current = current.to_string_lossy();
    claimed()
        .into_iter()
        .flat_map(|(slug, id, provider)| {
            [
                CompletionCandidate::new(slug.clone())
                    .help(Some(format!("{id} ({provider})").into())),
                CompletionCandidate::new(id).help(Some(format!("{slug} ({provider})").into())),
            ]
        })
        .filter(|c| {
            c.get_value()
                .to_string_lossy()
                .starts_with(current.as_ref())
        })
        .collect()
}

/// `LEASE:` prefixes for `cbx cp`, until a `:` is typed (then nothing: remote paths are not
/// listed).
pub fn cp_candidates(current: &OsStr) -> Vec<CompletionCandidate> {
    let text = current.to_string_lossy();
    if text.contains(':') || text.contains('/') {
        return Vec::new();
    }
    claimed()
        .into_iter()
        .map(|(slug, id, _)| CompletionCandidate::new(format!("{slug}:")).help(Some(id.into())))
        .filter(|c| c.get_value().to_string_lossy().starts_with(text.as_ref()))
        .collect()
}

/// (slug, id, provider) of every lease claimed here; nothing when cbx's state cannot be read.
fn claimed() -> Vec<(String, String, String)> {
    let Ok(dirs) = crate::paths::Dirs::from_env() else {
        return Vec::new();
    };
    let claims = crate::lease::claims::Claims::new(dirs.claims());
    claims
        .all()
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.slug, c.lease_id.to_string(), c.provider))
        .collect()
}
