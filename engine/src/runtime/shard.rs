//! Shards, their mailboxes, and the router that sends work between them.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use super::affinity;
use crate::error::{Error, Result};
use crate::io;

/// Index of a shard, `0..shard_count`.
pub type ShardId = usize;

/// Messages a shard's mailbox holds before senders wait. Large enough that a burst of requests
/// from every connection of another shard fits; small enough to bound memory per core.
pub const MAILBOX_CAPACITY: usize = 4096;

type LocalFuture = Pin<Box<dyn Future<Output = ()>>>;
type Task<S> = Box<dyn FnOnce(Rc<S>) -> LocalFuture + Send>;

/// What a mailbox carries.
enum Message<S> {
    Run(Task<S>),
    /// Ends the shard's loop (and with it every task still running on the shard).
    Stop,
}

/// How to start a [`ShardSet`].
#[derive(Debug, Clone)]
pub struct ShardSetConfig {
    /// Number of shards; 0 means one per CPU this process may use.
    pub shard_count: usize,
    /// Pin each shard's thread to its own CPU.
    pub pin_threads: bool,
    /// Submission queue entries of each shard's io_uring.
    pub ring_entries: u32,
}

impl Default for ShardSetConfig {
    fn default() -> Self {
        ShardSetConfig {
            shard_count: 0,
            pin_threads: true,
            ring_entries: 1024,
        }
    }
}

/// Sends work to shards. Cheap to clone, `Send + Sync`: every shard holds one so shards can
/// submit work to each other.
pub struct ShardRouter<S> {
    mailboxes: std::sync::Arc<Vec<mpsc::Sender<Message<S>>>>,
}

impl<S> Clone for ShardRouter<S> {
    fn clone(&self) -> Self {
        ShardRouter {
            mailboxes: self.mailboxes.clone(),
        }
    }
}

impl<S: 'static> ShardRouter<S> {
    pub fn shard_count(&self) -> usize {
        self.mailboxes.len()
    }

    /// Runs `task` on `shard` with that shard's state and returns its result here.
    /// Waits while the target mailbox is full.
    pub async fn submit_to<R, F, Fut>(&self, shard: ShardId, task: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(Rc<S>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
    {
        let mailbox = self
            .mailboxes
            .get(shard)
            .ok_or(Error::ShardStopped(shard))?;
        let (reply_tx, reply_rx) = oneshot::channel();
        let boxed: Task<S> = Box::new(move |state: Rc<S>| {
            Box::pin(async move {
                // The submitter may have given up waiting; then nobody needs the reply.
                let _ = reply_tx.send(task(state).await);
            })
        });
        mailbox
            .send(Message::Run(boxed))
            .await
            .map_err(|_| Error::ShardStopped(shard))?;
        reply_rx.await.map_err(|_| Error::ShardStopped(shard))
    }

    /// Like [`Self::submit_to`] but does not wait for a result; fails if the mailbox is full.
    pub fn try_post_to<F, Fut>(&self, shard: ShardId, task: F) -> Result<()>
    where
        F: FnOnce(Rc<S>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let mailbox = self
            .mailboxes
            .get(shard)
            .ok_or(Error::ShardStopped(shard))?;
        let boxed: Task<S> = Box::new(move |state: Rc<S>| Box::pin(task(state)));
        mailbox
            .try_send(Message::Run(boxed))
            .map_err(|_| Error::ShardStopped(shard))
    }
}

/// A running set of shards. A shard stops when its mailbox closes (every router clone dropped)
/// or when [`ShardSet::stop`] tells it to.
pub struct ShardSet<S> {
    router: ShardRouter<S>,
    threads: Vec<JoinHandle<()>>,
}

impl<S: 'static> ShardSet<S> {
    /// Starts the shards. `init` runs on each shard's thread, inside its runtime, and builds
    /// that shard's state; it gets the shard's id and a router to reach the others.
    pub fn start<I, Fut>(config: &ShardSetConfig, init: I) -> std::io::Result<Self>
    where
        I: Fn(ShardId, ShardRouter<S>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = S> + 'static,
    {
        let cpus = affinity::allowed_cpus();
        let shard_count = if config.shard_count == 0 {
            cpus.len().max(1)
        } else {
            config.shard_count
        };
        let mut senders = Vec::with_capacity(shard_count);
        let mut receivers = Vec::with_capacity(shard_count);
        for _ in 0..shard_count {
            let (tx, rx) = mpsc::channel::<Message<S>>(MAILBOX_CAPACITY);
            senders.push(tx);
            receivers.push(rx);
        }
        let router = ShardRouter {
            mailboxes: std::sync::Arc::new(senders),
        };
        let init = std::sync::Arc::new(init);
        let mut threads = Vec::with_capacity(shard_count);
        for (shard, mut mailbox) in receivers.into_iter().enumerate() {
            let router = router.clone();
            let init = init.clone();
            let cpu = (!cpus.is_empty() && config.pin_threads).then(|| cpus[shard % cpus.len()]);
            let ring_entries = config.ring_entries;
            let thread = std::thread::Builder::new()
                .name(format!("shard-{shard}"))
                .spawn(move || {
                    if let Some(cpu) = cpu {
                        if let Err(error) = affinity::pin_current_thread(cpu) {
                            tracing::warn!(shard, cpu, %error, "could not pin shard thread");
                        }
                    }
                    io::start_runtime(ring_entries, async move {
                        let state = Rc::new(init(shard, router).await);
                        while let Some(Message::Run(task)) = mailbox.recv().await {
                            io::spawn_local(task(state.clone()));
                        }
                    });
                })?;
            threads.push(thread);
        }
        Ok(ShardSet { router, threads })
    }

    pub fn router(&self) -> &ShardRouter<S> {
        &self.router
    }

    pub fn shard_count(&self) -> usize {
        self.threads.len()
    }

    /// Tells every shard to stop after the work already in its mailbox, and waits for the
    /// threads to end. Call from outside the shards (it blocks).
    pub fn stop(self) {
        for mailbox in self.router.mailboxes.iter() {
            // A shard whose mailbox is closed has stopped already.
            let _ = mailbox.blocking_send(Message::Stop);
        }
        self.join();
    }

    /// Closes this handle's mailboxes and waits for every shard thread to end. Shards end once
    /// every router clone (including those held by shard states) is dropped.
    pub fn join(self) {
        drop(self.router);
        for thread in self.threads {
            if thread.join().is_err() {
                tracing::error!("a shard thread panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    struct Counter {
        id: ShardId,
        hits: Cell<u64>,
    }

    #[test]
    fn work_runs_on_the_shard_that_owns_the_state() {
        let config = ShardSetConfig {
            shard_count: 3,
            pin_threads: false,
            ring_entries: 64,
        };
        let set = ShardSet::start(&config, |id, _router| async move {
            Counter {
                id,
                hits: Cell::new(0),
            }
        })
        .expect("start shards");
        let router = set.router().clone();
        let results = std::thread::spawn(move || {
            io::start_runtime(64, async move {
                let mut seen = Vec::new();
                for round in 0..30usize {
                    let shard = round % 3;
                    let (id, hits) = router
                        .submit_to(shard, |state: Rc<Counter>| async move {
                            state.hits.set(state.hits.get() + 1);
                            (state.id, state.hits.get())
                        })
                        .await
                        .expect("shard running");
                    seen.push((shard, id, hits));
                }
                seen
            })
        })
        .join()
        .expect("client thread");
        for (round, (shard, id, hits)) in results.iter().enumerate() {
            assert_eq!(shard, id, "task ran on another shard");
            assert_eq!(
                *hits,
                (round / 3 + 1) as u64,
                "state not private to its shard"
            );
        }
        set.join();
    }

    #[test]
    fn submit_to_missing_shard_is_an_error() {
        let config = ShardSetConfig {
            shard_count: 1,
            pin_threads: false,
            ring_entries: 64,
        };
        let set = ShardSet::start(&config, |_, _| async {}).expect("start");
        let router = set.router().clone();
        let outcome = std::thread::spawn(move || {
            io::start_runtime(64, async move {
                router.submit_to(5, |_: Rc<()>| async {}).await
            })
        })
        .join()
        .expect("thread");
        assert!(matches!(outcome, Err(Error::ShardStopped(5))));
        set.join();
    }
}
