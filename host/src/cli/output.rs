//! Formatting results for people and for `--json`. Results go to stdout.
//!
//! What people see passes through [`inert`]: every table cell and every detail value, so text
//! a provider or service chose (names, states, reasons, labels, work roots, check details)
//! cannot steer the terminal. `--json` is serde's exact JSON, never escaped twice.

use std::io::Write;

use anyhow::Result;
use chrono::{DateTime, Utc};

use crate::lease::view::{IntentView, LeaseView, Listing};
use crate::terminal::inert;

/// Prints `value` as pretty JSON on stdout.
pub fn json<T: serde::Serialize>(value: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// `in 1h25m` / `5m ago` relative to now.
pub fn relative(rfc3339: &str) -> String {
    let Ok(t) = DateTime::parse_from_rfc3339(rfc3339) else {
        return rfc3339.to_string();
    };
    let secs = t
        .with_timezone(&Utc)
        .signed_duration_since(Utc::now())
        .num_seconds();
    let span = |s: i64| {
        let s = s.unsigned_abs();
        if s >= 3600 {
            format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
        } else if s >= 60 {
            format!("{}m", s / 60)
        } else {
            format!("{s}s")
        }
    };
    if secs >= 0 {
        format!("in {}", span(secs))
    } else {
        format!("{} ago", span(secs))
    }
}

/// Humane seconds: `90m`, `2h`, `45s`.
pub fn secs(s: u64) -> String {
    if s == 0 {
        "never".into()
    } else if s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// The multi-line human view of one lease.
pub fn lease_details(v: &LeaseView) -> String {
    let mut s = String::new();
    let mut line = |k: &str, val: String| s.push_str(&format!("{k:<10} {}\n", inert(&val)));
    line("lease", v.lease_id.clone());
    line("slug", v.slug.clone());
    line("provider", v.provider.clone());
    line("sandbox", format!("{} ({})", v.sandbox_id, v.sandbox_name));
    let mut state = format!("{} ({}: {})", v.state, v.provider, v.provider_state);
    if let Some(r) = &v.reason {
        state.push_str(&format!(" — {r}"));
    }
    line("state", state);
    line("ready", if v.ready { "yes".into() } else { "no".into() });
    line(
        "created",
        format!("{} ({})", v.created_at, relative(&v.created_at)),
    );
    line(
        "expires",
        format!(
            "{} ({}{})",
            v.expires_at,
            relative(&v.expires_at),
            if v.expired { ", expired" } else { "" }
        ),
    );
    line(
        "idle stop",
        format!("after {} idle", secs(v.idle_timeout_secs)),
    );
    line("work root", v.work_root.clone());
    line(
        "claim",
        match (&v.claimed, &v.repo_root) {
            (true, Some(r)) => format!("held here, for {r}"),
            (true, None) => "held here".into(),
            (false, _) => "not held here (read-only)".into(),
        },
    );
    s
}

/// The `list` table: leases, then leases still being created (state `unfinished`).
pub fn lease_table(views: &[LeaseView], unfinished: &[IntentView]) -> String {
    let mut rows = vec![[
        "LEASE".to_string(),
        "SLUG".into(),
        "STATE".into(),
        "SANDBOX".into(),
        "AGE".into(),
        "EXPIRES".into(),
        "OWNER".into(),
    ]];
    for v in views {
        rows.push([
            v.lease_id.clone(),
            v.slug.clone(),
            if v.state == v.provider_state {
                v.state.clone()
            } else {
                format!("{} ({})", v.state, v.provider_state)
            },
            v.sandbox_id.clone(),
            v.age_secs.map_or("-".into(), age),
            if v.expired {
                "expired".into()
            } else {
                relative(&v.expires_at)
            },
            owner_column(v),
        ]);
    }
    for u in unfinished {
        rows.push([
            u.lease_id.clone(),
            u.slug.clone(),
            u.state.to_string(),
            u.sandbox_id
                .clone()
                .unwrap_or_else(|| u.sandbox_name.clone()),
            "-".into(),
            "-".into(),
            "-".into(),
        ]);
    }
    table(&rows)
}

/// `list`'s OWNER column: `claimed here`, `this machine` (no claim), `another` or `unknown`.
fn owner_column(v: &LeaseView) -> String {
    if v.claimed {
        return "claimed here".into();
    }
    match v.owner.as_deref() {
        Some("this-machine") => "this machine".into(),
        Some(other) => other.into(),
        None => "-".into(),
    }
}

/// An age: `45s`, `12m`, `3h05m`, `2d04h`.
pub fn age(secs: u64) -> String {
    if secs >= 86_400 {
        format!("{}d{:02}h", secs / 86_400, (secs % 86_400) / 3600)
    } else if secs >= 3600 {
        format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60)
    } else if secs >= 60 {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// The lines `list` prints on stderr: what is unfinished, and damaged files with a hint. Each
/// is made [`inert`]: lease ids come from sandboxes' labels, and a damaged file's error may
/// quote the file.
pub fn listing_notes(listing: &Listing) -> Vec<String> {
    let mut lines = Vec::new();
    let unfinished = listing
        .leases
        .iter()
        .filter_map(|l| l.unfinished.as_ref().map(|u| (&l.lease_id, u)))
        .chain(
            listing
                .unfinished
                .iter()
                .map(|u| (&u.lease_id, &u.unfinished)),
        );
    for (lease, u) in unfinished {
        lines.push(if u.running {
            format!(
                "note: lease {lease} is being created by `cbx {}` (pid {}, since {})",
                u.command, u.pid, u.since
            )
        } else {
            format!(
                "note: lease {lease} was being created by `cbx {}` (pid {}, gone); cbx could not \
                 finish it yet ({} its sandbox) and retries with every command",
                u.command,
                u.pid,
                if u.then == "adopt" {
                    "keep or delete"
                } else {
                    "delete"
                }
            )
        });
    }
    for d in &listing.damaged {
        lines.push(format!(
            "warning: the {} file {} is damaged: {}",
            d.damaged.record, d.damaged.file, d.damaged.error
        ));
        lines.push(format!("hint: {}", d.damaged.hint));
    }
    lines
        .into_iter()
        .map(|line| inert(&line).into_owned())
        .collect()
}

/// Left-aligned columns separated by two spaces; every cell made [`inert`].
pub fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let rows: Vec<[String; N]> = rows
        .iter()
        .map(|row| row.each_ref().map(|cell| inert(cell).into_owned()))
        .collect();
    let mut widths = [0usize; N];
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::view::{DamagedDetail, DamagedView, UnfinishedView};

    const HOSTILE: &str = "x\x1b[2J\r\nerror: forged\u{202e}";

    #[test]
    fn ages_read_at_a_glance() {
        assert_eq!(age(0), "0s");
        assert_eq!(age(59), "59s");
        assert_eq!(age(600), "10m");
        assert_eq!(age(3 * 3600 + 5 * 60), "3h05m");
        assert_eq!(age(2 * 86_400 + 4 * 3600 + 59), "2d04h");
    }

    /// `list`'s table and notes quote unfinished leases (the sandbox id is the provider's) and
    /// damaged files inert: one line each, nothing a terminal would act on.
    #[test]
    fn unfinished_and_damaged_entries_are_inert() {
        let unfinished = UnfinishedView {
            command: format!("warmup{HOSTILE}"),
            pid: 7,
            running: false,
            since: "2026-01-01T00:00:00Z".into(),
            then: "delete".into(),
            file: "/s/intents/cbx_0123456789ab.json".into(),
        };
        let listing = Listing {
            leases: Vec::new(),
            unfinished: vec![IntentView {
                lease_id: "cbx_0123456789ab".into(),
                slug: "s".into(),
                provider: "p".into(),
                sandbox_id: Some(format!("sb{HOSTILE}")),
                sandbox_name: "cbx-s-0123456789ab".into(),
                state: "unfinished",
                unfinished,
            }],
            damaged: vec![DamagedView {
                lease_id: None,
                state: "damaged",
                damaged: DamagedDetail {
                    record: "claim".into(),
                    file: "/s/claims/cbx_0123456789ab.json".into(),
                    error: format!("bad{HOSTILE}"),
                    hint: "h".into(),
                },
            }],
        };
        let mut text = lease_table(&listing.leases, &listing.unfinished);
        for line in listing_notes(&listing) {
            text.push_str(&line);
            text.push('\n');
        }
        assert!(
            !text
                .chars()
                .any(|c| (c.is_control() && c != '\n') || c == '\u{202e}'),
            "{text:?}"
        );
        assert!(!text.lines().any(|l| l.starts_with("error:")), "{text}");
        assert!(
            text.contains("sbx\\x1b[2J\\r\\nerror: forged\\u{202e}"),
            "{text}"
        );
        assert!(text.contains("created by `cbx warmupx\\x1b[2J"), "{text}");
        assert!(text.contains("is damaged: badx\\x1b[2J"), "{text}");
    }
}
