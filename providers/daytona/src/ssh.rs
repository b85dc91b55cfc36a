//! Reading the SSH endpoint out of Daytona's `sshCommand` (`ssh [-p PORT] TOKEN@HOST`).
//!
//! The command carries the access token as its user name, so nothing here ever quotes the
//! command or any of its words in an error.

/// Daytona's public SSH gateway, used when the response has no `sshCommand`.
pub const DEFAULT_GATEWAY_HOST: &str = "ssh.app.daytona.io";

/// The SSH port used when the command names none.
pub const DEFAULT_PORT: u16 = 22;

/// Options of `ssh` that take a value in the next word (or attached, e.g. `-oKey=value`).
/// `-p` is handled separately.
const OPTIONS_WITH_VALUE: &[char] = &[
    'o', 'i', 'F', 'J', 'l', 'b', 'B', 'c', 'D', 'E', 'e', 'L', 'm', 'O', 'Q', 'R', 'S', 'W', 'w',
];

/// Where the SSH gateway listens, as parsed from an `sshCommand`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or address of the gateway.
    pub host: String,
    /// TCP port of the gateway.
    pub port: u16,
}

/// The gateway endpoint for an access response: parsed from `ssh_command` when it is present
/// and not blank, else Daytona's public gateway on port 22.
pub fn endpoint(ssh_command: Option<&str>) -> Result<Endpoint, String> {
    match ssh_command {
        Some(cmd) if !cmd.trim().is_empty() => parse_ssh_command(cmd),
        _ => Ok(Endpoint {
            host: DEFAULT_GATEWAY_HOST.to_string(),
            port: DEFAULT_PORT,
        }),
    }
}

/// Parses `ssh`'s argument words: `-p N`/`-pN` set the port, value options skip their value,
/// other flags are ignored, and the last non-option word with an `@` is the destination,
/// split at its last `@`. Errors never include the command text.
pub fn parse_ssh_command(cmd: &str) -> Result<Endpoint, String> {
    let mut words = cmd.split_whitespace().peekable();
    if words.peek() == Some(&"ssh") {
        words.next();
    }
    let mut port = DEFAULT_PORT;
    let mut destination: Option<&str> = None;
    let mut options_done = false;
    while let Some(word) = words.next() {
        if options_done || !word.starts_with('-') || word == "-" {
            if word.contains('@') {
                destination = Some(word);
            }
            continue;
        }
        if word == "--" {
            options_done = true;
            continue;
        }
        let mut flag = word[1..].chars();
        let letter = flag.next().unwrap_or('-');
        let attached = flag.as_str();
        if letter == 'p' {
            let value = if attached.is_empty() {
                words.next()
            } else {
                Some(attached)
            };
            let value = value.ok_or("daytona sshCommand has -p without a port")?;
            port = value
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or("daytona sshCommand has an invalid -p port")?;
        } else if OPTIONS_WITH_VALUE.contains(&letter)
            && attached.is_empty()
            && words.next().is_none()
        {
            return Err(format!("daytona sshCommand has -{letter} without a value"));
        }
        // Any other flag (or a value option with its value attached) is ignored.
    }
    let destination = destination.ok_or("daytona sshCommand has no user@host destination")?;
    let (_, host) = destination
        .rsplit_once('@')
        .expect("destination contains @");
    if host.is_empty() {
        return Err("daytona sshCommand has an empty host".to_string());
    }
    Ok(Endpoint {
        host: host.to_string(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(host: &str, port: u16) -> Endpoint {
        Endpoint {
            host: host.to_string(),
            port,
        }
    }

    #[test]
    fn missing_command_uses_gateway() {
        assert_eq!(endpoint(None).unwrap(), ep("ssh.app.daytona.io", 22));
        assert_eq!(endpoint(Some("  ")).unwrap(), ep("ssh.app.daytona.io", 22));
    }

    #[test]
    fn plain_command() {
        assert_eq!(
            endpoint(Some("ssh AbC123tok@ssh.app.daytona.io")).unwrap(),
            ep("ssh.app.daytona.io", 22)
        );
    }

    #[test]
    fn port_as_separate_and_attached_word() {
        assert_eq!(
            parse_ssh_command("ssh -p 2222 tok@h.example").unwrap(),
            ep("h.example", 2222)
        );
        assert_eq!(
            parse_ssh_command("ssh -p2222 tok@h.example").unwrap(),
            ep("h.example", 2222)
        );
        assert_eq!(
            parse_ssh_command("tok@h.example -p 2200").unwrap(),
            ep("h.example", 2200)
        );
    }

    #[test]
    fn options_are_tolerated() {
        let cmd = "ssh -o StrictHostKeyChecking=no -oUserKnownHostsFile=/dev/null -t -i key \
                   -p 2222 tok@region-ssh.example.com";
        assert_eq!(
            parse_ssh_command(cmd).unwrap(),
            ep("region-ssh.example.com", 2222)
        );
        // The jump host's `@` is a value, not the destination.
        assert_eq!(
            parse_ssh_command("ssh -J jump@bastion tok@inner").unwrap(),
            ep("inner", 22)
        );
    }

    #[test]
    fn destination_splits_at_last_at() {
        assert_eq!(parse_ssh_command("ssh a@b@host").unwrap(), ep("host", 22));
    }

    #[test]
    fn last_destination_wins() {
        assert_eq!(
            parse_ssh_command("ssh t@first t@second").unwrap(),
            ep("second", 22)
        );
    }

    #[test]
    fn errors_never_echo_the_command() {
        let secret = "SeCrEtToKeN";
        for cmd in [
            format!("ssh {secret}"),
            format!("ssh -p {secret}@host"),
            format!("ssh {secret}@host -p"),
            format!("ssh -p 99999 {secret}@host"),
            format!("ssh -p 0 {secret}@host"),
            format!("ssh {secret}@"),
            format!("ssh {secret}@host -o"),
        ] {
            let err = parse_ssh_command(&cmd).unwrap_err();
            assert!(!err.contains(secret), "{err}");
            assert!(err.starts_with("daytona sshCommand"), "{err}");
        }
    }

    #[test]
    fn missing_destination_is_an_error() {
        assert!(parse_ssh_command("ssh").is_err());
        assert!(parse_ssh_command("ssh -p 22 host").is_err());
    }
}
