//! What changed between the provider a user approved and the one a reinstall offers, in the
//! host's words: the facts an approval covers — endpoints, credentials (and whether each is
//! secret), authentication, user-only options, SSH destinations and the option naming the
//! key, request caps — each one line under a key, and the difference between two sets of them.
//!
//! The install screen adds the component's own facts (WASI, the options it declares) under
//! keys of their own before taking the difference.

use std::collections::BTreeMap;

use super::manifest::Manifest;

/// The facts an approval covers, by key (`endpoint api`, `credential key`, …), each a line of
/// the host's own wording.
pub type Facts = BTreeMap<String, String>;

/// The facts `manifest` asks the user to approve.
pub fn manifest_facts(manifest: &Manifest) -> Facts {
    let mut facts = Facts::new();
    for e in &manifest.endpoints {
        facts.insert(
            format!("endpoint `{}`", e.name),
            format!(
                "requests under {}{}",
                e.url,
                e.env
                    .as_ref()
                    .map(|v| format!(" (movable with {v})"))
                    .unwrap_or_default()
            ),
        );
    }
    for c in &manifest.credentials {
        facts.insert(
            format!("credential `{}`", c.name),
            format!(
                "{} as `{}: {}` to endpoint `{}`, {}{}",
                c.env,
                c.header,
                c.format.replace("{value}", "…"),
                c.endpoint,
                if c.secret {
                    "secret (redacted everywhere)"
                } else {
                    "NOT secret (shown and handed over in clear)"
                },
                if c.requires.is_empty() {
                    String::new()
                } else {
                    format!(", requires {}", c.requires.join(", "))
                }
            ),
        );
    }
    if let Some(auth) = &manifest.auth {
        facts.insert(
            "authentication".into(),
            format!("one of {}", auth.one_of.join(", ")),
        );
    }
    if !manifest.user_only_options.is_empty() {
        facts.insert(
            "user-only options".into(),
            manifest.user_only_options.join(", "),
        );
    }
    ssh_facts(manifest, &mut facts);
    facts.insert(
        "request caps".into(),
        format!(
            "{} per call, {} per run",
            manifest.requests.per_call, manifest.requests.per_run
        ),
    );
    facts
}

/// The facts of `manifest`'s `[ssh]`: where minted SSH access may lead (each destination, the
/// variable that may replace them, or the user's options naming the host), and where the key
/// comes from.
fn ssh_facts(manifest: &Manifest, facts: &mut Facts) {
    let Some(ssh) = &manifest.ssh else {
        facts.insert("ssh".into(), "none: no SSH destination at all".into());
        return;
    };
    for d in &ssh.destinations {
        facts.insert(
            format!("ssh destination `{d}`"),
            "may receive your files, commands and --env values".into(),
        );
    }
    if let Some(env) = &ssh.env {
        facts.insert(
            "ssh destinations' variable".into(),
            format!("{env} may replace them"),
        );
    }
    if let Some(host) = &ssh.host_option {
        facts.insert(
            "ssh host".into(),
            match &ssh.port_option {
                Some(port) => format!("your options `{host}` and `{port}`"),
                None => format!("your option `{host}`, port 22"),
            },
        );
    }
    facts.insert(
        "ssh key".into(),
        match &ssh.identity_option {
            Some(o) => format!("the one in your option `{o}`"),
            None => "none".into(),
        },
    );
}

/// One line per difference between `old` and `new`: `+ key: value` (new), `- key: value`
/// (gone), `~ key: old → new` (changed).
pub fn difference(old: &Facts, new: &Facts) -> Vec<String> {
    let mut lines = Vec::new();
    for (key, value) in new {
        match old.get(key) {
            None => lines.push(format!("+ {key}: {value}")),
            Some(before) if before != value => {
                lines.push(format!("~ {key}: {before} → {value}"));
            }
            Some(_) => {}
        }
    }
    for (key, value) in old {
        if !new.contains_key(key) {
            lines.push(format!("- {key}: {value}"));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: &str = "[provider]\nname = \"p\"\n[endpoints.api]\nurl = \"https://api.example.com\"\n[credentials.key]\nenv = \"P_KEY\"\nendpoint = \"api\"\nheader = \"Authorization\"\nformat = \"Bearer {value}\"\n";

    fn facts(text: &str) -> Facts {
        manifest_facts(&Manifest::parse("m", text).unwrap())
    }

    #[test]
    fn the_same_manifest_differs_in_nothing() {
        assert!(difference(&facts(M), &facts(M)).is_empty());
    }

    #[test]
    fn a_credential_that_stops_being_secret_is_a_change() {
        let quieter = M.replace("[credentials.key]", "[credentials.key]\nsecret = false");
        assert_eq!(
            difference(&facts(M), &facts(&quieter)),
            [
                "~ credential `key`: P_KEY as `Authorization: Bearer …` to endpoint `api`, secret (redacted everywhere) → P_KEY as `Authorization: Bearer …` to endpoint `api`, NOT secret (shown and handed over in clear)"
            ]
        );
    }

    #[test]
    fn new_gone_and_moved_endpoints_and_caps() {
        let other = format!(
            "{}[endpoints.extra]\nurl = \"https://x.example\"\n[limits]\nrequests-per-call = 20\n",
            M.replace("https://api.example.com", "https://evil.example.com")
        );
        let lines = difference(&facts(M), &facts(&other));
        assert_eq!(
            lines,
            [
                "~ endpoint `api`: requests under https://api.example.com/ → requests under https://evil.example.com/",
                "+ endpoint `extra`: requests under https://x.example/",
                "~ request caps: 500 per call, 5000 per run → 20 per call, 5000 per run",
            ]
        );
        let lines = difference(&facts(&other), &facts(M));
        assert!(
            lines.contains(&"- endpoint `extra`: requests under https://x.example/".to_string())
        );
    }

    #[test]
    fn ssh_destinations_their_variable_and_the_key_option_are_changes() {
        let gateway =
            format!("{M}[ssh]\ndestinations = [\"ssh.example.com:22\"]\nenv = \"P_SSH_GATEWAY\"\n");
        assert_eq!(
            difference(&facts(M), &facts(&gateway)),
            [
                "+ ssh destination `ssh.example.com:22`: may receive your files, commands and --env values",
                "+ ssh destinations' variable: P_SSH_GATEWAY may replace them",
                "+ ssh key: none",
                "- ssh: none: no SSH destination at all",
            ]
        );
        let moved = gateway.replace("ssh.example.com:22", "127.0.0.2:2222");
        assert_eq!(
            difference(&facts(&gateway), &facts(&moved)),
            [
                "+ ssh destination `127.0.0.2:2222`: may receive your files, commands and --env values",
                "- ssh destination `ssh.example.com:22`: may receive your files, commands and --env values",
            ]
        );
        let own = |identity: &str| {
            format!(
                "{M}[options]\nuser-only = [\"host\", \"port\", \"key\"]\n[ssh]\nhost-option = \"host\"\nport-option = \"port\"\n{identity}"
            )
        };
        assert_eq!(
            difference(
                &facts(&own("")),
                &facts(&own("identity-option = \"key\"\n"))
            ),
            ["~ ssh key: none → the one in your option `key`"]
        );
        assert!(
            facts(&own(""))
                .get("ssh host")
                .is_some_and(|h| h == "your options `host` and `port`")
        );
    }
}
