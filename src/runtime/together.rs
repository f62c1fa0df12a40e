//! Requests served together by one task: whatever has queued up meanwhile (up to a cap) is
//! handed over as one batch, and each caller gets its own outcome back. On SQLite, one writer
//! and an fsync per commit, this lets many window closes or alarm marks share one transaction.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

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

/// Several [`Together`] tasks side by side, each request handed to the next in turn: on
/// MySQL, where transactions on different connections run at once, a few batches commit
/// together; on SQLite's single writer one task is all there is to have. The tasks end when
/// the last clone is dropped.
pub struct Pool<T, R> {
    tasks: Arc<Vec<Together<T, R>>>,
    next: Arc<AtomicUsize>,
}

impl<T, R> std::fmt::Debug for Pool<T, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("tasks", &self.tasks.len())
            .finish_non_exhaustive()
    }
}

impl<T, R> Clone for Pool<T, R> {
    fn clone(&self) -> Self {
        Pool {
            tasks: Arc::clone(&self.tasks),
            next: Arc::clone(&self.next),
        }
    }
}

impl<T: Send + 'static, R: Send + 'static> Pool<T, R> {
    /// Starts `count` (at least one) tasks, each serving batches of up to `max` requests with
    /// the function `serve` makes for it.
    pub fn start<F, Fut>(count: usize, max: usize, mut serve: impl FnMut() -> F) -> Self
    where
        F: FnMut(Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<R>> + Send,
    {
        let tasks = (0..count.max(1))
            .map(|_| Together::start(max, serve()))
            .collect();
        Pool {
            tasks: Arc::new(tasks),
            next: Arc::default(),
        }
    }

    /// Hands `request` to the next task in turn and waits for its outcome; `None` if the task
    /// has stopped.
    pub async fn ask(&self, request: T) -> Option<R> {
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.tasks.len();
        self.tasks[turn].ask(request).await
    }
}
