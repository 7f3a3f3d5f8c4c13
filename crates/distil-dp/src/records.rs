//! Labelled records: the private data the pipeline trains on, read from JSONL, CSV, plain
//! text or Debian `fortunes` files.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{DistilDpError, io};

/// One private record: its text and its labels (`(column, value)`, in column order), from
/// which its control code is made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The text.
    pub text: String,
    /// `(column, value)` pairs; empty for unlabelled data.
    pub labels: Vec<(String, String)>,
}

/// How a data file is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordFormat {
    /// By extension: `.jsonl`/`.ndjson` JSON lines, `.csv` CSV, a directory `fortunes`,
    /// anything else plain text.
    #[default]
    Auto,
    /// One JSON object per line with a string field `text`; the other fields are labels.
    Jsonl,
    /// A header row with a `text` column (Yue et al.'s `text,label1,label2`); the other
    /// columns are labels.
    Csv,
    /// One text per non-empty line, no labels.
    Text,
    /// Debian's `fortunes` files: entries separated by lines holding only `%`; the label
    /// `Category` is the file's name. The path may be one file or a directory of them (e.g.
    /// `/usr/share/games/fortunes`; `.dat` index files and subdirectories are skipped).
    Fortunes,
}

impl RecordFormat {
    /// The format `path` implies (for `Auto`), or `self`.
    pub fn resolve(self, path: &Path) -> Self {
        if self != Self::Auto {
            return self;
        }
        if path.is_dir() {
            return Self::Fortunes;
        }
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("jsonl" | "ndjson") => Self::Jsonl,
            Some("csv") => Self::Csv,
            _ => Self::Text,
        }
    }
}

/// Which label columns to keep.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LabelColumns {
    /// Every column or field except `text` (JSONL fields in sorted order, CSV columns in
    /// header order).
    #[default]
    All,
    /// Exactly these, in this order; a record lacking one is an error.
    Named(Vec<String>),
}

/// Reads the labelled records of `path`. Records with an empty text are skipped; a file
/// without any is an error, as are malformed lines (named by line or record number) and
/// missing label columns.
pub fn read_records(
    path: impl AsRef<Path>,
    format: RecordFormat,
    labels: &LabelColumns,
) -> Result<Vec<Record>, DistilDpError> {
    let path = path.as_ref();
    let format = format.resolve(path);
    let records = match format {
        RecordFormat::Jsonl => read_jsonl(path, labels)?,
        RecordFormat::Csv => read_csv(path, labels)?,
        RecordFormat::Text => read_text(path)?,
        RecordFormat::Fortunes => read_fortunes(path)?,
        RecordFormat::Auto => unreachable!("resolved above"),
    };
    if records.is_empty() {
        return Err(DistilDpError::EmptyData {
            path: path.to_path_buf(),
            detail: format!("no record with a non-empty text ({format:?})"),
        });
    }
    Ok(records)
}

fn data_err(path: &Path, line: usize, message: impl Into<String>) -> DistilDpError {
    DistilDpError::Data {
        path: path.to_path_buf(),
        line,
        message: message.into(),
    }
}

fn label_value(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn read_jsonl(path: &Path, labels: &LabelColumns) -> Result<Vec<Record>, DistilDpError> {
    let content = fs::read_to_string(path).map_err(io(path))?;
    let mut records = Vec::new();
    for (i, line) in content.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line)
            .map_err(|e| data_err(path, n, format!("malformed JSON: {e}")))?;
        let Value::Object(map) = value else {
            return Err(data_err(path, n, "not a JSON object"));
        };
        let text = match map.get("text") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(data_err(path, n, "field `text` is not a string")),
            None => return Err(data_err(path, n, "no field `text`")),
        };
        let columns: Vec<&String> = match labels {
            LabelColumns::All => map.keys().filter(|k| *k != "text").collect(),
            LabelColumns::Named(names) => names.iter().collect(),
        };
        let mut pairs = Vec::with_capacity(columns.len());
        for c in columns {
            let v = map
                .get(c)
                .ok_or_else(|| data_err(path, n, format!("no label field `{c}`")))?;
            let v = label_value(v).ok_or_else(|| {
                data_err(
                    path,
                    n,
                    format!("label `{c}` is not a string, number or boolean"),
                )
            })?;
            pairs.push((c.clone(), v));
        }
        if !text.trim().is_empty() {
            records.push(Record {
                text,
                labels: pairs,
            });
        }
    }
    Ok(records)
}

fn read_csv(path: &Path, labels: &LabelColumns) -> Result<Vec<Record>, DistilDpError> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| match e.into_kind() {
        csv::ErrorKind::Io(source) => io(path)(source),
        other => data_err(path, 1, format!("{other:?}")),
    })?;
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| data_err(path, 1, e.to_string()))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let Some(text_col) = headers.iter().position(|h| h == "text") else {
        return Err(data_err(
            path,
            1,
            format!("no `text` column (columns: {})", headers.join(", ")),
        ));
    };
    let label_cols: Vec<usize> = match labels {
        LabelColumns::All => (0..headers.len()).filter(|&i| i != text_col).collect(),
        LabelColumns::Named(names) => names
            .iter()
            .map(|name| {
                headers.iter().position(|h| h == name).ok_or_else(|| {
                    data_err(
                        path,
                        1,
                        format!("no label column `{name}` (columns: {})", headers.join(", ")),
                    )
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let mut records = Vec::new();
    for (i, row) in reader.records().enumerate() {
        // record i is on line i + 2 (after the header) unless fields span lines
        let row = row.map_err(|e| data_err(path, i + 2, e.to_string()))?;
        let text = row.get(text_col).unwrap_or_default().to_string();
        if text.trim().is_empty() {
            continue;
        }
        let labels = label_cols
            .iter()
            .map(|&c| {
                (
                    headers[c].clone(),
                    row.get(c).unwrap_or_default().trim().to_string(),
                )
            })
            .collect();
        records.push(Record { text, labels });
    }
    Ok(records)
}

fn read_text(path: &Path) -> Result<Vec<Record>, DistilDpError> {
    Ok(fs::read_to_string(path)
        .map_err(io(path))?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Record {
            text: l.to_string(),
            labels: Vec::new(),
        })
        .collect())
}

/// The fortune files of `path` (itself, or the plain files of a directory, sorted by name).
fn fortune_files(path: &Path) -> Result<Vec<PathBuf>, DistilDpError> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = fs::read_dir(path)
        .map_err(io(path))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && !matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("dat" | "u8" | "gz")
                )
        })
        .collect();
    files.sort();
    Ok(files)
}

fn read_fortunes(path: &Path) -> Result<Vec<Record>, DistilDpError> {
    let mut records = Vec::new();
    for file in fortune_files(path)? {
        let bytes = fs::read(&file).map_err(io(&file))?;
        let content = String::from_utf8_lossy(&bytes);
        let category = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("fortunes")
            .to_string();
        let mut entry = String::new();
        let mut flush = |entry: &mut String| {
            let text = entry.trim_end().to_string();
            entry.clear();
            if !text.trim().is_empty() {
                records.push(Record {
                    text,
                    labels: vec![("Category".to_string(), category.clone())],
                });
            }
        };
        for line in content.lines() {
            if line.trim_end() == "%" {
                flush(&mut entry);
            } else {
                entry.push_str(line);
                entry.push('\n');
            }
        }
        flush(&mut entry);
    }
    Ok(records)
}
