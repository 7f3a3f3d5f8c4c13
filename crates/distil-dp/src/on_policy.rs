//! On-policy distillation after stage 3 (beyond the DistilDP paper; Agarwal et al. 2024,
//! GKD; cf. DP-OPD): the student samples its own continuations of the control-code prompts,
//! the DP teacher scores them, and the student is trained to match the teacher's next-token
//! distributions on those sequences. Post-processing of the DP teacher (no privacy cost);
//! every random choice comes from the run's public seed. Checkpointed and resumable like
//! [`crate::distill`].
//!
//! Step `s` of a run:
//!
//! 1. `samples_per_step` prompts are drawn from the control codes in proportion to their
//!    sample counts in the label release (the allocation of the synthetic corpus), by
//!    systematic sampling from ChaCha20 stream `s` of the seed (see [`step_prompts`]);
//! 2. the student (as it is after step `s − 1`) samples at most `max_new_tokens` new tokens
//!    after each prompt with synth-gen's KV-cached [`generate`] and the stage-2 sampling
//!    settings, sample `i` of the step from stream `s·samples_per_step + i` of the seed;
//! 3. teacher and student read `prompt + sample (+ end-of-text when the sample ended)`;
//!    the loss is `τ²·D(p_T, p_S)` (kd-losses' [`divergence`], τ the stage-3 temperature)
//!    averaged over the predictions of sampled tokens only: the prompt's own tokens are
//!    not the student's and are not trained on; there is no cross-entropy (the samples are
//!    the student's, not true text);
//! 4. one AdamW step.
//!
//! A step depends on the weights and the step index only, so a run resumed from its
//! checkpoint takes exactly the steps an uninterrupted one does.

use std::path::Path;
use std::time::Instant;

use burn::module::{AutodiffModule, Module};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Int, Tensor, TensorData};
use causal_lm::Gpt2;
use kd_losses::divergence;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use synth_gen::{GenerationConfig, SpecialTokens, generate};
use train_kit::files::readable_dir;
use train_kit::{Cadence, DynOptimizer};

use crate::config::OnPolicyConfig;
use crate::distill::{after_step, descend, finish, load_checkpoint, optimizer, save_checkpoint};
use crate::dp_train::Progress;
use crate::error::DistilDpError;
use crate::progress::StepLine;

const STATE_FILE: &str = "on-policy.json";
/// Mixed into the seed for the prompts' draws, so they share no stream with the samples.
const PROMPT_SEED: u64 = 0x6F6E_2D70_6F6C_6963;
/// Mixed into the seed for the samples, so they share no stream with the synthetic corpus's.
const SAMPLE_SEED: u64 = 0x6F6E_706F_6C69_6379;

#[derive(Debug, Serialize, Deserialize)]
struct State {
    steps_taken: u64,
    planned_steps: u64,
    samples_per_step: usize,
}

/// Whether `dir` holds an on-policy checkpoint (complete or not).
pub fn checkpoint_exists(dir: &Path) -> bool {
    readable_dir(dir, STATE_FILE).is_some()
}

/// What an on-policy distillation trains with.
#[derive(Debug)]
pub struct OnPolicy<'a, B: AutodiffBackend> {
    /// Steps, samples per step, new tokens, divergence and schedule (`[student.on_policy]`).
    pub settings: &'a OnPolicyConfig,
    /// τ of the divergence (`student.loss.temperature`); the divergence is scaled by τ².
    pub temperature: f64,
    /// How the student samples (`generation.sampling`); its `max_new_tokens` is replaced
    /// by `settings.max_new_tokens`.
    pub sampling: &'a GenerationConfig,
    /// The DP teacher that scores the samples.
    pub teacher: &'a Gpt2<B::InnerBackend>,
    /// The control codes' prompts, tokenised (each at least one token).
    pub prompts: &'a [Vec<u32>],
    /// Each prompt's share: its sample count in the label release (not all 0).
    pub counts: &'a [usize],
    /// End-of-text (ends a sample) and padding.
    pub special: SpecialTokens,
    /// The public seed of the prompts' and the samples' draws.
    pub seed: u64,
}

/// The prompts (indices into `counts`) of step `step`, `n` of them: systematic sampling of
/// the codes in proportion to `counts` (row `r` takes the code covering position
/// `⌊(r + u)·total/n⌋` of the corpus, `u` uniform in [0, 1) from ChaCha20 stream `step` of
/// the seed), so every step's prompts follow the corpus's allocation as closely as `n`
/// allows. `counts` must not sum to 0.
pub fn step_prompts(seed: u64, counts: &[usize], step: u64, n: usize) -> Vec<usize> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed ^ PROMPT_SEED);
    rng.set_stream(step);
    let u = rng.next_u64() as u128;
    let ends: Vec<u128> = counts
        .iter()
        .scan(0u128, |end, &c| {
            *end += c as u128;
            Some(*end)
        })
        .collect();
    let total = ends.last().copied().unwrap_or(0);
    (0..n as u128)
        .map(|r| {
            let position = (((r << 64) + u) * total) / ((n as u128) << 64);
            ends.partition_point(|&end| end <= position)
        })
        .collect()
}

/// One step's batch: `prompt + sample (+ end-of-text)` right-padded to the longest row, its
/// attention mask `[n, len]`, and which predictions count `[n, len − 1]` (those of sampled
/// tokens and of the final end-of-text).
fn batch(
    prompts: &[&[u32]],
    samples: &[Vec<u32>],
    max_new_tokens: usize,
    special: SpecialTokens,
) -> (Vec<i64>, Vec<i64>, Vec<i64>, usize) {
    let rows: Vec<(usize, Vec<u32>)> = prompts
        .iter()
        .zip(samples)
        .map(|(p, s)| {
            let mut row = p.to_vec();
            row.extend(s);
            if s.len() < max_new_tokens {
                row.push(special.eos); // the sample ended there
            }
            (p.len(), row)
        })
        .collect();
    let len = rows.iter().map(|(_, r)| r.len()).max().unwrap_or(0).max(2);
    let (mut ids, mut mask, mut counted) = (Vec::new(), Vec::new(), Vec::new());
    for (prompt, row) in &rows {
        for t in 0..len {
            ids.push(row.get(t).copied().unwrap_or(special.pad) as i64);
            mask.push(i64::from(t < row.len()));
        }
        // prediction t is of token t + 1
        counted.extend((0..len - 1).map(|t| i64::from(t + 1 >= *prompt && t + 1 < row.len())));
    }
    (ids, mask, counted, len)
}

/// Trains `student` (the finished DistilDP student) on its own samples as `run` says:
/// resumes from the checkpoint in `dir` when there is one, checkpoints on `cadence` and takes
/// at most `cadence.limit` steps in this call. `log` gets one [`StepLine`] per step, whose
/// loss is the divergence on that step's samples before the step's update (the student's
/// distance to the teacher on its own samples).
pub fn on_policy<B: AutodiffBackend>(
    run: &OnPolicy<'_, B>,
    student: Gpt2<B>,
    dir: &Path,
    cadence: Cadence,
    log: &mut dyn FnMut(&StepLine),
) -> Result<Progress<Gpt2<B>>, DistilDpError> {
    let settings = run.settings;
    if run.prompts.len() != run.counts.len()
        || run.counts.iter().all(|&c| c == 0)
        || run.prompts.iter().any(Vec::is_empty)
    {
        return Err(DistilDpError::InvalidArgument {
            field: "control codes",
            value: format!("{} prompts, counts {:?}", run.prompts.len(), run.counts),
            expected: "one non-empty prompt per count, and at least one count above 0",
        });
    }
    settings.validate()?;
    let n = settings.samples_per_step;
    let planned = settings.steps;
    let sampling = GenerationConfig {
        max_new_tokens: settings.max_new_tokens,
        ..run.sampling.clone()
    };
    let (student, resumed) = load_checkpoint(dir, STATE_FILE, student)?;
    let (mut student, mut optim, mut state) = match resumed {
        Some((optim, state, path)) => {
            let state: State = state;
            if state.planned_steps != planned || state.samples_per_step != n {
                return Err(DistilDpError::RunMismatch {
                    path,
                    detail: format!(
                        "the checkpoint planned {} steps of {} samples, this run {planned} of {n}",
                        state.planned_steps, state.samples_per_step
                    ),
                });
            }
            (student, optim, state)
        }
        None => (
            student,
            optimizer().init::<B, Gpt2<B>>(),
            State {
                steps_taken: 0,
                planned_steps: planned,
                samples_per_step: n,
            },
        ),
    };
    let save = |student: &Gpt2<B>, optim: &DynOptimizer<Gpt2<B>, B>, state: &State| {
        save_checkpoint(dir, STATE_FILE, student, optim, state)
    };
    let device = student.devices().into_iter().next().unwrap_or_default();
    let start = Instant::now();
    let mut taken_now = 0;
    while state.steps_taken < planned {
        if !cadence.may_step(taken_now) {
            break;
        }
        let step = state.steps_taken;
        let chosen: Vec<&[u32]> = step_prompts(run.seed, run.counts, step, n)
            .into_iter()
            .map(|c| run.prompts[c].as_slice())
            .collect();
        let owned: Vec<Vec<u32>> = chosen.iter().map(|p| p.to_vec()).collect();
        let samples = generate(
            &student.valid(),
            &owned,
            run.special,
            &sampling,
            run.seed ^ SAMPLE_SEED,
            step * n as u64,
            &crate::backend::inner_device::<B>(&device),
        )?;
        let (ids, mask, counted, len) =
            batch(&chosen, &samples, settings.max_new_tokens, run.special);
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [n, len]), &device);
        let mask = Tensor::<B, 2, Int>::from_data(TensorData::new(mask, [n, len]), &device);
        let counted =
            Tensor::<B, 2, Int>::from_data(TensorData::new(counted, [n, len - 1]), &device);
        // burn 0.21's autodiff can lose a gradient when another thread runs a backward
        // concurrently (see train_kit::autodiff_guard)
        let serial = train_kit::autodiff_guard();
        let teacher = run
            .teacher
            .forward_full(ids.clone().inner(), Some(mask.clone().inner()), false)
            .logits;
        let logits = student.forward_full(ids, Some(mask), false).logits;
        let loss = divergence(
            logits.narrow(1, 0, len - 1),
            Tensor::from_inner(teacher).narrow(1, 0, len - 1),
            run.temperature,
            settings.divergence,
            Some(counted),
        )?
        .mean();
        let lr = settings.schedule.lr(step, planned);
        let now;
        (student, now) = descend(loss, student, &mut optim, lr);
        drop(serial);
        state.steps_taken += 1;
        taken_now += 1;
        let steps = state.steps_taken;
        after_step(steps, planned, cadence, now, start, log, || {
            save(&student, &optim, &state)
        })?;
    }
    finish(state.steps_taken, planned, student, |s| {
        save(s, &optim, &state)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_follow_the_allocation_and_depend_on_the_step_only() {
        let counts = [30, 0, 10];
        let rows = step_prompts(5, &counts, 3, 8);
        assert_eq!(rows, step_prompts(5, &counts, 3, 8));
        // systematic sampling: 8·30/40 = 6 and 8·10/40 = 2 rows exactly, none of the empty code
        assert_eq!(rows.iter().filter(|&&c| c == 0).count(), 6, "{rows:?}");
        assert_eq!(rows.iter().filter(|&&c| c == 2).count(), 2, "{rows:?}");
        let other: Vec<Vec<usize>> = (0..20).map(|s| step_prompts(5, &[1, 1, 1], s, 2)).collect();
        assert!(other.iter().any(|r| r != &other[0]), "the steps differ");
    }

    #[test]
    fn only_sampled_tokens_and_the_final_end_of_text_are_trained_on() {
        let special = SpecialTokens { eos: 0, pad: 9 };
        let (ids, mask, counted, len) = batch(&[&[5, 6], &[7]], &[vec![1], vec![2, 3]], 2, special);
        assert_eq!(len, 4);
        // row 0 ended early: 5 6 1 eos; row 1 ran to max_new_tokens: 7 2 3 pad
        assert_eq!(ids, [5, 6, 1, 0, 7, 2, 3, 9]);
        assert_eq!(mask, [1, 1, 1, 1, 1, 1, 1, 0]);
        // predictions of tokens 1..len: row 0 predicts 6 (prompt), 1, eos; row 1 2, 3, pad
        assert_eq!(counted, [0, 1, 1, 1, 1, 0]);
    }
}
