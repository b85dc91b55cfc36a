//! A run's file list, made on a thread of its own from the moment the run starts, so that its
//! work — `git ls-files` or the listing cache, a stat of every file, the size check — overlaps
//! what cbx does on the network meanwhile: loading the provider, asking it about the lease,
//! starting the sandbox, minting access, connecting. The sync waits for the list only when it
//! needs it.
//!
//! The thread is a plain one, not one of the async runtime's blocking threads: the runtime
//! waits for its blocking threads when it shuts down, so an error or a Ctrl-C during a long
//! listing would print at once and then leave cbx hanging, deaf to a second Ctrl-C, until the
//! listing ended. A plain thread ends with the process.

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Mutex;
use std::thread;

use anyhow::Result;
use tokio::sync::{OnceCell, oneshot};

use crate::environment::Environment;
use crate::error::{ErrorKind, fail};
use crate::progress;
use crate::sync::FileList;

/// What the listing thread sends: the list or its error, or the panic it ended with.
type Listed = thread::Result<Result<FileList>>;

/// The file list of a run's sync, being made on its own thread until it is first needed.
pub struct PendingFiles {
    task: Mutex<Option<oneshot::Receiver<Listed>>>,
    list: OnceCell<FileList>,
}

impl PendingFiles {
    /// Starts listing the work tree at `root` (with the listing cache in `cache`, git run in
    /// `env`) and checking its size against the limits (`allow_large`: `--sync-large`).
    pub fn start(root: PathBuf, cache: PathBuf, env: Environment, allow_large: bool) -> Self {
        let (send, task) = oneshot::channel();
        let listing = move || {
            let listed = std::panic::catch_unwind(AssertUnwindSafe(|| {
                let list = FileList::collect_cached(&root, &cache, &env)?;
                list.check_size(allow_large, &|m| progress::report(m))?;
                Ok(list)
            }));
            // The run may have ended without needing the list.
            let _ = send.send(listed);
        };
        if let Err(e) = thread::Builder::new()
            .name("cbx-file-list".into())
            .spawn(listing)
        {
            // The receiver sees the sender dropped and reports the listing abandoned.
            tracing::warn!("cannot start the file-listing thread: {e}");
        }
        PendingFiles {
            task: Mutex::new(Some(task)),
            list: OnceCell::new(),
        }
    }

    /// The list, once it is made and within the size limits; its error otherwise (returned
    /// once: the run ends with it).
    pub async fn get(&self) -> Result<&FileList> {
        self.list
            .get_or_try_init(|| async {
                let task = self.task.lock().expect("not poisoned").take();
                let Some(task) = task else {
                    return Err(fail(
                        ErrorKind::Sync,
                        "the list of files to sync could not be made (see the error above)",
                    ));
                };
                match task.await {
                    Ok(Ok(list)) => list,
                    Ok(Err(panic)) => std::panic::resume_unwind(panic),
                    Err(_) => Err(fail(
                        ErrorKind::Sync,
                        "listing the files to sync was abandoned: its thread could not start",
                    )),
                }
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            let out = std::process::Command::new("git")
                .args(args)
                .current_dir(dir.path())
                .output()
                .unwrap();
            assert!(out.status.success(), "git {args:?}: {out:?}");
        };
        run(&["init", "-q"]);
        std::fs::write(dir.path().join("a.txt"), "a").unwrap();
        std::fs::write(dir.path().join("b.txt"), "bb").unwrap();
        run(&["add", "."]);
        dir
    }

    #[tokio::test]
    async fn the_list_made_on_a_thread_is_the_list_made_in_place() {
        let dir = repo();
        let cache = tempfile::tempdir().unwrap();
        let env = Environment::capture();
        let pending = PendingFiles::start(
            dir.path().to_path_buf(),
            cache.path().to_path_buf(),
            env,
            false,
        );
        let direct = FileList::collect(dir.path()).unwrap();
        let list = pending.get().await.unwrap();
        assert_eq!(list.files, direct.files);
        assert_eq!(list.bytes, 3);
        // Asked again, the same list, without another thread.
        assert_eq!(pending.get().await.unwrap().files, direct.files);
    }

    #[tokio::test]
    async fn a_listing_error_is_returned_then_named_again() {
        let dir = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        // Not a git work tree: listing it fails.
        let pending = PendingFiles::start(
            dir.path().join("missing"),
            cache.path().to_path_buf(),
            Environment::capture(),
            false,
        );
        assert!(pending.get().await.is_err());
        let again = pending.get().await.unwrap_err().to_string();
        assert!(again.contains("could not be made"), "{again}");
    }
}
