//! Streamed JSONL output that survives interruption.

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::drops::{DropEntry, DropReason, Drops, count, drop_log, read_log};
use crate::error::SynthGenError;
use crate::lines::complete_lines;

/// One synthetic sample: its index in the run, its text and its control-code labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Position in the run (sample `i` is generated from stream `i` of the seed).
    pub index: u64,
    /// The generated text (new tokens only, without the prompt).
    pub text: String,
    /// `(column, value)` labels of its control code.
    pub labels: Vec<(String, String)>,
}

/// What an opened output file already holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    /// The first sample index not yet written (0 for a new file).
    pub next_index: u64,
    /// Samples already in the file.
    pub written: u64,
}

/// A JSONL file written one line per kept sample and flushed as it goes: `{"index": i,
/// "text": ..., "<label>": ...}`. Reopening a file resumes it: a last line cut short by a kill
/// is removed, and generation continues after the highest index written (samples after it
/// that were filtered out are simply generated again, identically, from their own streams).
/// Empty and whitespace-only generations (prompt only) are dropped; with `dedup`, so are
/// exact repeats of a text already in the file. Every drop is appended, with its
/// [`DropReason`], to the file's [`drop_log`](crate::drop_log) (`<file>.dropped`, flushed),
/// so [`JsonlSink::dropped`] and [`Drops::read`] count them across interruptions.
#[derive(Debug)]
pub struct JsonlSink {
    file: File,
    path: PathBuf,
    dedup: Option<HashSet<String>>,
    written: u64,
    drop_file: File,
    drop_path: PathBuf,
    /// The dropped sample indices, each with its latest reason.
    dropped: BTreeMap<u64, DropReason>,
}

/// An I/O error at `path` whose cause is `source` (the error, kept, or a message).
pub(crate) fn io(
    path: &Path,
    source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> SynthGenError {
    SynthGenError::Io {
        path: path.to_path_buf(),
        source: source.into(),
    }
}

/// A line written by [`JsonlSink`]: its sample index and (when it has one) its text; the
/// error says what is wrong with it, without the file and line.
pub(crate) fn parse_line(line: &str) -> Result<(u64, Option<String>), String> {
    let value: Value = serde_json::from_str(line)
        .map_err(|e| format!("not a sample written by synth-gen ({e})"))?;
    let index = value["index"]
        .as_u64()
        .ok_or_else(|| "no integer \"index\" field".to_string())?;
    Ok((index, value["text"].as_str().map(str::to_string)))
}

impl JsonlSink {
    /// Opens (creating if needed) `path` and its drop log, and reports where to resume.
    pub fn open(path: impl AsRef<Path>, dedup: bool) -> Result<(Self, Resume), SynthGenError> {
        let path = path.as_ref().to_path_buf();
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        let mut seen = HashSet::new();
        let mut kept = HashSet::new();
        let mut next_index = 0u64;
        let mut written = 0u64;
        let complete = complete_lines(BufReader::new(&mut file), &path, |line| {
            let (index, text) = parse_line(line)?;
            if let Some(text) = text {
                seen.insert(text);
            }
            next_index = next_index.max(index + 1);
            kept.insert(index);
            written += 1;
            Ok(())
        })?;
        file.set_len(complete).map_err(|e| io(&path, e))?;
        file.seek(SeekFrom::End(0)).map_err(|e| io(&path, e))?;
        let drop_path = drop_log(&path);
        let (entries, complete) = read_log(&drop_path)?;
        let mut drop_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&drop_path)
            .map_err(|e| io(&drop_path, e))?;
        drop_file.set_len(complete).map_err(|e| io(&drop_path, e))?;
        drop_file
            .seek(SeekFrom::End(0))
            .map_err(|e| io(&drop_path, e))?;
        let dropped = entries
            .into_iter()
            .filter(|(index, _)| !kept.contains(index))
            .collect();
        Ok((
            Self {
                file,
                path,
                dedup: dedup.then_some(seen),
                written,
                drop_file,
                drop_path,
                dropped,
            },
            Resume {
                next_index,
                written,
            },
        ))
    }

    /// Writes `sample` unless it is empty or (with dedup) a repeat; returns whether it was
    /// kept. The line (or, for a dropped sample, its drop log entry) is flushed before
    /// returning.
    pub fn write(&mut self, sample: &Sample) -> Result<bool, SynthGenError> {
        if sample.text.trim().is_empty() {
            self.record_drop(sample.index, DropReason::Empty)?;
            return Ok(false);
        }
        if let Some(seen) = &mut self.dedup
            && !seen.insert(sample.text.clone())
        {
            self.record_drop(sample.index, DropReason::Duplicate)?;
            return Ok(false);
        }
        self.dropped.remove(&sample.index);
        let mut object = Map::new();
        object.insert("index".into(), Value::from(sample.index));
        object.insert("text".into(), Value::from(sample.text.clone()));
        for (k, v) in &sample.labels {
            object.insert(k.clone(), Value::from(v.clone()));
        }
        let mut line = Value::Object(object).to_string();
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|_| self.file.flush())
            .map_err(|e| io(&self.path, e))?;
        self.written += 1;
        Ok(true)
    }

    /// Records in the drop log that sample `index` was dropped for `reason`.
    fn record_drop(&mut self, index: u64, reason: DropReason) -> Result<(), SynthGenError> {
        let line = DropEntry { index, reason }.line();
        self.drop_file
            .write_all(line.as_bytes())
            .and_then(|_| self.drop_file.flush())
            .map_err(|e| io(&self.drop_path, e))?;
        self.dropped.insert(index, reason);
        Ok(())
    }

    /// The samples dropped from this file so far, by reason (those of earlier runs of the
    /// file included, read back from its drop log).
    pub fn dropped(&self) -> Drops {
        count(&self.dropped, &HashSet::new())
    }

    /// Samples in the file.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
