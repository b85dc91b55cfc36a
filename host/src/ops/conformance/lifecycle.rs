//! The sandbox's life in the conformance suite: ready (and SSH access at that moment), get,
//! list (with a label the sandbox does not carry too), set-labels, touch, SSH access, stop
//! and start.

use std::time::{Duration, Instant};

use super::mapping;
use super::{StepResult, Suite, text};
use crate::lease::access::{AccessOrigin, admit, target_of};
use crate::lease::session::Session;
use crate::progress::{Progress, human_duration};
use crate::provider::Feature;
use crate::provider::api::{self, SandboxState};
use crate::ssh::Target;

type Labels = [(String, String)];

/// Ready, get, list, set-labels, touch, SSH access, stop and start.
pub(super) async fn run(suite: &mut Suite<'_>, session: &mut Session, id: &str, labels: &Labels) {
    match wait_for(suite, session, id, SandboxState::Ready).await {
        Ok(s) => match mapping::early_ready(&s) {
            Some(cause) => return suite.record("ready", StepResult::Fail, cause),
            None => suite.record(
                "ready",
                StepResult::Pass,
                format!("state {}", s.provider_state),
            ),
        },
        Err(e) => return suite.record("ready", StepResult::Fail, e),
    }
    // Access minted the moment the provider says `ready`: a service that is not ready yet
    // refuses it, or hands out a destination nobody answers at.
    let access = ssh_access(suite, session, id).await;
    match session.get(id).await {
        Ok(s) if s.id != id => {
            suite.record("get", StepResult::Fail, format!("returned id {}", s.id))
        }
        Ok(s) => match missing_label(labels, &s.labels) {
            None => suite.record(
                "get",
                StepResult::Pass,
                "returns the id and the labels given at create",
            ),
            Some(what) => suite.record(
                "get",
                StepResult::Fail,
                format!("{what}: store the labels `create` is given verbatim and return them from `get` and `list`"),
            ),
        },
        Err(e) => suite.record("get", StepResult::Fail, text(session, e)),
    }
    listing(suite, session, id, labels).await;
    labelling(suite, session, id, labels).await;
    match session.touch(id).await {
        Ok(()) => suite.record("touch", StepResult::Pass, "ok"),
        Err(e) => suite.record("touch", StepResult::Fail, text(session, e)),
    }
    if let Some(target) = access {
        reachable(suite, &target).await;
    }
    stop_and_start(suite, session, id).await;
}

/// The first given label `got` lacks or holds with another value, in words.
fn missing_label(given: &Labels, got: &Labels) -> Option<String> {
    given
        .iter()
        .find_map(|(k, v)| match got.iter().find(|(gk, _)| gk == k) {
            None => Some(format!("label `{k}` given at create is missing")),
            Some((_, gv)) if gv != v => Some(format!(
                "label `{k}` came back as `{gv}`, not `{v}` as given"
            )),
            Some(_) => None,
        })
}

/// The sandbox is listed under its labels (lists may lag behind creation: a few seconds),
/// every sandbox listed carries them, and a label it does not carry leaves it out.
async fn listing(suite: &mut Suite<'_>, session: &mut Session, id: &str, labels: &Labels) {
    let mut found = None;
    for _ in 0..10 {
        match session.list(labels).await {
            Ok(items) if items.iter().any(|s| s.id == id) => {
                found = Some(items);
                break;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            Err(e) => return suite.record("list", StepResult::Fail, text(session, e)),
        }
    }
    let Some(items) = found else {
        return suite.record(
            "list",
            StepResult::Warn,
            "the sandbox was not listed within 5 s (cbx falls back to its claims)",
        );
    };
    if let Some(other) = items
        .iter()
        .find(|s| missing_label(labels, &s.labels).is_some())
    {
        return suite.record(
            "list",
            StepResult::Fail,
            format!(
                "sandbox {} was listed without the requested labels: `list` must return only sandboxes carrying all the labels it is given (does it ignore its `labels` argument?)",
                other.id
            ),
        );
    }
    let mut absent = labels.to_vec();
    absent.push(("cbx-conformance-absent".to_string(), "yes".to_string()));
    match session.list(&absent).await {
        Ok(items) if items.iter().any(|s| s.id == id) => suite.record(
            "list",
            StepResult::Fail,
            "listed for a label the sandbox does not carry (`cbx-conformance-absent=yes`): `list` must filter by all the labels it is given — does it ignore its `labels` argument? Then every `cbx list` pages through the whole account",
        ),
        Ok(_) => suite.record(
            "list",
            StepResult::Pass,
            "listed under its labels, and not under a label it does not carry",
        ),
        Err(e) => suite.record("list", StepResult::Fail, text(session, e)),
    }
}

/// Replaced labels are read back.
async fn labelling(suite: &mut Suite<'_>, session: &mut Session, id: &str, labels: &Labels) {
    let mut more = labels.to_vec();
    more.push(("extra".to_string(), "yes".to_string()));
    let read = async {
        session.set_labels(id, &more).await?;
        session.get(id).await
    }
    .await;
    match read {
        Ok(s) => match missing_label(&more, &s.labels) {
            None => suite.record("set-labels", StepResult::Pass, "replaced labels read back"),
            Some(what) => suite.record(
                "set-labels",
                StepResult::Warn,
                format!("after set-labels, {what} (labels fixed at creation?)"),
            ),
        },
        Err(e) => suite.record("set-labels", StepResult::Fail, text(session, e)),
    }
}

/// Mints SSH access: it must work as soon as the sandbox is ready, be usable as an ssh
/// config's target, and lie within the provider's grant (the one check every minted access
/// passes; audited).
async fn ssh_access(suite: &mut Suite<'_>, session: &mut Session, id: &str) -> Option<Target> {
    match session.mint_ssh_access(id).await {
        Ok(a) => {
            let minted = target_of(a);
            match admit(session, None, &minted, AccessOrigin::Minted) {
                Ok(target) => {
                    suite.record(
                        "ssh-access",
                        StepResult::Pass,
                        format!("{}:{}", target.shown_destination(), target.port),
                    );
                    Some(target)
                }
                Err(e) => {
                    suite.record("ssh-access", StepResult::Fail, e.to_string());
                    None
                }
            }
        }
        Err(e) => {
            let detail = format!(
                "{} — right after the provider said `ready`: does it report `ready` before the service does (map the service's transitional states to creating or starting)?",
                text(session, e)
            );
            suite.record("ssh-access", StepResult::Fail, detail);
            None
        }
    }
}

/// Something accepts TCP connections at the minted destination within 10 s (a warning
/// otherwise: a fake service may hand out a destination with no SSH server behind it).
async fn reachable(suite: &mut Suite<'_>, target: &Target) {
    let (host, port) = (target.host.clone(), target.port);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (h, p) = (host.clone(), port);
        let accepted = tokio::task::spawn_blocking(move || connects(&h, p))
            .await
            .unwrap_or(false);
        if accepted {
            return suite.record(
                "ssh-reachable",
                StepResult::Pass,
                format!("{host}:{port} accepts connections"),
            );
        }
        if Instant::now() >= deadline {
            return suite.record(
                "ssh-reachable",
                StepResult::Warn,
                format!(
                    "nothing accepted a connection at {host}:{port} within 10 s of `ready` (fine for a fake service without SSH; against the real one, report `ready` only once SSH is up)"
                ),
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Whether a TCP connection to `host:port` opens within 2 s.
fn connects(host: &str, port: u16) -> bool {
    use std::net::ToSocketAddrs;
    (host, port).to_socket_addrs().is_ok_and(|mut addrs| {
        addrs.any(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok())
    })
}

/// Stop and start, for providers declaring them.
async fn stop_and_start(suite: &mut Suite<'_>, session: &mut Session, id: &str) {
    if !session.declares(Feature::Stop) {
        return suite.record(
            "stop",
            StepResult::Skip,
            "the provider does not declare the `stop` feature",
        );
    }
    match session.stop(id).await {
        Ok(_) => match wait_for(suite, session, id, SandboxState::Stopped).await {
            Ok(_) => suite.record("stop", StepResult::Pass, "stopped"),
            Err(e) => suite.record("stop", StepResult::Fail, e),
        },
        Err(e) => suite.record("stop", StepResult::Fail, text(session, e)),
    }
    if session.declares(Feature::Start) {
        match session.start(id).await {
            Ok(_) => match wait_for(suite, session, id, SandboxState::Ready).await {
                Ok(_) => suite.record("start", StepResult::Pass, "ready again"),
                Err(e) => suite.record("start", StepResult::Fail, e),
            },
            Err(e) => suite.record("start", StepResult::Fail, text(session, e)),
        }
    }
}

/// Polls `get` until the sandbox is in state `want`, showing progress, for at most the
/// suite's timeout; the error names the likely cause.
async fn wait_for(
    suite: &Suite<'_>,
    session: &mut Session,
    id: &str,
    want: SandboxState,
) -> Result<api::Sandbox, String> {
    let timeout = suite.timeout;
    let deadline = Instant::now() + timeout;
    let mut progress = Progress::start(
        format!("waiting for sandbox {id} to be {want}"),
        suite.quiet,
    );
    let mut seen = Vec::new();
    let result = loop {
        let s = match session.get(id).await {
            Ok(s) => s,
            Err(e) => break Err(text(session, e)),
        };
        if !seen.contains(&s.state) {
            seen.push(s.state);
        }
        // One line per state seen (a spinner on a terminal), not one per poll.
        progress.set(format!(
            "waiting up to {} for sandbox {id} to be {want}: {} ({})",
            human_duration(timeout),
            s.state,
            s.provider_state
        ));
        if s.state == want {
            break Ok(s);
        }
        if s.state == SandboxState::Failed {
            break Err(format!(
                "the sandbox failed ({}): {}",
                s.provider_state,
                s.reason.unwrap_or_default()
            ));
        }
        if let Some(cause) = mapping::stuck(want, &s, &seen, Instant::now() >= deadline) {
            break Err(cause);
        }
        if Instant::now() >= deadline {
            break Err(format!(
                "not {want} after {} (state {}, service says `{}`); raise --timeout if the service is just slow",
                human_duration(timeout),
                s.state,
                s.provider_state
            ));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    progress.clear();
    result
}
