//! Live lines on a terminal: one per running step, with a spinner and its elapsed time, or a
//! bar of the bytes sent while a host receives files. Finished steps are printed above them as
//! the same plain lines a log gets, and the live lines disappear.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

const RUNNING: &str = "    {prefix} ... {spinner} {elapsed}";
const SENDING: &str = "    {prefix} ... [{bar:16}] {bytes}/{total_bytes} {elapsed} {wide_msg}";
const TICK: Duration = Duration::from_millis(120);

fn style(template: &str) -> ProgressStyle {
    // The templates are constants that a test parses; a spinner without a template is the
    // harmless fallback should one ever be wrong.
    ProgressStyle::with_template(template)
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

pub(super) struct Live {
    bars: MultiProgress,
    /// The running step of each host (`""` for steps of no host).
    running: Mutex<BTreeMap<String, ProgressBar>>,
}

impl Live {
    pub(super) fn new() -> Live {
        let bars = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        crate::term::attach(&bars);
        Live {
            bars,
            running: Mutex::new(BTreeMap::new()),
        }
    }

    pub(super) fn println(&self, line: &str) {
        let _ = self.bars.println(line);
    }

    pub(super) fn start(&self, host: Option<&str>, step: &str) {
        let Ok(mut running) = self.running.lock() else {
            return;
        };
        let key = host.unwrap_or_default().to_string();
        if let Some(old) = running.remove(&key) {
            self.remove(&old);
        }
        let prefix = match host {
            Some(h) => format!("[{h}] {step}"),
            None => step.to_string(),
        };
        let bar = self.bars.add(
            ProgressBar::new_spinner()
                .with_style(style(RUNNING))
                .with_prefix(prefix),
        );
        bar.enable_steady_tick(TICK);
        running.insert(key, bar);
    }

    pub(super) fn progress(&self, host: Option<&str>, item: &str, done: u64, total: u64) {
        let Ok(running) = self.running.lock() else {
            return;
        };
        let Some(bar) = running.get(host.unwrap_or_default()) else {
            return;
        };
        if bar.length() != Some(total) {
            bar.set_style(style(SENDING));
            bar.set_length(total);
        }
        if bar.message() != item {
            bar.set_message(item.to_string());
        }
        bar.set_position(done);
    }

    /// The step of `host` ended; its line is printed by the caller.
    pub(super) fn finish(&self, host: Option<&str>) {
        let Ok(mut running) = self.running.lock() else {
            return;
        };
        if let Some(bar) = running.remove(host.unwrap_or_default()) {
            self.remove(&bar);
        }
    }

    /// Removes every live line: a new phase starts, or the run ends (maybe in an error).
    pub(super) fn clear(&self) {
        let Ok(mut running) = self.running.lock() else {
            return;
        };
        for (_, bar) in std::mem::take(&mut *running) {
            self.remove(&bar);
        }
    }

    fn remove(&self, bar: &ProgressBar) {
        bar.finish_and_clear();
        self.bars.remove(bar);
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.clear();
        crate::term::detach();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse() {
        for t in [RUNNING, SENDING] {
            assert!(ProgressStyle::with_template(t).is_ok(), "{t}");
        }
    }

    #[test]
    fn a_hidden_live_view_tracks_running_steps() {
        let live = Live {
            bars: MultiProgress::with_draw_target(ProgressDrawTarget::hidden()),
            running: Mutex::new(BTreeMap::new()),
        };
        live.start(Some("cp-1"), "ssh");
        live.start(Some("w-1"), "ssh");
        live.start(Some("cp-1"), "gather");
        live.progress(Some("w-1"), "/usr/local/bin/kubelet", 5, 10);
        assert_eq!(live.running.lock().unwrap().len(), 2);
        let w1 = live.running.lock().unwrap()["w-1"].clone();
        assert_eq!((w1.position(), w1.length()), (5, Some(10)));
        live.finish(Some("cp-1"));
        live.finish(Some("nobody"));
        assert_eq!(live.running.lock().unwrap().len(), 1);
        live.clear();
        assert!(live.running.lock().unwrap().is_empty());
    }
}
