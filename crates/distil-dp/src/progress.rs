//! What a run shows while it works: progress bars with rates and ETA on stderr (default),
//! nothing (`quiet`), or one JSON object per event on stdout (`json`); and in every mode the
//! run directory's `metrics.jsonl`. Nothing logged ever holds record text.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::error::{DistilDpError, io};

/// One training step as `metrics.jsonl` records it (and the progress bar shows it): the
/// DP-SGD trainings report counts and, on checkpoint steps, ε and σ (never a loss, time or
/// batch size: those depend on the private sample); the trainings on public or synthetic
/// data also report their batch's loss and the elapsed seconds. Absent fields are left out
/// of the JSON line.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct StepLine {
    /// Steps taken so far (all calls).
    pub steps: u64,
    /// Steps planned.
    pub planned_steps: u64,
    /// Data-parallel workers (DP-SGD).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// Whether a checkpoint was written after this step (DP-SGD: only `Some(true)`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<bool>,
    /// ε spent so far (DP-SGD checkpoint steps).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epsilon: Option<f64>,
    /// σ (DP-SGD checkpoint steps).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noise_multiplier: Option<f64>,
    /// The batch's loss (public or synthetic data only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
    /// Seconds since the call started (public or synthetic data only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
}

impl StepLine {
    /// The JSON object of `metrics.jsonl`.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("a step line serialises")
    }
}

/// How a run reports progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputMode {
    /// Progress bars with rates and ETA on stderr, the results on stdout.
    #[default]
    Bars,
    /// Errors and the final results only.
    Quiet,
    /// One JSON object per event on stdout (the same lines as `metrics.jsonl`).
    Json,
}

/// Writes events to `metrics.jsonl` and shows them in the chosen [`OutputMode`].
#[derive(Debug)]
pub struct Reporter {
    mode: OutputMode,
    metrics: Option<File>,
    bar: Option<Bar>,
}

#[derive(Debug)]
struct Bar {
    stage: String,
    started: Instant,
    first: u64,
    drawn: Instant,
}

impl Reporter {
    /// A reporter appending to `metrics` (created if needed).
    pub fn new(mode: OutputMode, metrics: &Path) -> Result<Self, DistilDpError> {
        // a line cut short by a kill is ended, so that the next event starts a line of its own
        let cut = std::fs::read(metrics).is_ok_and(|b| b.last().is_some_and(|&c| c != b'\n'));
        let mut options = OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(metrics).map_err(io(metrics))?;
        if cut {
            writeln!(file).map_err(io(metrics))?;
        }
        Ok(Self {
            mode,
            metrics: Some(file),
            bar: None,
        })
    }

    /// A reporter that only shows (no metrics file): for tests and one-off commands.
    pub fn detached(mode: OutputMode) -> Self {
        Self {
            mode,
            metrics: None,
            bar: None,
        }
    }

    /// The mode.
    pub fn mode(&self) -> OutputMode {
        self.mode
    }

    /// Records one event of `stage` (`fields` an object) in the metrics file and shows it
    /// in JSON mode.
    pub fn event(&mut self, stage: &str, fields: Value) {
        let mut line = serde_json::json!({ "stage": stage });
        if let (Some(obj), Value::Object(extra)) = (line.as_object_mut(), fields) {
            obj.extend(extra);
        }
        let text = line.to_string();
        if let Some(f) = &mut self.metrics {
            // a metrics line lost to a full disk must not stop a private training
            let _ = writeln!(f, "{text}");
        }
        if self.mode == OutputMode::Json {
            println!("{text}");
        }
    }

    /// Shows `done` of `total` steps of `stage` (bars mode), at most ~5 times a second.
    pub fn progress(&mut self, stage: &str, done: u64, total: u64, extra: &str) {
        if self.mode != OutputMode::Bars {
            return;
        }
        let now = Instant::now();
        let bar = match &mut self.bar {
            Some(b) if b.stage == stage => b,
            _ => {
                self.finish();
                self.bar = Some(Bar {
                    stage: stage.to_string(),
                    started: now,
                    first: done.saturating_sub(1),
                    drawn: now - Duration::from_secs(1),
                });
                self.bar.as_mut().expect("just set")
            }
        };
        if done < total && now - bar.drawn < Duration::from_millis(200) {
            return;
        }
        bar.drawn = now;
        let elapsed = (now - bar.started).as_secs_f64();
        let rate = (done - bar.first.min(done)) as f64 / elapsed.max(1e-9);
        let eta = if rate > 0.0 && elapsed > 0.05 {
            format_seconds((total.saturating_sub(done)) as f64 / rate)
        } else {
            "?".into()
        };
        let width = 30;
        let filled = (done as f64 / total.max(1) as f64 * width as f64).round() as usize;
        let rate = if elapsed > 0.05 {
            format!("{rate:.2}/s")
        } else {
            "?/s".into()
        };
        eprint!(
            "\r{:<14} [{}{}] {done}/{total} {rate} ETA {eta} {extra}   ",
            stage,
            "#".repeat(filled.min(width)),
            " ".repeat(width - filled.min(width)),
        );
        if done >= total {
            self.finish();
        }
    }

    /// Ends the current bar's line.
    pub fn finish(&mut self) {
        if self.bar.take().is_some() {
            eprintln!();
        }
    }

    /// A warning or disclosure that every reader must see: one line on stderr in every mode
    /// (quiet included), and a `warning` event in the metrics (and on stdout in JSON mode).
    pub fn warn(&mut self, stage: &str, message: &str) {
        self.finish();
        eprintln!("[{stage}] {message}");
        self.event(
            stage,
            serde_json::json!({ "event": "warning", "warning": message }),
        );
    }

    /// A message for people (stderr in bars mode; an event in JSON mode; nothing if quiet).
    pub fn note(&mut self, stage: &str, message: &str) {
        match self.mode {
            OutputMode::Bars => {
                self.finish();
                eprintln!("[{stage}] {message}");
            }
            OutputMode::Json => self.event(stage, serde_json::json!({ "note": message })),
            OutputMode::Quiet => {}
        }
    }
}

/// `h:mm:ss` or `m:ss`.
pub fn format_seconds(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_cut_by_a_kill_does_not_swallow_the_next_event() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        std::fs::write(&path, "{\"stage\":\"a\"}\n{\"stage\":\"b\",\"ste").unwrap();
        let mut r = Reporter::new(OutputMode::Quiet, &path).unwrap();
        r.event("c", serde_json::json!({ "steps": 1 }));
        let text = std::fs::read_to_string(&path).unwrap();
        let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        assert_eq!(last["stage"], "c");
        assert_eq!(last["steps"], 1);
    }

    #[test]
    fn durations_read_as_clock_times() {
        assert_eq!(format_seconds(59.4), "0:59");
        assert_eq!(format_seconds(61.0), "1:01");
        assert_eq!(format_seconds(3725.0), "1:02:05");
    }
}
