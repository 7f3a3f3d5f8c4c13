//! Reading texts from data files: plain text (one text per line), JSONL and CSV with a `text`
//! column.

use std::fs;
use std::path::Path;

use crate::error::DistilDpError;

/// A data file's layout, chosen by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataFormat {
    /// `.jsonl` / `.ndjson`: one JSON object per line with a string field `text`.
    JsonLines,
    /// `.csv`: a header row with a `text` column (Yue et al.'s `text,label1,label2` layout).
    Csv,
    /// Anything else: one text per non-empty line.
    PlainText,
}

impl DataFormat {
    /// The format implied by `path`'s extension.
    pub fn of(path: &Path) -> Self {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
        {
            Some(e) if e == "jsonl" || e == "ndjson" => Self::JsonLines,
            Some(e) if e == "csv" => Self::Csv,
            _ => Self::PlainText,
        }
    }
}

/// Reads the texts of a data file (format by extension, see [`DataFormat`]). Empty texts are
/// skipped; a file without any text is an error.
pub fn read_texts(path: impl AsRef<Path>) -> Result<Vec<String>, DistilDpError> {
    let path = path.as_ref();
    let io = |source| DistilDpError::Io {
        path: path.to_path_buf(),
        source,
    };
    let data_err = |line: usize, message: String| DistilDpError::Data {
        path: path.to_path_buf(),
        line,
        message,
    };
    let format = DataFormat::of(path);
    let texts: Vec<String> = match format {
        DataFormat::PlainText => fs::read_to_string(path)
            .map_err(io)?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect(),
        DataFormat::JsonLines => {
            let content = fs::read_to_string(path).map_err(io)?;
            let mut texts = Vec::new();
            for (i, line) in content.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let value: serde_json::Value = serde_json::from_str(line)
                    .map_err(|e| data_err(i + 1, format!("malformed JSON: {e}")))?;
                match value.get("text") {
                    Some(serde_json::Value::String(s)) => texts.push(s.clone()),
                    Some(_) => return Err(data_err(i + 1, "field `text` is not a string".into())),
                    None => return Err(data_err(i + 1, "no field `text`".into())),
                }
            }
            texts.retain(|t| !t.trim().is_empty());
            texts
        }
        DataFormat::Csv => {
            let mut reader = csv::Reader::from_path(path).map_err(|e| match e.into_kind() {
                csv::ErrorKind::Io(source) => io(source),
                other => data_err(1, format!("{other:?}")),
            })?;
            let headers = reader
                .headers()
                .map_err(|e| data_err(1, e.to_string()))?
                .clone();
            let Some(column) = headers.iter().position(|h| h.trim() == "text") else {
                return Err(data_err(
                    1,
                    format!(
                        "no `text` column (columns: {})",
                        headers.iter().collect::<Vec<_>>().join(", ")
                    ),
                ));
            };
            let mut texts = Vec::new();
            for (i, record) in reader.records().enumerate() {
                let record = record.map_err(|e| data_err(i + 2, e.to_string()))?;
                if let Some(t) = record.get(column)
                    && !t.trim().is_empty()
                {
                    texts.push(t.to_string());
                }
            }
            texts
        }
    };
    if texts.is_empty() {
        return Err(DistilDpError::EmptyData {
            path: path.to_path_buf(),
            detail: match format {
                DataFormat::PlainText => "every line is empty".into(),
                _ => "no non-empty `text` value".into(),
            },
        });
    }
    Ok(texts)
}
