//! Requests served together by one task: whatever has queued up meanwhile (up to a cap) is
//! handed over as one batch, and each caller gets its own outcome back. On SQLite, one writer
//! and an fsync per commit, this lets many window closes or alarm marks share one transaction.

use std::future::Future;

use tokio::sync::{mpsc, oneshot};

/// A handle on the serving task; it ends when the last clone is dropped.
pub struct Together<T, R> {
    queue: mpsc::UnboundedSender<(T, oneshot::Sender<R>)>,
}

impl<T, R> std::fmt::Debug for Together<T, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Together").finish_non_exhaustive()
    }
}

impl<T, R> Clone for Together<T, R> {
    fn clone(&self) -> Self {
        Together {
            queue: self.queue.clone(),
        }
    }
}

impl<T: Send + 'static, R: Send + 'static> Together<T, R> {
    /// Starts the task: `serve` gets up to `max` requests at a time, in the order they came,
    /// and returns one outcome for each, in the same order.
    pub fn start<F, Fut>(max: usize, mut serve: F) -> Self
    where
        F: FnMut(Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<R>> + Send,
    {
        let (queue, mut queued) = mpsc::unbounded_channel::<(T, oneshot::Sender<R>)>();
        tokio::spawn(async move {
            while let Some(first) = queued.recv().await {
                let mut batch = vec![first];
                while batch.len() < max {
                    match queued.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let (requests, answers): (Vec<T>, Vec<oneshot::Sender<R>>) =
                    batch.into_iter().unzip();
                for (answer, outcome) in answers.into_iter().zip(serve(requests).await) {
                    // A caller that stopped waiting is not told: its request was served.
                    let _ = answer.send(outcome);
                }
            }
        });
        Together { queue }
    }

    /// Hands `request` to the task and waits for its outcome; `None` if the task has stopped.
    pub async fn ask(&self, request: T) -> Option<R> {
        let (answer, answered) = oneshot::channel();
        self.queue.send((request, answer)).ok()?;
        answered.await.ok()
    }
}
