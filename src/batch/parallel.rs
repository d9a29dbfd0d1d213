//! The parallel analysis of a run's dumps: each worker produces its own result, and
//! results are collected in input order, so the output is the same at any `-j`.

use super::names::file_name;
use crate::analysis::{analyze_input, AnalyzeOptions};
use crate::model::DumpReport;
use rayon::prelude::*;
use std::path::PathBuf;

/// The outcome of one input.
pub enum Outcome {
    Ok(Box<DumpReport>),
    Failed(String),
}

/// Analyses every input on the current rayon pool; results are in input order.
/// With `progress`, a bar on standard error shows dumps done and the dump being read.
pub fn analyze_all(inputs: &[PathBuf], options: &AnalyzeOptions, progress: bool) -> Vec<Outcome> {
    let bar = progress.then(|| {
        let bar = indicatif::ProgressBar::new(inputs.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} dumps  {wide_msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let outcomes = inputs
        .par_iter()
        .map(|p| {
            if let Some(bar) = &bar {
                // A file name can hold escape sequences; the terminal must not see them.
                bar.set_message(crate::text::one_line(&file_name(p)).into_owned());
            }
            // A bug must cost one input, not the batch: a panic becomes that input's
            // error (scripts already contain their own; this covers the rest).
            let run = std::panic::AssertUnwindSafe(|| analyze_input(p, options));
            let outcome = match std::panic::catch_unwind(run) {
                Ok(Ok(r)) => Outcome::Ok(Box::new(r)),
                Ok(Err(e)) => Outcome::Failed(e.to_string()),
                Err(_) => Outcome::Failed(format!(
                    "{}: leakdiag stopped on an internal error while reading this dump (please report it with the dump)",
                    p.display()
                )),
            };
            if let Some(bar) = &bar {
                bar.inc(1);
            }
            outcome
        })
        .collect();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    outcomes
}
