//! One writer per output folder: the lock object `<output>/gtseg.lock`, created only if absent
//! (S3's conditional write, a local store's no-clobber rename), naming the run that holds it
//! and its options. A second run refuses with that name. A lock whose holder is a process
//! of this host that no longer runs is stale, and is taken over with a warning; any other
//! lock stays until its run ends, or until the user, sure that run is gone, removes it
//! (`--break-lock`).

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::consolidate::format_creation_date;
use crate::store::{ObjectStore, PutOptions, StoreError};
use crate::uri::S3Uri;

/// Who holds an output's lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Holder {
    /// The command and its options, as given.
    pub command: String,
    /// The run's id, when it has one.
    #[serde(default)]
    pub run_id: Option<String>,
    /// The host it runs on.
    pub host: String,
    /// Its process id there.
    pub pid: u32,
    /// When it took the lock (UTC).
    pub since: String,
}

impl Holder {
    /// This process, running `command`.
    pub fn this_process(command: String, run_id: Option<String>) -> Self {
        Self {
            command,
            run_id,
            host: host_name(),
            pid: std::process::id(),
            since: format_creation_date(SystemTime::now()),
        }
    }

    /// Whether the holder is a process of this host that has ended (its lock is stale).
    fn is_gone(&self) -> bool {
        self.host == host_name() && self.pid != std::process::id() && !process_runs(self.pid)
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` (process {} on {}, since {}",
            self.command, self.pid, self.host, self.since
        )?;
        match &self.run_id {
            Some(id) => write!(f, ", run {id})"),
            None => write!(f, ")"),
        }
    }
}

/// Why an output's lock could not be had.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another run holds it.
    #[error(
        "{uri} is locked by {holder}: one run at a time may write into an output. Wait for that run to end, or give another --output; if it was killed on another machine, rerun with --break-lock"
    )]
    Held {
        /// The lock object.
        uri: S3Uri,
        /// Who holds it.
        holder: Box<Holder>,
    },
    /// The lock object could not be read or written.
    #[error("the output's lock: {0}")]
    Store(StoreError),
}

/// An output's lock, held until [`OutputLock::release`].
#[derive(Debug)]
#[must_use = "a lock is held until it is released"]
pub struct OutputLock {
    uri: S3Uri,
}

/// Where an output folder's lock is.
pub fn lock_uri(output: &S3Uri) -> S3Uri {
    output.join("gtseg.lock")
}

impl OutputLock {
    /// Takes the lock of `output` for `holder`. A stale lock (see the module's docs) is taken
    /// over; with `break_lock`, any lock is.
    pub async fn acquire<S: ObjectStore>(
        store: &S,
        output: &S3Uri,
        holder: &Holder,
        break_lock: bool,
    ) -> Result<Self, LockError> {
        let uri = lock_uri(output);
        let body = serde_json::to_vec_pretty(holder).unwrap_or_default();
        let opts = PutOptions {
            content_type: Some("application/json"),
            kms_key_id: None,
        };
        // Twice at most: once, and once more after removing a stale or broken lock.
        for _ in 0..2 {
            if store
                .create(&uri, body.clone(), &opts)
                .await
                .map_err(LockError::Store)?
            {
                return Ok(Self { uri });
            }
            let held = match store.get(&uri, 1 << 20).await {
                Ok(bytes) => serde_json::from_slice::<Holder>(&bytes).ok(),
                // Released between our write and our read: try again.
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(LockError::Store(e)),
            };
            match held {
                Some(h) if !break_lock && !h.is_gone() => {
                    return Err(LockError::Held {
                        uri,
                        holder: Box::new(h),
                    });
                }
                Some(h) => {
                    warn!(lock = %uri, holder = %h, "taking over a lock whose run has ended")
                }
                None => warn!(lock = %uri, "taking over a lock that names no run"),
            }
            store.delete(&uri).await.map_err(LockError::Store)?;
        }
        let holder = match store.get(&uri, 1 << 20).await {
            Ok(bytes) => serde_json::from_slice::<Holder>(&bytes).ok(),
            Err(_) => None,
        };
        Err(LockError::Held {
            uri,
            holder: Box::new(holder.unwrap_or_else(|| Holder {
                command: "another run".into(),
                run_id: None,
                host: "?".into(),
                pid: 0,
                since: "?".into(),
            })),
        })
    }

    /// Releases the lock (removes the lock object).
    pub async fn release<S: ObjectStore>(self, store: &S) -> Result<(), StoreError> {
        store.delete(&self.uri).await
    }
}

/// This host's name (empty when it cannot be read).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

/// Whether process `pid` runs on this host (Linux's `/proc`; elsewhere, assumed to run).
fn process_runs(pid: u32) -> bool {
    let proc = std::path::Path::new("/proc");
    !proc.is_dir() || proc.join(pid.to_string()).exists()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LocalStore;

    #[tokio::test]
    async fn one_holder_at_a_time_and_a_dead_one_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let out = S3Uri::parse("s3://b/out").unwrap();
        let me = Holder::this_process("gtseg job consolidate".into(), Some("r1".into()));
        let lock = OutputLock::acquire(&store, &out, &me, false).await.unwrap();
        // A second run of this process's host that still runs (this very process).
        let mut other = me.clone();
        other.pid = std::process::id();
        let e = OutputLock::acquire(&store, &out, &other, false)
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("locked by `gtseg job consolidate`"),
            "{e}"
        );
        lock.release(&store).await.unwrap();
        // A lock left by a process of this host that has ended is stale.
        let mut dead = me.clone();
        dead.pid = u32::MAX - 1;
        store
            .put(
                &lock_uri(&out),
                serde_json::to_vec(&dead).unwrap(),
                &PutOptions::default(),
            )
            .await
            .unwrap();
        let lock = OutputLock::acquire(&store, &out, &me, false).await.unwrap();
        lock.release(&store).await.unwrap();
        // Another host's lock stays unless broken.
        let mut remote = me.clone();
        remote.host = "elsewhere".into();
        store
            .put(
                &lock_uri(&out),
                serde_json::to_vec(&remote).unwrap(),
                &PutOptions::default(),
            )
            .await
            .unwrap();
        assert!(OutputLock::acquire(&store, &out, &me, false).await.is_err());
        let lock = OutputLock::acquire(&store, &out, &me, true).await.unwrap();
        lock.release(&store).await.unwrap();
    }
}
