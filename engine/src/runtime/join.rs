//! Waiting for several futures of one shard at once (e.g. one request's work on every shard it
//! touches), without spawning a task for each.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

/// Runs every future concurrently on the current task and returns their outputs in order.
pub async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut running: Vec<Option<Pin<Box<F>>>> = futures
        .into_iter()
        .map(|future| Some(Box::pin(future)))
        .collect();
    let mut outputs: Vec<Option<F::Output>> = running.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all_done = true;
        for (slot, output) in running.iter_mut().zip(outputs.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => {
                        *output = Some(value);
                        *slot = None;
                    }
                    Poll::Pending => all_done = false,
                }
            }
        }
        if all_done {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_come_back_in_order_whatever_finishes_first() {
        let outputs = crate::io::start_runtime(64, async {
            let futures: Vec<_> = (0..5u64)
                .map(|index| async move {
                    tokio::time::sleep(std::time::Duration::from_millis(10 * (5 - index))).await;
                    index
                })
                .collect();
            join_all(futures).await
        });
        assert_eq!(outputs, vec![0, 1, 2, 3, 4]);
        let none: Vec<u8> =
            crate::io::start_runtime(64, join_all(Vec::<std::future::Ready<u8>>::new()));
        assert!(none.is_empty());
    }
}
