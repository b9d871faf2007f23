//! Progress of a long run (`gtseg job`, `gtseg review`) for a person: a bar on stderr when
//! it is a terminal (images done, failed, and the rate), plain log lines every few seconds
//! when it is not.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a line is logged when stderr is not a terminal.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// Images done and failed out of a total.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    what: &'static str,
    total: u64,
    done: u64,
    failed: u64,
    started: Instant,
    logged: Instant,
}

impl Progress {
    /// Progress over `total` images, named `what` (e.g. "consolidating").
    pub fn new(what: &'static str, total: u64) -> Self {
        let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{prefix} [{bar:32}] {pos}/{len} images, {msg} ({per_sec}, {eta} left)",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(what);
            bar.set_message("0 failed");
            bar
        });
        let now = Instant::now();
        Self {
            bar,
            what,
            total,
            done: 0,
            failed: 0,
            started: now,
            logged: now,
        }
    }

    /// `images` more done, of which `failed` failed.
    pub fn add(&mut self, images: u64, failed: u64) {
        self.done += images;
        self.failed += failed;
        match &self.bar {
            Some(bar) => {
                bar.set_message(format!("{} failed", self.failed));
                bar.inc(images);
            }
            None if self.logged.elapsed() >= LOG_EVERY => {
                self.logged = Instant::now();
                tracing::info!(
                    done = self.done,
                    failed = self.failed,
                    total = self.total,
                    images_per_second = format!("{:.1}", self.rate()),
                    "{}",
                    self.what
                );
            }
            None => {}
        }
    }

    /// Images per second so far.
    pub fn rate(&self) -> f64 {
        self.done as f64 / self.started.elapsed().as_secs_f64().max(1e-9)
    }

    /// The time since the start.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Clears the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
