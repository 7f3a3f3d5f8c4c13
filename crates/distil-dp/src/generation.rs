//! Stage 2: the synthetic corpus, sampled from the DP teacher with the released control codes
//! and streamed to the run directory (a rerun continues after the last complete line); or
//! generated in shards (`synthetic.shard-I-of-N.jsonl`, e.g. one per machine) and merged.

use burn::tensor::backend::Backend;
use causal_lm::{CausalLm, Tokenizer};
use synth_gen::{CodeJob, JsonlSink, MergeReport, Shard, Synthesis, SynthesisReport, merge_shards};

use crate::config::PipelineConfig;
use crate::error::{DistilDpError, io};
use crate::histogram::LabelRelease;
use crate::run_dir::{RunDir, write_atomic};

/// What `synthetic.jsonl.done` records: the file covered every sample of the run when it
/// held exactly these lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct CorpusDone {
    total: u64,
    next_index: u64,
    written: u64,
}

fn corpus_marker(dir: &RunDir) -> std::path::PathBuf {
    synth_gen::completion_marker(&dir.synthetic_path())
}

/// `synthetic.jsonl` opened for appending (a line cut short by a kill is dropped first), and
/// its state.
fn open_corpus(
    config: &PipelineConfig,
    dir: &RunDir,
    total: u64,
) -> Result<(JsonlSink, CorpusDone), DistilDpError> {
    let (sink, resume) = JsonlSink::open(dir.synthetic_path(), config.generation.dedup)?;
    let state = CorpusDone {
        total,
        next_index: resume.next_index,
        written: resume.written,
    };
    Ok((sink, state))
}

/// Records that `synthetic.jsonl`, as it is now, covers all the run's samples (after a
/// generation or a merge that went through every index).
fn mark_complete(
    config: &PipelineConfig,
    dir: &RunDir,
    release: &LabelRelease,
) -> Result<(), DistilDpError> {
    let (_, state) = open_corpus(config, dir, total_samples(release))?;
    let json = serde_json::to_vec(&state).expect("marker serialises");
    Ok(write_atomic(&corpus_marker(dir), &json)?)
}

/// Whether a corpus in state `now` is complete: its highest index is the last sample's, or
/// `synthetic.jsonl.done` records exactly this state.
fn is_complete(dir: &RunDir, now: &CorpusDone) -> Result<bool, DistilDpError> {
    if now.next_index >= now.total {
        return Ok(true);
    }
    let marker = corpus_marker(dir);
    if !marker.exists() {
        return Ok(false);
    }
    let text = std::fs::read(&marker).map_err(io(&marker))?;
    Ok(serde_json::from_slice::<CorpusDone>(&text).is_ok_and(|done| done == *now))
}

/// Whether `synthetic.jsonl` holds the whole corpus: its highest index is the last sample's,
/// or generation went through every sample (dropping the last ones: empty texts, or repeats
/// with `generation.dedup`) and the file is unchanged since (`synthetic.jsonl.done`).
pub fn corpus_complete(
    config: &PipelineConfig,
    dir: &RunDir,
    release: &LabelRelease,
) -> Result<bool, DistilDpError> {
    if !dir.synthetic_path().exists() {
        return Ok(false);
    }
    let (_, now) = open_corpus(config, dir, total_samples(release))?;
    is_complete(dir, &now)
}

/// The released codes with their sample counts, in release order (sample `i` of the corpus
/// belongs to the code whose counts cover `i`).
fn jobs(release: &LabelRelease) -> Vec<CodeJob> {
    release
        .codes
        .iter()
        .zip(&release.samples)
        .map(|(labels, &samples)| CodeJob {
            labels: labels.clone(),
            samples,
        })
        .collect()
}

/// The run's generation settings: the released `jobs` in the default control-code format,
/// `generation.sampling` from the public `seed`, `generation.batch_size` prompts at a time.
fn synthesis<'a>(
    config: &PipelineConfig,
    tokenizer: &'a Tokenizer,
    jobs: &'a [CodeJob],
    progress: bool,
) -> Synthesis<'a> {
    Synthesis::new(tokenizer, jobs, config.seed)
        .with_format(config.data.control_code.clone())
        .with_config(config.generation.sampling.clone())
        .with_batch_size(config.generation.batch_size)
        .with_progress(progress)
}

/// The synthetic samples of the run: the sum of the release's counts.
pub fn total_samples(release: &LabelRelease) -> u64 {
    release.samples.iter().map(|&s| s as u64).sum()
}

/// Stage 2's inputs: the run's settings and directory, the DP teacher and its tokenizer, and
/// the DP label release; [`Self::corpus`] samples the whole corpus, [`Self::shard`] one shard.
#[derive(Debug)]
pub struct Generation<'a, B: Backend, M> {
    /// The run's configuration (`generation.*`, `seed`).
    pub config: &'a PipelineConfig,
    /// The run directory written to.
    pub dir: &'a RunDir,
    /// The DP teacher.
    pub teacher: &'a M,
    /// Its tokenizer.
    pub tokenizer: &'a Tokenizer,
    /// The DP label release (codes and sample counts).
    pub release: &'a LabelRelease,
    /// Print samples/s and ETA on stderr.
    pub progress: bool,
    /// The device the teacher runs on.
    pub device: &'a B::Device,
}

impl<B: Backend, M: CausalLm<B>> Generation<'_, B, M> {
    /// Samples the corpus (or the rest of it) into `synthetic.jsonl`, then records that it is
    /// complete (`synthetic.jsonl.done`, see [`corpus_complete`]; a complete corpus is not
    /// generated again). Generation is
    /// post-processing of the DP teacher: it spends no budget, and its randomness is the run's
    /// public `seed` (sample `i` from stream `i`, so a resumed corpus equals an uninterrupted
    /// one). `progress` prints samples/s and ETA on stderr.
    pub fn corpus(&self) -> Result<SynthesisReport, DistilDpError> {
        let Generation {
            config,
            dir,
            teacher,
            tokenizer,
            release,
            progress,
            device,
        } = *self;
        let (mut sink, now) = open_corpus(config, dir, total_samples(release))?;
        if is_complete(dir, &now)? {
            return Ok(SynthesisReport {
                total: now.total,
                generated: 0,
                written: now.written,
                dropped: sink.dropped(),
            });
        }
        let jobs = jobs(release);
        let report = synthesis(config, tokenizer, &jobs, progress).run(
            teacher,
            &mut sink,
            now.next_index,
            device,
        )?;
        drop(sink);
        mark_complete(config, dir, release)?;
        Ok(report)
    }

    /// Samples shard `shard` of the corpus (or the rest of it) into
    /// `synthetic.shard-I-of-N.jsonl` ([`RunDir::synthetic_shard_path`]): the sample indices
    /// [`Shard::range`] of the run's total, each from its own stream of the public `seed`, so the
    /// shards together hold exactly the samples of [`Self::corpus`]. Reads and writes nothing
    /// else (`synthetic.jsonl` in particular is neither needed nor touched); at the end it writes
    /// the shard's completion marker, which [`merge_corpus`] checks.
    pub fn shard(&self, shard: Shard) -> Result<SynthesisReport, DistilDpError> {
        let Generation {
            config,
            dir,
            teacher,
            tokenizer,
            release,
            progress,
            device,
        } = *self;
        check_shard_count(shard.count(), release)?;
        let path = dir.synthetic_shard_path(shard);
        let (mut sink, resume) = JsonlSink::open(&path, config.generation.dedup)?;
        let jobs = jobs(release);
        Ok(synthesis(config, tokenizer, &jobs, progress).run_shard(
            teacher,
            shard,
            &mut sink,
            resume.next_index,
            device,
        )?)
    }
}

/// Merges the `count` shard files into `synthetic.jsonl` (atomically), after checking that
/// every shard finished and holds exactly its sample indices; with `generation.dedup`, repeats
/// across shards are dropped again, so the file equals the one [`Generation::corpus`] writes.
/// An unfinished or missing shard is an error naming its file.
pub fn merge_corpus(
    config: &PipelineConfig,
    dir: &RunDir,
    release: &LabelRelease,
    count: u64,
) -> Result<MergeReport, DistilDpError> {
    check_shard_count(count, release)?;
    let paths = (0..count)
        .map(|i| Ok(dir.synthetic_shard_path(Shard::new(i, count)?)))
        .collect::<Result<Vec<_>, DistilDpError>>()?;
    let report = merge_shards(
        &paths,
        total_samples(release),
        config.generation.dedup,
        &dir.synthetic_path(),
    )?;
    mark_complete(config, dir, release)?;
    Ok(report)
}

/// Refuses a shard count outside 1..=samples (a shard with no sample is a mistake here).
fn check_shard_count(count: u64, release: &LabelRelease) -> Result<(), DistilDpError> {
    let total = total_samples(release);
    if count == 0 || count > total.max(1) {
        return Err(DistilDpError::InvalidArgument {
            field: "shards",
            value: format!("{count} (for {total} synthetic samples)"),
            expected: "between 1 and the number of synthetic samples (generation.samples)",
        });
    }
    Ok(())
}
