//! Sharded generation: shard `I` of `N` generates the contiguous sample indices
//! `[T·I/N, T·(I+1)/N)` of a `T`-sample run (sample `i` always from stream `i` of the seed),
//! and [`merge_shards`] joins the shard files into the corpus one unsharded run writes.
//! [`Shard`] is `train_kit`'s (the workspace's one shard arithmetic); its errors become
//! [`SynthGenError::InvalidParameter`]s naming `shard.count` / `shard.index`.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
pub use train_kit::Shard;

use crate::drops::{DropEntry, DropReason, Drops, drop_log, read_log};
use crate::error::{SynthGenError, invalid};
use crate::output::{io, parse_line};

/// The completion marker of a shard file: the file's path with `.done` appended. It is
/// written (atomically) once the shard's last sample has been generated, so a merge can tell
/// a finished shard whose last samples were filtered out from one that was stopped early.
pub fn completion_marker(shard_file: &Path) -> PathBuf {
    with_suffix(shard_file, ".done")
}

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The contents of a completion marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Completion {
    shard: u64,
    count: u64,
    total: u64,
    start: u64,
    end: u64,
    seed: u64,
    /// Lines in the shard file when it finished.
    written: u64,
}

/// `path`, written through `train_kit`'s atomic writer (a kill leaves either the old or the
/// new file, never a part), buffered.
fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<(), SynthGenError>,
) -> Result<(), SynthGenError> {
    train_kit::files::write_atomic_with(path, |tmp| {
        let mut out = BufWriter::new(
            fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(tmp)
                .map_err(|e| io(tmp, e))?,
        );
        write(&mut out)?;
        out.flush().map_err(|e| io(tmp, e))
    })
}

/// Records that `shard_file` holds all of `shard`'s samples (`written` lines).
pub(crate) fn mark_complete(
    shard_file: &Path,
    shard: Shard,
    total: u64,
    seed: u64,
    written: u64,
) -> Result<(), SynthGenError> {
    let range = shard.range(total);
    let marker = Completion {
        shard: shard.index(),
        count: shard.count(),
        total,
        start: range.start,
        end: range.end,
        seed,
        written,
    };
    let text = serde_json::to_string(&marker).expect("a marker serialises") + "\n";
    let path = completion_marker(shard_file);
    write_atomic(&path, |out| {
        out.write_all(text.as_bytes()).map_err(|e| io(&path, e))
    })
}

/// Removes `shard_file`'s completion marker, if any (before the shard writes again).
pub(crate) fn clear_completion(shard_file: &Path) -> Result<(), SynthGenError> {
    let path = completion_marker(shard_file);
    match fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&path, e)),
        _ => Ok(()),
    }
}

/// What [`merge_shards`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergeReport {
    /// Shard files merged.
    pub shards: u64,
    /// Samples in the run (all shards).
    pub total: u64,
    /// Lines read from the shard files.
    pub read: u64,
    /// Lines in the merged file.
    pub written: u64,
    /// Lines dropped as repeats of an earlier shard's text (with `dedup`).
    pub duplicates: u64,
    /// Every sample missing from the merged file, by reason: the shards' own drops (from
    /// their drop logs) and the repeats across shards above.
    pub dropped: Drops,
}

fn bad_shard(path: &Path, shard: Shard, detail: impl ToString) -> SynthGenError {
    SynthGenError::IncompleteShard {
        path: path.to_path_buf(),
        shard: shard.to_string(),
        detail: detail.to_string(),
    }
}

/// `error` with the other shards that failed the same checks listed (at most 20 named).
fn also_incomplete(error: SynthGenError, others: &[Shard]) -> SynthGenError {
    match error {
        SynthGenError::IncompleteShard {
            path,
            shard,
            mut detail,
        } if !others.is_empty() => {
            const NAMED: usize = 20;
            let named: Vec<String> = others.iter().take(NAMED).map(Shard::to_string).collect();
            detail.push_str(&format!("; also incomplete: shards {}", named.join(", ")));
            if others.len() > NAMED {
                detail.push_str(&format!(" and {} more", others.len() - NAMED));
            }
            SynthGenError::IncompleteShard {
                path,
                shard,
                detail,
            }
        }
        e => e,
    }
}

/// The highest index in a shard file that has no completion marker, for the error message.
fn last_index(path: &Path) -> Option<u64> {
    let file = File::open(path).ok()?;
    BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| parse_line(&l).ok().map(|(i, _)| i))
        .max()
}

/// Checks that shard `shard`'s file exists and finished; returns its marker.
fn finished(path: &Path, shard: Shard, total: u64) -> Result<Completion, SynthGenError> {
    let range = shard.range(total);
    if !path.exists() {
        return Err(bad_shard(
            path,
            shard,
            format!(
                "the file is missing: generate this shard (sample indices {}..{}) first",
                range.start, range.end
            ),
        ));
    }
    let marker_path = completion_marker(path);
    let text = match fs::read_to_string(&marker_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let written = match last_index(path) {
                Some(i) => format!("the last index written is {i}"),
                None => "no sample written yet".into(),
            };
            return Err(bad_shard(
                path,
                shard,
                format!(
                    "its generation has not finished (no {}; sample indices {}..{}, {written}): rerun it to continue",
                    marker_path.display(),
                    range.start,
                    range.end
                ),
            ));
        }
        Err(e) => return Err(io(&marker_path, e)),
    };
    let marker: Completion = serde_json::from_str(&text).map_err(|e| {
        bad_shard(
            path,
            shard,
            format!("{} is not a completion marker ({e})", marker_path.display()),
        )
    })?;
    if (marker.shard, marker.count, marker.total) != (shard.index(), shard.count(), total) {
        return Err(bad_shard(
            path,
            shard,
            format!(
                "its completion marker is for shard {}/{} of a {}-sample run, expected shard {shard} of {total} samples",
                marker.shard, marker.count, marker.total
            ),
        ));
    }
    Ok(marker)
}

/// Copies shard `shard`'s lines to `out` in order, checking each; `seen` holds the texts
/// already kept (with dedup), `dropped` gets the shard's drops (its drop log's, and the
/// repeats of an earlier shard's text dropped here). Returns (lines read, duplicates
/// dropped).
fn copy_shard(
    path: &Path,
    shard: Shard,
    marker: &Completion,
    seen: &mut Option<HashSet<String>>,
    dropped: &mut BTreeMap<u64, DropReason>,
    out: &mut BufWriter<File>,
    out_path: &Path,
) -> Result<(u64, u64), SynthGenError> {
    let range = marker.start..marker.end;
    let mut reader = BufReader::new(File::open(path).map_err(|e| io(path, e))?);
    let mut line = String::new();
    let (mut read, mut duplicates) = (0u64, 0u64);
    let mut kept = HashSet::new();
    let mut previous: Option<u64> = None;
    loop {
        line.clear();
        if reader.read_line(&mut line).map_err(|e| io(path, e))? == 0 {
            break;
        }
        let number = read + 1;
        if !line.ends_with('\n') {
            return Err(bad_shard(
                path,
                shard,
                format!("line {number} is cut short (the file changed after it finished)"),
            ));
        }
        let at = |e: String| bad_shard(path, shard, format!("line {number}: {e}"));
        let (index, text) = parse_line(&line).map_err(at)?;
        let text = text.ok_or_else(|| at("no \"text\" field".into()))?;
        if !range.contains(&index) {
            return Err(at(format!(
                "index {index} is outside the shard's sample indices {}..{}",
                range.start, range.end
            )));
        }
        if let Some(p) = previous
            && index <= p
        {
            return Err(at(format!(
                "index {index} does not follow index {p} (samples overlap or are out of order)"
            )));
        }
        previous = Some(index);
        read += 1;
        kept.insert(index);
        if let Some(seen) = seen
            && !seen.insert(text)
        {
            duplicates += 1;
            dropped.insert(index, DropReason::Duplicate);
            continue;
        }
        out.write_all(line.as_bytes())
            .map_err(|e| io(out_path, e))?;
    }
    if read != marker.written {
        return Err(bad_shard(
            path,
            shard,
            format!(
                "it holds {read} samples but its completion marker says {} (the file changed after it finished)",
                marker.written
            ),
        ));
    }
    let log = drop_log(path);
    for (index, reason) in read_log(&log)?.0 {
        if kept.contains(&index) {
            continue; // dropped once, kept when generated again
        }
        if !range.contains(&index) {
            return Err(bad_shard(
                path,
                shard,
                format!(
                    "{} names sample {index}, outside the shard's sample indices {}..{}",
                    log.display(),
                    range.start,
                    range.end
                ),
            ));
        }
        dropped.insert(index, reason);
    }
    Ok((read, duplicates))
}

/// Merges the shard files of a run of `total` samples into `out`: `shards[i]` is shard `i`
/// of `shards.len()`, as written by [`crate::Synthesis::run_shard`].
///
/// Every shard must have finished (its [`completion_marker`] is present and matches: shard,
/// count and total, and the same seed for all shards), and its lines must be whole, with
/// strictly increasing indices inside the shard's range, as many as the marker recorded. Gaps
/// inside a range are the samples the shard's sink dropped (empty generations and, with
/// dedup, repeats within the shard); nothing else can be missing. A problem is an
/// [`SynthGenError::IncompleteShard`] naming the file and what is missing; all markers are
/// checked before any line is read (the error names the first shard that failed and lists
/// the others). Lines are copied byte for byte in index order.
///
/// With `dedup` (give the setting the shards' sinks were opened with), a line whose text an
/// earlier kept line already has is dropped again, across shards. The result equals the file
/// an unsharded [`crate::Synthesis::run`] with the same settings and dedup setting writes,
/// byte for byte: an unsharded sink keeps sample `i` exactly
/// when its text is non-empty and no earlier non-empty sample has the same text; a shard's
/// sink keeps every such first occurrence (nothing before it in the shard has the text
/// either), and the merge then drops exactly the later occurrences the shards kept.
///
/// `out` is written through a temporary sibling (`out` + `.partial`) renamed over it, so a
/// kill leaves either no merged file (or the previous one) or the whole of it. Its
/// [`drop_log`] (written the same way, just before it) lists every sample index missing from
/// it with its [`DropReason`]: the shards' drop logs joined, and the repeats across shards;
/// [`MergeReport::dropped`] counts them. A shard's drop log naming an index outside its
/// range is an [`SynthGenError::IncompleteShard`].
pub fn merge_shards<P: AsRef<Path>>(
    shards: &[P],
    total: u64,
    dedup: bool,
    out: &Path,
) -> Result<MergeReport, SynthGenError> {
    if shards.is_empty() {
        return Err(invalid(
            "shards",
            "no files",
            "one file per shard, shard 0 first",
        ));
    }
    let count = shards.len() as u64;
    let mut checked: Vec<(&Path, Shard, Completion)> = Vec::with_capacity(shards.len());
    let mut first_error = None;
    let mut others = Vec::new();
    for (i, path) in shards.iter().enumerate() {
        let (path, shard) = (path.as_ref(), Shard::new(i as u64, count)?);
        let result = finished(path, shard, total).and_then(|marker| match checked.first() {
            Some((_, first, m)) if m.seed != marker.seed => Err(bad_shard(
                path,
                shard,
                format!(
                    "it was generated with seed {}, shard {first} with seed {}",
                    marker.seed, m.seed
                ),
            )),
            _ => Ok(marker),
        });
        match result {
            Ok(marker) => checked.push((path, shard, marker)),
            Err(e) if first_error.is_none() => first_error = Some(e),
            Err(_) => others.push(shard),
        }
    }
    if let Some(e) = first_error {
        return Err(also_incomplete(e, &others));
    }
    let mut seen = dedup.then(HashSet::new);
    let mut report = MergeReport {
        shards: count,
        total,
        read: 0,
        written: 0,
        duplicates: 0,
        dropped: Drops::default(),
    };
    let mut dropped = BTreeMap::new();
    write_atomic(out, |writer| {
        for (path, shard, marker) in &checked {
            let (read, duplicates) =
                copy_shard(path, *shard, marker, &mut seen, &mut dropped, writer, out)?;
            report.read += read;
            report.duplicates += duplicates;
        }
        writer.flush().map_err(|e| io(out, e))?;
        // the drop log lands before the corpus it describes
        let log = drop_log(out);
        write_atomic(&log, |w| {
            for (&index, &reason) in &dropped {
                w.write_all(DropEntry { index, reason }.line().as_bytes())
                    .map_err(|e| io(&log, e))?;
            }
            Ok(())
        })
    })?;
    for &reason in dropped.values() {
        report.dropped.add(reason);
    }
    report.written = report.read - report.duplicates;
    Ok(report)
}
