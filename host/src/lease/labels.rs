//! The ownership labels cbx writes on every sandbox it creates.
//!
//! They mark the sandbox as cbx's, name the provider, lease and slug, and record the lease's
//! times and work root, so any cbx can recognise its own sandboxes and report on them.

use crate::lease::id::LeaseId;

/// Marker label: `cbx=true` on every sandbox cbx owns.
pub const MARKER: &str = "cbx";
/// The provider's name.
pub const PROVIDER: &str = "cbx_provider";
/// The lease id.
pub const LEASE: &str = "cbx_lease";
/// The slug.
pub const SLUG: &str = "cbx_slug";
/// Creation time, Unix seconds.
pub const CREATED_AT: &str = "cbx_created_at";
/// Last time cbx used the lease, Unix seconds.
pub const TOUCHED_AT: &str = "cbx_touched_at";
/// Lease lifetime in seconds.
pub const TTL: &str = "cbx_ttl_secs";
/// Idle timeout in seconds.
pub const IDLE: &str = "cbx_idle_secs";
/// When the lease expires (created + ttl), Unix seconds.
pub const EXPIRES_AT: &str = "cbx_expires_at";
/// Where the lease's work directories live on the sandbox.
pub const WORK_ROOT: &str = "cbx_work_root";
/// The owner id of the user and machine that created the sandbox (`lease::owner`).
pub const OWNER: &str = "cbx_owner";

/// What the labels of an owned sandbox say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ownership {
    /// The provider that created it.
    pub provider: String,
    /// The lease.
    pub lease: LeaseId,
    /// The slug.
    pub slug: String,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// Last use, Unix seconds.
    pub touched_at: i64,
    /// Lifetime, seconds.
    pub ttl_secs: u64,
    /// Idle timeout, seconds.
    pub idle_secs: u64,
    /// Work root on the sandbox.
    pub work_root: String,
    /// The owner id of who created it; `None` on sandboxes made before cbx wrote one.
    pub owner: Option<String>,
}

impl Ownership {
    /// When the lease expires, Unix seconds.
    pub fn expires_at(&self) -> i64 {
        self.created_at.saturating_add(self.ttl_secs as i64)
    }

    /// The full label map to write on the sandbox.
    pub fn to_labels(&self) -> Vec<(String, String)> {
        vec![
            (MARKER.into(), "true".into()),
            (PROVIDER.into(), self.provider.clone()),
            (LEASE.into(), self.lease.to_string()),
            (SLUG.into(), self.slug.clone()),
            (CREATED_AT.into(), self.created_at.to_string()),
            (TOUCHED_AT.into(), self.touched_at.to_string()),
            (TTL.into(), self.ttl_secs.to_string()),
            (IDLE.into(), self.idle_secs.to_string()),
            (EXPIRES_AT.into(), self.expires_at().to_string()),
            (WORK_ROOT.into(), self.work_root.clone()),
        ]
        .into_iter()
        .chain(self.owner.clone().map(|o| (OWNER.into(), o)))
        .collect()
    }

    /// Reads ownership from a sandbox's labels; `None` unless it is a cbx sandbox of `provider`
    /// with a valid lease id.
    pub fn from_labels(labels: &[(String, String)], provider: &str) -> Option<Ownership> {
        let get = |k: &str| {
            labels
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        if get(MARKER)? != "true" || get(PROVIDER)? != provider {
            return None;
        }
        let lease = LeaseId::parse(get(LEASE)?)?;
        let num = |k: &str| get(k).and_then(|v| v.parse::<i64>().ok());
        let created_at = num(CREATED_AT).unwrap_or(0);
        Some(Ownership {
            provider: provider.to_string(),
            lease,
            slug: get(SLUG).unwrap_or_default().to_string(),
            created_at,
            touched_at: num(TOUCHED_AT).unwrap_or(created_at),
            ttl_secs: num(TTL).unwrap_or(0).max(0) as u64,
            idle_secs: num(IDLE).unwrap_or(0).max(0) as u64,
            work_root: get(WORK_ROOT).unwrap_or_default().to_string(),
            owner: get(OWNER).map(str::to_string),
        })
    }

    /// The labels that select all of `provider`'s sandboxes owned by cbx.
    pub fn selector(provider: &str) -> Vec<(String, String)> {
        vec![
            (MARKER.into(), "true".into()),
            (PROVIDER.into(), provider.into()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip() {
        let o = Ownership {
            provider: "daytona".into(),
            lease: LeaseId::parse("cbx_0123456789ab").unwrap(),
            slug: "amber-otter".into(),
            created_at: 1000,
            touched_at: 1500,
            ttl_secs: 5400,
            idle_secs: 1800,
            work_root: "cbx".into(),
            owner: Some("0123456789abcdef".into()),
        };
        let labels = o.to_labels();
        assert!(labels.contains(&("cbx_expires_at".into(), "6400".into())));
        assert!(labels.contains(&("cbx_owner".into(), "0123456789abcdef".into())));
        assert_eq!(Ownership::from_labels(&labels, "daytona"), Some(o.clone()));
        let before = Ownership { owner: None, ..o };
        let labels = before.to_labels();
        assert!(!labels.iter().any(|(k, _)| k == OWNER));
        assert_eq!(Ownership::from_labels(&labels, "daytona"), Some(before));
        assert_eq!(Ownership::from_labels(&labels, "other"), None);
    }

    #[test]
    fn foreign_sandboxes_are_not_owned() {
        let l = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        };
        assert!(
            Ownership::from_labels(
                &l(&[("cbx", "true"), ("cbx_provider", "daytona")]),
                "daytona"
            )
            .is_none()
        );
        assert!(
            Ownership::from_labels(
                &l(&[
                    ("cbx", "yes"),
                    ("cbx_provider", "daytona"),
                    ("cbx_lease", "cbx_0123456789ab")
                ]),
                "daytona"
            )
            .is_none()
        );
        assert!(
            Ownership::from_labels(
                &l(&[
                    ("cbx", "true"),
                    ("cbx_provider", "daytona"),
                    ("cbx_lease", "cbx_x")
                ]),
                "daytona"
            )
            .is_none()
        );
    }
}
