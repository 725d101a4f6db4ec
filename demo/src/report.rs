//! One line per step: its name, what happened, how long it took; and the steps skipped, with why.

use std::future::Future;
use std::io::Write as _;
use std::time::Instant;

/// Counts and prints the steps.
#[derive(Debug)]
pub struct Report {
    started: Instant,
    /// Steps that ran and succeeded.
    pub ok: usize,
    /// Steps skipped.
    pub skipped: usize,
}

impl Default for Report {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            ok: 0,
            skipped: 0,
        }
    }
}

fn line(text: &str) {
    if crate::cleanup::stopping() {
        return;
    }
    // Flushed at once: a test reading the output, or a person watching, sees each step as it ends.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

impl Report {
    /// Runs one step; prints `name  ok  summary (N ms)` or `name  FAILED  why`.
    pub async fn step<T>(
        &mut self,
        name: &str,
        step: impl Future<Output = Result<(T, String), String>>,
    ) -> Result<T, String> {
        let start = Instant::now();
        match step.await {
            Ok((value, summary)) => {
                let ms = start.elapsed().as_millis();
                line(&format!("{name:<11} ok       {summary} ({ms} ms)"));
                self.ok += 1;
                Ok(value)
            }
            Err(why) => {
                line(&format!("{name:<11} FAILED   {why}"));
                Err(format!("step {name} failed"))
            }
        }
    }

    /// Prints `name  skipped  why`.
    pub fn skip(&mut self, name: &str, why: &str) {
        line(&format!("{name:<11} skipped  {why}"));
        self.skipped += 1;
    }

    /// Prints the closing line.
    pub fn finish(&self) {
        let secs = self.started.elapsed().as_secs_f64();
        line(&format!(
            "demo        done     {} steps ok, {} skipped, in {secs:.1} s; everything it started is stopped and removed",
            self.ok, self.skipped
        ));
    }

    /// Prints a plain note (not a step).
    pub fn note(&self, text: &str) {
        line(text);
    }
}
