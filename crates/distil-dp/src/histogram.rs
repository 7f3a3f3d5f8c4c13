//! The control codes and how many synthetic samples each gets: the one stage before the
//! teacher that reads the private labels, released once and kept in the run directory.

use std::collections::BTreeSet;

use crate::allocation::SampleAllocation;
use dp_accounting::PrivacyLedger;
use dp_optim::DpRng;
use serde::{Deserialize, Serialize};

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

/// The control codes of a run, and whether they were read from the private data.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlCodes {
    /// The codes, in order.
    pub codes: Vec<Code>,
    /// Read from the private training split (no public domain was configured).
    pub from_private_data: bool,
    /// Refusable cases accepted because the user named the label columns: what to warn of.
    pub warning: Option<String>,
}

/// The most distinct codes per record that codes read from the private data may have
/// unless the label columns are named explicitly: at most one code per 20 records.
pub const RECORDS_PER_CODE: usize = 20;

/// The codes: every combination of the public label domains (the configured ones, or the
/// embedded corpus's), else the distinct combinations of the training records.
///
/// Codes read from the private data are refused, before anything is released, when they
/// could identify records: more distinct codes than N/20 (e.g. an `id` column taken as a
/// label because `data.label_columns` was left empty) — unless the user named the label
/// columns, in which case they are accepted with a warning.
pub fn control_codes(
    config: &PipelineConfig,
    train: &[Record],
) -> Result<ControlCodes, DistilDpError> {
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
        return Ok(ControlCodes {
            codes: all,
            from_private_data: false,
            warning: None,
        });
    }
    let distinct: BTreeSet<Code> = train.iter().map(|r| r.labels.clone()).collect();
    let n = train.len();
    let mut warning = None;
    if distinct.len() > 1 && distinct.len() * RECORDS_PER_CODE > n {
        // the column with the most distinct values, to name it
        let widest = (0..columns)
            .map(|c| {
                let values: BTreeSet<&str> = train.iter().map(|r| r.labels[c].1.as_str()).collect();
                (values.len(), r_name(train, c))
            })
            .max()
            .map(|(count, name)| format!("`{name}` has {count} distinct values"))
            .unwrap_or_default();
        let detail = format!(
            "{} distinct control codes for {n} training records ({widest}): codes this fine can identify records, and the code list (read from the private data) is released outside the DP guarantee",
            distinct.len()
        );
        if config.data.label_columns.is_empty() {
            return Err(DistilDpError::InvalidArgument {
                field: "data.label_columns",
                value: format!("(unset: every column but `text`) — {detail}"),
                expected: "the label columns to use (e.g. --set data.label_columns='[\"category\"]'), with at most one distinct code per 20 training records, or public domains in data.label_values",
            });
        }
        warning = Some(format!("WARNING: {detail}."));
    }
    Ok(ControlCodes {
        codes: distinct.into_iter().collect(),
        from_private_data: true,
        warning,
    })
}

fn r_name(train: &[Record], column: usize) -> String {
    train
        .first()
        .map(|r| r.labels[column].0.clone())
        .unwrap_or_default()
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
    codes: &ControlCodes,
    total: usize,
    rng: &mut DpRng,
) -> Result<LabelRelease, DistilDpError> {
    if let Some(release) = load_release(dir)? {
        return Ok(release);
    }
    let path = dir.histogram_path();
    let from_private = codes.from_private_data;
    let codes = codes.codes.clone();
    let counts: Vec<u64> = codes
        .iter()
        .map(|c| train.iter().filter(|r| &r.labels == c).count() as u64)
        .collect();
    let mut ledger = PrivacyLedger::new();
    let allocation = config.generation.allocation.clone();
    let samples = allocation.allocate(total, &counts, rng, &mut ledger)?;
    if ledger != allocation.planned_ledger()? {
        // the teacher's σ was calibrated after the planned ledger: never continue past a
        // release that spent something else (nothing of it is saved or returned)
        return Err(DistilDpError::Config {
            message: "the label release recorded another ledger than planned".into(),
        });
    }
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
