//! Why generated samples are missing from a corpus file: the reasons [`JsonlSink`] drops a
//! sample for, counted, and the drop log that keeps them across interruptions and merges.
//!
//! [`JsonlSink`]: crate::JsonlSink

use std::collections::{BTreeMap, HashSet};
use std::io::BufReader;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::SynthGenError;
use crate::lines::{complete_lines, open_if_exists};
use crate::output::parse_line;

/// Why a generated sample was not written to the corpus. These are the only two places
/// [`crate::JsonlSink::write`] (and [`crate::merge_shards`]) leave a sample out; a sample
/// whose tokens cannot be decoded is an error that stops the run, not a drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DropReason {
    /// The decoded text is empty or whitespace only: the model ended the sample (end-of-text)
    /// before any visible character, e.g. as its first new token.
    Empty,
    /// With de-duplication on, the text repeats exactly an earlier kept sample's text (in the
    /// same file, or, when shards are merged, an earlier shard's).
    Duplicate,
}

impl DropReason {
    /// Every reason, in the order reports list them.
    pub const ALL: [DropReason; 2] = [DropReason::Empty, DropReason::Duplicate];

    /// Its name in the drop log and in reports (`empty`, `duplicate`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::Duplicate => "duplicate",
        }
    }

    /// What it means, in words, for a report.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Empty => "empty or whitespace-only text (end-of-text came first)",
            Self::Duplicate => "exact repeat of an earlier sample (generation.dedup)",
        }
    }
}

/// Dropped samples counted by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drops {
    /// Samples dropped as [`DropReason::Empty`].
    pub empty: u64,
    /// Samples dropped as [`DropReason::Duplicate`].
    pub duplicate: u64,
}

impl Drops {
    /// The count for `reason`.
    pub fn get(&self, reason: DropReason) -> u64 {
        match reason {
            DropReason::Empty => self.empty,
            DropReason::Duplicate => self.duplicate,
        }
    }

    /// Counts one more sample dropped for `reason`.
    pub fn add(&mut self, reason: DropReason) {
        match reason {
            DropReason::Empty => self.empty += 1,
            DropReason::Duplicate => self.duplicate += 1,
        }
    }

    /// All dropped samples.
    pub fn total(&self) -> u64 {
        self.empty + self.duplicate
    }

    /// The drops recorded for the corpus file `corpus`, read from its [`drop_log`]: one per
    /// sample index (the last entry of an index wins: a sample generated again after a
    /// resume is dropped again, for the same reason), ignoring indices the corpus holds (a
    /// sample that was kept after all). No drop log means no drops; a line cut short by a
    /// kill is ignored, any other unreadable line is an [`SynthGenError::Io`] naming it.
    pub fn read(corpus: &Path) -> Result<Self, SynthGenError> {
        let kept = corpus_indices(corpus)?;
        let (entries, _) = read_log(&drop_log(corpus))?;
        Ok(count(&entries, &kept))
    }
}

/// The drop log of a corpus file: its path with `.dropped` appended. [`crate::JsonlSink`]
/// appends `{"index": i, "reason": "empty"}` to it (flushed) for every sample it drops, so
/// the reasons survive an interruption; [`crate::merge_shards`] writes the merged file's.
/// It holds sample indices and reasons only, never text.
pub fn drop_log(corpus: &Path) -> PathBuf {
    let mut name = corpus.as_os_str().to_owned();
    name.push(".dropped");
    PathBuf::from(name)
}

/// One line of a drop log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DropEntry {
    pub index: u64,
    pub reason: DropReason,
}

impl DropEntry {
    /// The entry as a line of the log, newline included.
    pub(crate) fn line(self) -> String {
        serde_json::to_string(&self).expect("a drop entry serialises") + "\n"
    }
}

/// A drop log's entries, the last per index, and the length in bytes of its complete lines
/// (a last line cut short by a kill is left out). A missing log is empty.
pub(crate) fn read_log(path: &Path) -> Result<(BTreeMap<u64, DropReason>, u64), SynthGenError> {
    let mut entries = BTreeMap::new();
    let Some(file) = open_if_exists(path)? else {
        return Ok((entries, 0));
    };
    let complete = complete_lines(BufReader::new(file), path, |line| {
        let entry: DropEntry =
            serde_json::from_str(line).map_err(|e| format!("not a drop log entry ({e})"))?;
        entries.insert(entry.index, entry.reason);
        Ok(())
    })?;
    Ok((entries, complete))
}

/// The sample indices a corpus file holds (none if it does not exist; a last line cut short
/// is left out).
pub(crate) fn corpus_indices(corpus: &Path) -> Result<HashSet<u64>, SynthGenError> {
    let mut indices = HashSet::new();
    if let Some(file) = open_if_exists(corpus)? {
        complete_lines(BufReader::new(file), corpus, |line| {
            indices.insert(parse_line(line)?.0);
            Ok(())
        })?;
    }
    Ok(indices)
}

/// The counts of `entries` whose index is not in `kept`.
pub(crate) fn count(entries: &BTreeMap<u64, DropReason>, kept: &HashSet<u64>) -> Drops {
    let mut drops = Drops::default();
    for (index, &reason) in entries {
        if !kept.contains(index) {
            drops.add(reason);
        }
    }
    drops
}
