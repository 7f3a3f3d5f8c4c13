//! Stage 2: the synthetic corpus, sampled from the DP teacher with the released control codes
//! and streamed to the run directory (a rerun continues after the last complete line).

use burn::tensor::backend::Backend;
use causal_lm::{CausalLm, Tokenizer};
use synth_gen::{CodeJob, ControlCodeFormat, JsonlSink, SynthesisReport, synthesize};

use crate::config::PipelineConfig;
use crate::error::DistilDpError;
use crate::histogram::LabelRelease;
use crate::run_dir::RunDir;

/// Samples the corpus (or the rest of it) into `synthetic.jsonl`. Generation is
/// post-processing of the DP teacher: it spends no budget, and its randomness is the run's
/// public `seed` (sample `i` from stream `i`, so a resumed corpus equals an uninterrupted
/// one). `progress` prints samples/s and ETA on stderr.
pub fn generate_corpus<B: Backend, M: CausalLm<B>>(
    config: &PipelineConfig,
    dir: &RunDir,
    teacher: &M,
    tokenizer: &Tokenizer,
    release: &LabelRelease,
    progress: bool,
    device: &B::Device,
) -> Result<SynthesisReport, DistilDpError> {
    let generation = &config.generation;
    let jobs: Vec<CodeJob> = release
        .codes
        .iter()
        .zip(&release.samples)
        .map(|(labels, &samples)| CodeJob {
            labels: labels.clone(),
            samples,
        })
        .collect();
    let (mut sink, resume) = JsonlSink::open(dir.synthetic_path(), generation.dedup)?;
    Ok(synthesize(
        teacher,
        tokenizer,
        &jobs,
        &ControlCodeFormat::default(),
        &generation.sampling,
        config.seed,
        generation.batch_size,
        &mut sink,
        resume.next_index,
        progress,
        device,
    )?)
}
