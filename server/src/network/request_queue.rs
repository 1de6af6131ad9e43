//! The requests of one connection between the socket reader and the dispatcher, with the
//! budget that decides when the reader may read more.
//!
//! Two limits bound a connection's work, and the reader stops reading from the socket while
//! either is reached (backpressure onto the client; nothing is ever dropped or reordered):
//! - requests **in flight**: read off the socket and not yet answered (queued, dispatched or
//!   completing, or waiting for the writer), at most `in_flight_max`;
//! - bytes **queued**: request frames read but not yet dispatched, at most `queued_max_bytes`
//!   (`queued.max.request.bytes`). A frame larger than the whole byte budget is admitted alone
//!   into an empty queue, so it waits for the queue to drain but never forever;
//! - bytes of **unsent responses**: responses complete but not yet written to the socket, at
//!   most `unsent_response_max_bytes`. A client that sends requests but never reads its
//!   responses fills its socket buffers, the writer waits, and the broker would otherwise hold
//!   every later response it computes; past this cap the reader stops reading that client's
//!   requests. (The writer always drains, so a single response larger than the cap still goes.)
//!
//! [`RequestQueue`] is the accounting (plain logic, unit tested); [`SharedRequestQueue`] wraps
//! it for the three tasks of a connection (reader, dispatcher, writer) on one shard thread.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::Notify;

/// The accounting of one connection's requests.
///
/// Invariants (asserted): `frames.len() <= in_flight <= in_flight_max`;
/// `queued_bytes` is the sum of the queued frames' lengths; `queued_bytes <= queued_max_bytes`
/// unless a single frame is queued.
#[derive(Debug)]
pub struct RequestQueue {
    frames: VecDeque<Bytes>,
    queued_bytes: usize,
    in_flight: usize,
    in_flight_max: usize,
    queued_max_bytes: usize,
    /// Bytes held by responses that are complete and not yet written (file ranges excluded:
    /// they are sent from the page cache and hold no memory of the broker's).
    unsent_response_bytes: usize,
    unsent_response_max_bytes: usize,
    /// The reader will queue nothing more (end of stream, a bad frame, or shutdown).
    input_closed: bool,
    /// The connection is over (the writer stopped): nobody dispatches or reads any more.
    aborted: bool,
}

impl RequestQueue {
    pub fn new(in_flight_max: usize, queued_max_bytes: usize) -> Self {
        assert!(in_flight_max >= 1, "a connection must serve a request");
        assert!(queued_max_bytes >= 1, "a connection must queue a request");
        RequestQueue {
            frames: VecDeque::with_capacity(in_flight_max),
            queued_bytes: 0,
            in_flight: 0,
            in_flight_max,
            queued_max_bytes,
            unsent_response_bytes: 0,
            unsent_response_max_bytes: usize::MAX,
            input_closed: false,
            aborted: false,
        }
    }

    /// Caps the bytes of unsent responses (unbounded unless set).
    pub fn with_unsent_response_max_bytes(mut self, max_bytes: usize) -> Self {
        assert!(max_bytes >= 1, "a connection must hold a response");
        self.unsent_response_max_bytes = max_bytes;
        self
    }

    /// A response holding `len_bytes` is complete and waits for the writer.
    pub fn response_ready(&mut self, len_bytes: usize) {
        self.unsent_response_bytes += len_bytes;
    }

    /// The writer wrote responses that held `len_bytes`.
    pub fn responses_sent(&mut self, len_bytes: usize) {
        assert!(
            len_bytes <= self.unsent_response_bytes,
            "{len_bytes} response bytes sent but {} were ready",
            self.unsent_response_bytes
        );
        self.unsent_response_bytes -= len_bytes;
    }

    #[cfg(test)]
    pub fn unsent_response_bytes(&self) -> usize {
        self.unsent_response_bytes
    }

    /// Whether a frame of `len_bytes` may be queued now.
    pub fn admits(&self, len_bytes: usize) -> bool {
        self.in_flight < self.in_flight_max
            && (self.frames.is_empty()
                || self.queued_bytes.saturating_add(len_bytes) <= self.queued_max_bytes)
    }

    /// Whether the reader may read more bytes from the socket: every budget has room.
    pub fn has_room(&self) -> bool {
        self.in_flight < self.in_flight_max
            && self.queued_bytes < self.queued_max_bytes
            && self.unsent_response_bytes < self.unsent_response_max_bytes
    }

    /// Queues `frame`; the caller has checked [`Self::admits`].
    pub fn push(&mut self, frame: Bytes) {
        assert!(
            self.admits(frame.len()),
            "frame of {} bytes queued past the budget",
            frame.len()
        );
        assert!(!self.input_closed, "frame queued after the input closed");
        self.queued_bytes += frame.len();
        self.in_flight += 1;
        self.frames.push_back(frame);
        self.check();
    }

    /// Takes the oldest frame for dispatch; it stays in flight until [`Self::answered`].
    pub fn pop(&mut self) -> Option<Bytes> {
        let frame = self.frames.pop_front()?;
        self.queued_bytes -= frame.len();
        self.check();
        Some(frame)
    }

    /// `count` dispatched requests are answered (written, or needing no response).
    pub fn answered(&mut self, count: usize) {
        let dispatched = self.in_flight - self.frames.len();
        assert!(
            count <= dispatched,
            "{count} requests answered but {dispatched} were dispatched"
        );
        self.in_flight -= count;
        self.check();
    }

    pub fn close_input(&mut self) {
        self.input_closed = true;
    }

    pub fn abort(&mut self) {
        self.aborted = true;
    }

    pub fn is_aborted(&self) -> bool {
        self.aborted
    }

    /// Nothing more will be dispatched: the connection is over, or its input ended and every
    /// frame was taken.
    pub fn is_drained(&self) -> bool {
        self.aborted || (self.input_closed && self.frames.is_empty())
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    #[cfg(test)]
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    fn check(&self) {
        debug_assert_eq!(
            self.queued_bytes,
            self.frames.iter().map(Bytes::len).sum::<usize>(),
            "queued bytes match the frames"
        );
        assert!(
            self.frames.len() <= self.in_flight,
            "queued frames are in flight"
        );
        assert!(
            self.in_flight <= self.in_flight_max,
            "in flight over its limit"
        );
        assert!(
            self.queued_bytes <= self.queued_max_bytes || self.frames.len() == 1,
            "queued bytes over their limit"
        );
    }
}

/// A [`RequestQueue`] shared by the tasks of one connection (all on the same shard thread), with
/// their wake-ups: the reader waits for room, the dispatcher for frames.
#[derive(Debug)]
pub struct SharedRequestQueue {
    queue: RefCell<RequestQueue>,
    /// When each queued frame was queued, in queue order (the request queue-time metric): one
    /// entry per frame in `queue`, so bounded by the same budget.
    queued_at: RefCell<VecDeque<Instant>>,
    /// Signalled when the budget frees up or the connection is aborted (the reader waits).
    room: Notify,
    /// Signalled when a frame is queued, the input closes or the connection is aborted (the
    /// dispatcher waits).
    frames: Notify,
}

impl SharedRequestQueue {
    pub fn from_queue(queue: RequestQueue) -> Self {
        SharedRequestQueue {
            queued_at: RefCell::new(VecDeque::with_capacity(queue.in_flight_max)),
            queue: RefCell::new(queue),
            room: Notify::new(),
            frames: Notify::new(),
        }
    }

    pub fn in_flight(&self) -> usize {
        self.queue.borrow().in_flight()
    }

    /// A completed response holding `len_bytes` waits for the writer.
    pub fn response_ready(&self, len_bytes: usize) {
        self.queue.borrow_mut().response_ready(len_bytes);
    }

    /// The writer wrote responses that held `len_bytes`: the reader may have room again.
    pub fn responses_sent(&self, len_bytes: usize) {
        if len_bytes > 0 {
            self.queue.borrow_mut().responses_sent(len_bytes);
            self.room.notify_one();
        }
    }

    /// Queues `frame` once the budget admits it. Returns false (and drops the frame) when the
    /// connection was aborted meanwhile.
    pub async fn push(&self, frame: Bytes) -> bool {
        loop {
            {
                let mut queue = self.queue.borrow_mut();
                if queue.is_aborted() {
                    return false;
                }
                if queue.admits(frame.len()) {
                    queue.push(frame);
                    self.queued_at.borrow_mut().push_back(Instant::now());
                    self.frames.notify_one();
                    return true;
                }
            }
            // One waiter per Notify: a wake-up that comes before this await is kept as a permit.
            self.room.notified().await;
        }
    }

    /// Waits until the reader may read more from the socket. Returns false when the connection
    /// was aborted.
    pub async fn wait_for_room(&self) -> bool {
        loop {
            {
                let queue = self.queue.borrow();
                if queue.is_aborted() {
                    return false;
                }
                if queue.has_room() {
                    return true;
                }
            }
            self.room.notified().await;
        }
    }

    /// The next frame in request order with when it was queued; `None` when nothing more will
    /// be dispatched.
    pub async fn next_frame(&self) -> Option<(Bytes, Instant)> {
        loop {
            {
                let mut queue = self.queue.borrow_mut();
                if queue.is_drained() {
                    return None;
                }
                if let Some(frame) = queue.pop() {
                    self.room.notify_one();
                    let queued_at = self
                        .queued_at
                        .borrow_mut()
                        .pop_front()
                        .expect("every queued frame has its queue time");
                    return Some((frame, queued_at));
                }
            }
            self.frames.notified().await;
        }
    }

    pub fn answered(&self, count: usize) {
        if count > 0 {
            self.queue.borrow_mut().answered(count);
            self.room.notify_one();
        }
    }

    /// The reader queues nothing more; the dispatcher finishes what is queued.
    pub fn close_input(&self) {
        self.queue.borrow_mut().close_input();
        self.frames.notify_one();
    }

    /// The connection is over: the reader and the dispatcher stop.
    pub fn abort(&self) {
        self.queue.borrow_mut().abort();
        self.frames.notify_one();
        self.room.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len_bytes: usize) -> Bytes {
        Bytes::from(vec![0u8; len_bytes])
    }

    #[test]
    fn the_count_limit_holds_until_requests_are_answered() {
        let mut queue = RequestQueue::new(2, 1000);
        queue.push(frame(10));
        queue.push(frame(10));
        assert!(!queue.has_room());
        assert!(!queue.admits(1));
        // Dispatching frees no count: the request is still in flight.
        assert_eq!(queue.pop().map(|f| f.len()), Some(10));
        assert!(!queue.admits(1));
        assert_eq!(queue.in_flight(), 2);
        queue.answered(1);
        assert!(queue.has_room());
        assert!(queue.admits(10));
        assert_eq!(queue.in_flight(), 1);
    }

    #[test]
    fn the_byte_limit_counts_queued_frames_only() {
        let mut queue = RequestQueue::new(10, 100);
        queue.push(frame(60));
        assert!(queue.has_room());
        assert!(!queue.admits(41), "60 + 41 is over 100");
        assert!(queue.admits(40));
        queue.push(frame(40));
        assert_eq!(queue.queued_bytes(), 100);
        assert!(!queue.has_room());
        // Dispatch frees bytes at once, before the requests are answered.
        queue.pop();
        assert_eq!(queue.queued_bytes(), 40);
        assert!(queue.has_room());
        assert!(queue.admits(60));
        assert!(!queue.admits(61));
    }

    #[test]
    fn a_frame_over_the_byte_budget_waits_for_an_empty_queue() {
        let mut queue = RequestQueue::new(10, 100);
        queue.push(frame(1));
        assert!(!queue.admits(500));
        queue.pop();
        assert!(queue.admits(500), "alone in an empty queue");
        queue.push(frame(500));
        assert!(!queue.has_room());
        assert!(!queue.admits(1));
        queue.pop();
        assert_eq!(queue.queued_bytes(), 0);
        assert!(queue.has_room());
    }

    #[test]
    fn unsent_responses_over_their_cap_stop_the_reader_until_written() {
        let mut queue = RequestQueue::new(10, 1000).with_unsent_response_max_bytes(100);
        queue.push(frame(10));
        queue.pop();
        queue.response_ready(60);
        assert!(queue.has_room());
        queue.push(frame(10));
        queue.pop();
        queue.response_ready(60);
        assert_eq!(queue.unsent_response_bytes(), 120);
        assert!(
            !queue.has_room(),
            "a client not reading its responses is not read either"
        );
        queue.responses_sent(60);
        queue.answered(1);
        assert!(queue.has_room());
    }

    #[test]
    #[should_panic(expected = "were ready")]
    fn sending_more_response_bytes_than_were_ready_is_refused() {
        let mut queue = RequestQueue::new(10, 1000);
        queue.response_ready(5);
        queue.responses_sent(6);
    }

    #[test]
    fn frames_come_out_in_the_order_they_went_in() {
        let mut queue = RequestQueue::new(10, 1000);
        for len in [3, 1, 2] {
            queue.push(frame(len));
        }
        let order: Vec<usize> = std::iter::from_fn(|| queue.pop())
            .map(|f| f.len())
            .collect();
        assert_eq!(order, [3, 1, 2]);
    }

    #[test]
    fn a_closed_input_drains_then_ends() {
        let mut queue = RequestQueue::new(10, 1000);
        queue.push(frame(5));
        queue.close_input();
        assert!(!queue.is_drained(), "a queued frame is still dispatched");
        queue.pop();
        assert!(queue.is_drained());
        let mut aborted = RequestQueue::new(10, 1000);
        aborted.push(frame(5));
        aborted.abort();
        assert!(
            aborted.is_drained(),
            "an aborted connection dispatches nothing more"
        );
    }

    #[test]
    #[should_panic(expected = "past the budget")]
    fn pushing_past_the_count_limit_is_refused() {
        let mut queue = RequestQueue::new(1, 1000);
        queue.push(frame(1));
        queue.push(frame(1));
    }

    #[test]
    #[should_panic(expected = "were dispatched")]
    fn answering_a_request_still_queued_is_refused() {
        let mut queue = RequestQueue::new(4, 1000);
        queue.push(frame(1));
        queue.answered(1);
    }

    /// The async wrapper: a reader blocked on a full budget resumes when the dispatcher takes a
    /// frame, and an aborted queue releases both sides.
    #[test]
    fn the_shared_queue_wakes_the_reader_and_the_dispatcher() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, async {
            let queue = std::rc::Rc::new(SharedRequestQueue::from_queue(RequestQueue::new(8, 10)));
            assert!(queue.push(frame(10)).await);
            let reader = {
                let queue = queue.clone();
                tokio::task::spawn_local(async move { queue.push(frame(10)).await })
            };
            tokio::task::yield_now().await;
            assert!(!reader.is_finished(), "the byte budget is full");
            assert_eq!(queue.next_frame().await.map(|(f, _)| f.len()), Some(10));
            assert!(reader.await.expect("reader task"), "room after a dispatch");
            let dispatcher = {
                let queue = queue.clone();
                tokio::task::spawn_local(async move {
                    let mut taken = 0;
                    while queue.next_frame().await.is_some() {
                        taken += 1;
                    }
                    taken
                })
            };
            tokio::task::yield_now().await;
            queue.close_input();
            assert_eq!(dispatcher.await.expect("dispatcher task"), 1);
            queue.answered(2);
            queue.abort();
            assert!(!queue.wait_for_room().await, "aborted");
            assert!(!queue.push(frame(1)).await, "aborted");
        });
    }
}
