//! Console output of a run: upstream's task lines, task logs and summaries, routed around
//! an optional indicatif progress bar so lines never tear it. Owns no state beyond the bar;
//! the dispatcher decides what to say.

use indicatif::{ProgressBar, ProgressStyle};

pub(crate) struct Console {
    enabled: bool,
    bar: Option<ProgressBar>,
}

impl Console {
    pub(crate) fn new(enabled: bool, progress: bool, total: usize) -> Self {
        let bar = (enabled && progress).then(|| {
            let bar = ProgressBar::new(u64::try_from(total).unwrap_or(u64::MAX));
            if let Ok(style) =
                ProgressStyle::with_template("{prefix:>8} [{bar:40}] {pos}/{len} {elapsed_precise}")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        Console { enabled, bar }
    }

    pub(crate) fn set_pool(&self, pool: &str) {
        if let Some(bar) = &self.bar {
            bar.set_prefix(pool.to_string());
        }
    }

    /// A line on stdout.
    pub(crate) fn line(&self, text: &str) {
        self.with_bar_hidden(|| println!("{text}"));
    }

    /// A line on stderr (failures and warnings, as upstream).
    pub(crate) fn error(&self, text: &str) {
        self.with_bar_hidden(|| eprintln!("{text}"));
    }

    /// Verbatim text on stdout (a task log, a summary table).
    pub(crate) fn block(&self, text: &str) {
        self.with_bar_hidden(|| {
            print!("{text}");
            if !text.ends_with('\n') {
                println!();
            }
        });
    }

    pub(crate) fn task_done(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    fn with_bar_hidden(&self, f: impl FnOnce()) {
        if !self.enabled {
            return;
        }
        match &self.bar {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }
}
