//! The approval screen of `cbx providers install`: what a candidate provider is and what it
//! asks for, in the host's words — origins, credentials, SSH destinations and keys, WASI,
//! limits — with the provider's own words (its descriptions and option names) fenced off, one
//! printable line each, and marked as unchecked. A credential variable another provider uses
//! is flagged (in red on a terminal; the words say it too).
//!
//! Every line is made [`inert`]: nothing in a manifest or a component can draw on the screen.

use super::bindings::api::ProviderInfo;
use super::contract::Fit;
use super::limits::Limits;
use super::registry::SharedCredential;
use crate::grant::manifest::Manifest;
use crate::terminal::inert;

/// The fence in front of every line of the provider's own words.
pub const FENCE: &str = "  │ ";
/// Red, bold; and back to normal.
const RED: (&str, &str) = ("\x1b[1;31m", "\x1b[0m");

/// What the screen shows.
pub struct Screen<'a> {
    /// The manifest.
    pub manifest: &'a Manifest,
    /// What the component says about itself.
    pub info: &'a ProviderInfo,
    /// What its interface says.
    pub fit: &'a Fit,
    /// Where it came from.
    pub source: &'a str,
    /// Its sha256.
    pub digest: &'a str,
    /// Credential variables other providers use.
    pub shared: &'a [SharedCredential],
}

impl Screen<'_> {
    /// The screen as text; warnings in red when `colour`.
    pub fn render(&self, colour: bool) -> String {
        let mut out = String::new();
        let mut line = |text: &str| {
            out.push_str(&inert(text));
            out.push('\n');
        };
        line(&format!(
            "provider {} {}",
            self.manifest.name, self.info.version
        ));
        line(&format!("  from     {}", self.source));
        line(&format!("  sha256   {}", self.digest));
        line(&format!(
            "  contract {}@{}",
            super::contract::PACKAGE,
            self.fit.version
        ));
        line("In its own words (text from the provider; cbx has not checked it):");
        for said in self.own_words() {
            line(&format!("{FENCE}{said}"));
        }
        line("It asks for (cbx's own account of its manifest and component):");
        for l in capability_lines(self.manifest, self.fit.wasi) {
            line(&l);
        }
        for s in self.shared {
            let warning = format!("  {}", inert(&s.warning()));
            if colour {
                out.push_str(&format!("{}{warning}{}\n", RED.0, RED.1));
            } else {
                out.push_str(&warning);
                out.push('\n');
            }
        }
        out
    }

    /// The provider's own words, each capped to one line: its descriptions and its options.
    fn own_words(&self) -> Vec<String> {
        let cap = |text: &str| -> String {
            let max = crate::grant::manifest::MAX_DESCRIPTION_CHARS;
            let mut t: String = text.chars().take(max).collect();
            if text.chars().count() > max {
                t.push('…');
            }
            t
        };
        let mut said = vec![cap(&self.info.description)];
        let manifest = &self.manifest.description;
        if !manifest.is_empty() && *manifest != self.info.description {
            said.push(format!("manifest: {}", cap(manifest)));
        }
        if !self.info.options.is_empty() {
            let names: Vec<&str> = self.info.options.iter().map(|o| o.name.as_str()).collect();
            said.push(cap(&format!("options: {}", names.join(", "))));
        }
        said
    }
}

/// One line per capability `m` asks for, then the limits it runs under.
fn capability_lines(m: &Manifest, wasi: bool) -> Vec<String> {
    let mut lines = Vec::new();
    if m.endpoints.is_empty() {
        lines.push("  network: none — it cannot reach the network at all".into());
    }
    for e in &m.endpoints {
        lines.push(format!(
            "  network: requests under {} (endpoint `{}`{})",
            e.url,
            e.name,
            e.env
                .as_ref()
                .map(|v| format!("; you may point it elsewhere with {v}"))
                .unwrap_or_default()
        ));
    }
    for c in &m.credentials {
        lines.push(format!(
            "  credential `{}`: the value of {} sent as `{}: {}` only to endpoint `{}`{}",
            c.name,
            c.env,
            c.header,
            c.format.replace("{value}", "…"),
            c.endpoint,
            if c.secret {
                " (cbx attaches it; the provider never sees it)"
            } else {
                " (NOT secret: shown in clear, and the provider may see it)"
            }
        ));
    }
    lines.extend(ssh_lines(m));
    if wasi {
        lines.push(
            "  WASI: clocks and randomness only (no environment, arguments, files or sockets)"
                .into(),
        );
    }
    let limits = Limits::default();
    lines.push(format!(
        "  limits: {} MiB of memory, {}s of CPU and {}s per call; {} HTTP requests per call, {} per run",
        limits.memory_bytes >> 20,
        limits.cpu_per_call.as_secs(),
        limits.wall_per_call.as_secs(),
        m.requests.per_call,
        m.requests.per_run
    ));
    lines
}

/// Where the provider may have cbx send the user's files, commands and `--env` values over
/// SSH, and with which key.
fn ssh_lines(m: &Manifest) -> Vec<String> {
    let Some(ssh) = &m.ssh else {
        return vec![
            "  ssh: none — cbx will send your files to no SSH destination it names".into(),
        ];
    };
    let mut lines = Vec::new();
    if let Some(host) = &ssh.host_option {
        lines.push(format!(
            "  ssh: your files, commands and --env values go only to the host{} you set in your option `{host}`{}",
            if ssh.port_option.is_some() { " and port" } else { "" },
            ssh.port_option
                .as_ref()
                .map(|p| format!(" and `{p}`"))
                .unwrap_or_default()
        ));
    }
    for d in &ssh.destinations {
        lines.push(format!(
            "  ssh: your files, commands and --env values may be sent to {d}{}",
            ssh.env
                .as_ref()
                .map(|v| format!("; you may point it elsewhere with {v}"))
                .unwrap_or_default()
        ));
    }
    lines.push(match &ssh.identity_option {
        Some(o) => format!("  ssh key: the one you set in your option `{o}` (never one it picks)"),
        None => "  ssh key: none (it may never pick one)".into(),
    });
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::api::{OptionKind, OptionSpec};

    fn manifest(env: &str) -> Manifest {
        Manifest::parse(
            "m",
            &format!("[provider]\nname = \"acme\"\ndescription = \"Acme sandboxes\"\n[endpoints.api]\nurl = \"https://api.example.test/v1\"\n[credentials.key]\nenv = \"{env}\"\nendpoint = \"api\"\nheader = \"Authorization\"\nformat = \"Bearer {{value}}\"\n"),
        )
        .unwrap()
    }

    fn info(description: &str) -> ProviderInfo {
        ProviderInfo {
            name: "acme".into(),
            version: "1.0.0".into(),
            description: description.into(),
            options: vec![OptionSpec {
                name: "region".into(),
                description: String::new(),
                kind: OptionKind::Text,
                default: None,
            }],
            features: Vec::new(),
        }
    }

    fn render(
        info: &ProviderInfo,
        m: &Manifest,
        shared: &[SharedCredential],
        colour: bool,
    ) -> String {
        let fit = Fit {
            version: "0.1.0".into(),
            wasi: false,
            capabilities: Vec::new(),
        };
        Screen {
            manifest: m,
            info,
            fit: &fit,
            source: "/x/acme.wasm",
            digest: "ab",
            shared,
        }
        .render(colour)
    }

    #[test]
    fn the_providers_words_are_fenced_and_the_hosts_are_not() {
        let m = manifest("ACME_KEY");
        let text = render(
            &info("network: none. Approve provider acme with no capabilities? [y/N]"),
            &m,
            &[],
            true,
        );
        let fenced: Vec<&str> = text.lines().filter(|l| l.starts_with(FENCE)).collect();
        assert_eq!(
            fenced,
            [
                "  │ network: none. Approve provider acme with no capabilities? [y/N]",
                "  │ manifest: Acme sandboxes",
                "  │ options: region",
            ]
        );
        assert!(
            text.contains(
                "\n  network: requests under https://api.example.test/v1 (endpoint `api`)\n"
            ),
            "{text}"
        );
        assert!(
            !text.contains('\x1b'),
            "no colour without a warning: {text}"
        );
    }

    /// Part of cbx's own account: where minted SSH access may lead, and whose key.
    #[test]
    fn ssh_destinations_and_the_key_are_the_hosts_facts() {
        let m = Manifest::parse(
            "m",
            "[provider]\nname = \"acme\"\n[ssh]\ndestinations = [\"ssh.acme.example:22\"]\nenv = \"ACME_SSH\"\ndescription = \"network: none\"\n",
        )
        .unwrap();
        let text = render(&info("Acme"), &m, &[], false);
        let host: Vec<&str> = text.lines().filter(|l| l.starts_with("  ssh")).collect();
        assert_eq!(
            host,
            [
                "  ssh: your files, commands and --env values may be sent to ssh.acme.example:22; you may point it elsewhere with ACME_SSH",
                "  ssh key: none (it may never pick one)",
            ]
        );
        let none = render(&info("Acme"), &manifest("ACME_KEY"), &[], false);
        assert!(
            none.contains(
                "\n  ssh: none — cbx will send your files to no SSH destination it names\n"
            ),
            "{none}"
        );
    }

    #[test]
    fn a_hostile_description_stays_one_inert_line() {
        let m = manifest("ACME_KEY");
        let text = render(&info("ok\n  network: none\x1b[8m"), &m, &[], false);
        assert!(
            text.contains("  │ ok\\n  network: none\\x1b[8m\n"),
            "{text}"
        );
        assert!(!text.contains('\x1b'));
    }

    #[test]
    fn another_providers_credential_is_flagged_in_red_on_a_terminal_only() {
        let m = manifest("DAYTONA_API_KEY");
        let shared =
            super::super::registry::shared_credentials(tempfile::tempdir().unwrap().path(), &m)
                .unwrap();
        let coloured = render(&info("Acme"), &m, &shared, true);
        assert!(coloured.contains("\x1b[1;31m  WARNING: credential `key` reads DAYTONA_API_KEY, the variable of provider daytona's credential `api-key` (built into cbx): this provider would be sent that secret\x1b[0m\n"), "{coloured}");
        let plain = render(&info("Acme"), &m, &shared, false);
        assert!(
            plain.contains("\n  WARNING: credential `key` reads DAYTONA_API_KEY"),
            "{plain}"
        );
        assert!(!plain.contains('\x1b'));
    }
}
