//! The progress bar shown while a benchmark runs (on stderr; hidden when stderr is not a
//! terminal or when disabled).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;

/// How often the bar is redrawn.
const REFRESH_MS: u64 = 200;

/// Counters the workload tasks bump and the bar reads.
#[derive(Debug, Default)]
pub struct Counters {
    pub messages: AtomicU64,
    pub bytes: AtomicU64,
    pub errors: AtomicU64,
}

impl Counters {
    pub fn add(&self, messages: u64, bytes: u64) {
        self.messages.fetch_add(messages, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn messages(&self) -> u64 {
        self.messages.load(Ordering::Relaxed)
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }
}

pub struct Progress {
    bar: ProgressBar,
    ticker: JoinHandle<()>,
}

impl Progress {
    /// A bar over `total` messages, or over `duration` when there is no message count.
    pub fn start(
        label: &str,
        total: Option<u64>,
        duration: Option<Duration>,
        counters: Arc<Counters>,
        visible: bool,
    ) -> Progress {
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let by_time = total.is_none();
        let length = total.unwrap_or_else(|| {
            duration.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        });
        let bar = ProgressBar::with_draw_target(Some(length), target);
        let template = if by_time {
            "{prefix} [{elapsed_precise}] {wide_bar} {msg}"
        } else {
            "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} msgs {msg}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.set_prefix(label.to_string());
        let started = Instant::now();
        let ticker_bar = bar.clone();
        let ticker = tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_millis(REFRESH_MS));
            loop {
                interval.tick().await;
                let messages = counters.messages();
                let seconds = started.elapsed().as_secs_f64().max(1e-3);
                if by_time {
                    ticker_bar.set_position(
                        u64::try_from(started.elapsed().as_millis())
                            .unwrap_or(u64::MAX)
                            .min(length),
                    );
                    ticker_bar.set_message(format!(
                        "{messages} msgs, {:.0} msg/s",
                        messages as f64 / seconds
                    ));
                } else {
                    ticker_bar.set_position(messages.min(length));
                    ticker_bar.set_message(format!("{:.0} msg/s", messages as f64 / seconds));
                }
            }
        });
        Progress { bar, ticker }
    }

    pub fn finish(self) {
        self.ticker.abort();
        self.bar.finish_and_clear();
    }
}
