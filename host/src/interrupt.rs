//! The one place cbx waits for the user to interrupt it: every long step (acquiring a lease,
//! running a command, cleaning up) races its work against [`interrupted`], so which signals
//! count as an interruption is decided here.

/// Completes when the user interrupts cbx (Ctrl-C), or when the signal cannot be watched.
pub async fn interrupted() {
    let _ = tokio::signal::ctrl_c().await;
}
