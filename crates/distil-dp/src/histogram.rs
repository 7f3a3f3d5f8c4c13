//! The control codes and how many synthetic samples each gets: the one stage before the
//! teacher that reads the private labels, released once and kept in the run directory.

use std::collections::BTreeSet;

use dp_accounting::PrivacyLedger;
use dp_optim::DpRng;
use serde::{Deserialize, Serialize};
use synth_gen::SampleAllocation;

use crate::config::PipelineConfig;
use crate::error::DistilDpError;
use crate::records::Record;
use crate::run_dir::{RunDir, write_atomic};

/// Labels of one control code, `(column, value)` in column order.
pub type Code = Vec<(String, String)>;

/// What the label stage released: the codes, the samples per code, and the ledger of the
/// release (empty unless the allocation read the private counts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelRelease {
    /// The control codes.
    pub codes: Vec<Code>,
    /// Synthetic samples per code (summing to the requested total).
    pub samples: Vec<usize>,
    /// How they were allocated.
    pub allocation: SampleAllocation,
    /// The privacy ledger after the release (its `label-histogram` entry when the DP
    /// histogram was used).
    pub ledger: PrivacyLedger,
    /// Whether the code list came from the private data (no public domain was given): a
    /// disclosure of which label combinations occur, outside the DP guarantee.
    pub codes_from_private_data: bool,
}

/// The codes: every combination of the public label domains (the configured ones, or the
/// embedded corpus's), else the distinct combinations of the training records.
fn codes(config: &PipelineConfig, train: &[Record]) -> (Vec<Code>, bool) {
    let domain: Vec<(String, Vec<String>)> = if config.data.path.is_none() {
        crate::embedded::label_values()
    } else {
        let columns: Vec<String> = train
            .first()
            .map(|r| r.labels.iter().map(|(k, _)| k.clone()).collect())
            .unwrap_or_default();
        columns
            .into_iter()
            .filter_map(|c| config.data.label_values.get(&c).map(|v| (c, v.clone())))
            .collect()
    };
    let columns = train.first().map_or(0, |r| r.labels.len());
    if !domain.is_empty() && domain.len() == columns {
        let mut all: Vec<Code> = vec![Vec::new()];
        for (column, values) in &domain {
            all = all
                .into_iter()
                .flat_map(|prefix| {
                    values.iter().map(move |v| {
                        let mut code = prefix.clone();
                        code.push((column.clone(), v.clone()));
                        code
                    })
                })
                .collect();
        }
        return (all, false);
    }
    let distinct: BTreeSet<Code> = train.iter().map(|r| r.labels.clone()).collect();
    (distinct.into_iter().collect(), true)
}

/// The release saved in the run directory by an earlier run, if there is one.
pub fn load_release(dir: &RunDir) -> Result<Option<LabelRelease>, DistilDpError> {
    let path = dir.histogram_path();
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|source| DistilDpError::Io {
        path: path.clone(),
        source,
    })?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| DistilDpError::Data {
            path,
            line: e.line(),
            message: e.to_string(),
        })
}

/// Releases the samples per code from the training records (through the DP histogram by
/// default) and saves the release in the run directory; a rerun loads it instead, so the
/// private counts are released (and accounted) once. `total` is the number of synthetic
/// samples.
pub fn release_or_load(
    config: &PipelineConfig,
    dir: &RunDir,
    train: &[Record],
    total: usize,
    rng: &mut DpRng,
) -> Result<LabelRelease, DistilDpError> {
    if let Some(release) = load_release(dir)? {
        return Ok(release);
    }
    let path = dir.histogram_path();
    let (codes, from_private) = codes(config, train);
    let counts: Vec<u64> = codes
        .iter()
        .map(|c| train.iter().filter(|r| &r.labels == c).count() as u64)
        .collect();
    let mut ledger = PrivacyLedger::new();
    let allocation = config.generation.allocation.clone();
    let samples = allocation
        .allocate(total, &counts, rng, &mut ledger)
        .map_err(|e| DistilDpError::Config {
            message: format!("generation.allocation: {e}"),
        })?;
    let release = LabelRelease {
        codes,
        samples,
        allocation,
        ledger,
        codes_from_private_data: from_private,
    };
    let json = serde_json::to_string_pretty(&release).expect("a release serialises");
    write_atomic(&path, json.as_bytes())?;
    Ok(release)
}
