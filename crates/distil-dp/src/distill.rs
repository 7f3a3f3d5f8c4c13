//! Stage 3: the student trained on the synthetic corpus against the DP teacher's soft labels
//! (post-processing: no privacy cost), checkpointed and resumable.

use std::fs;
use std::path::Path;
use std::time::Instant;

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::record::{BinFileRecorder, FullPrecisionSettings};
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;
use causal_lm::Gpt2;
use kd_losses::{HiddenStates, LayerMap, distillation_loss};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde::{Deserialize, Serialize};
use train_kit::files::{readable_dir, replace_dir};
use train_kit::{Cadence, DynOptimizer, OptimizerConfig};

use crate::blocks::TokenBlocks;
use crate::config::StudentConfig;
use crate::dp_train::Progress;
use crate::error::{DistilDpError, io};
use crate::progress::StepLine;
use crate::split::permutation;

const STATE_FILE: &str = "distill.json";
const MODEL_FILE: &str = "model";
const OPTIMIZER_FILE: &str = "optimizer";

/// The student's optimiser: AdamW (weight decay 0.01).
pub(crate) fn optimizer() -> OptimizerConfig {
    OptimizerConfig::AdamW {
        beta_1: 0.9,
        beta_2: 0.999,
        epsilon: 1e-8,
        weight_decay: 0.01,
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct State {
    steps_taken: u64,
    planned_steps: u64,
    rows: usize,
}

/// Whether `dir` holds a distillation checkpoint (complete or not).
pub fn checkpoint_exists(dir: &Path) -> bool {
    readable_dir(dir, STATE_FILE).is_some()
}

/// The batch order of `epoch`: a seeded permutation of the rows (stream `epoch` of `seed`),
/// so a resumed run sees exactly the batches an uninterrupted one would.
fn epoch_order(seed: u64, rows: usize, epoch: u64) -> Vec<usize> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    rng.set_stream(epoch);
    permutation(rows, &mut rng)
}

/// What a distillation trains with: the student's settings, the teacher (or none: hard
/// labels only), the length of the run and the seed of its batch order.
#[derive(Debug)]
pub struct Distillation<'a, B: AutodiffBackend> {
    /// Batch size, epochs, loss (τ, λ, α) and schedule.
    pub settings: &'a StudentConfig,
    /// The teacher whose logits are the soft labels; `None`: cross-entropy only (as λ = 0).
    pub teacher: Option<&'a Gpt2<B::InnerBackend>>,
    /// Exactly this many steps; `None`: `settings.epochs` passes over the rows.
    pub steps: Option<u64>,
    /// Orders the batches (public).
    pub seed: u64,
}

/// Trains `student` on `data` (the synthetic corpus, or a public corpus for stage 0) as `run`
/// says, in the shape of `dp_optim`'s driver: resumes from the checkpoint in `dir` when there
/// is one, checkpoints on `cadence` and takes at most `cadence.limit` steps in this call.
/// `log` gets one [`StepLine`] per step (steps, loss of the batch, seconds, whether a
/// checkpoint was written). The data is public or synthetic (post-processing of DP
/// releases), so its loss may be logged.
pub fn distill<B: AutodiffBackend>(
    run: &Distillation<'_, B>,
    student: Gpt2<B>,
    data: &TokenBlocks<B>,
    dir: &Path,
    cadence: Cadence,
    log: &mut dyn FnMut(&StepLine),
) -> Result<Progress<Gpt2<B>>, DistilDpError> {
    let &Distillation {
        settings,
        teacher,
        steps,
        seed,
    } = run;
    if data.is_empty() {
        return Err(DistilDpError::InvalidArgument {
            field: "synthetic corpus",
            value: "0 samples".into(),
            expected: "at least one sample to train the student on",
        });
    }
    if settings.batch_size == 0 {
        return Err(DistilDpError::InvalidArgument {
            field: "student.batch_size",
            value: "0".into(),
            expected: "at least 1",
        });
    }
    let batch = settings.batch_size;
    let planned = steps.unwrap_or_else(|| {
        ((settings.epochs * data.len() as f64) / batch as f64)
            .ceil()
            .max(1.0) as u64
    });
    let hard_labels = kd_losses::DistillConfig {
        lambda: 0.0,
        ..settings.loss.clone()
    };
    // hidden-state MSE (α > 0): the last hidden states, which needs equal widths (the
    // pipeline trains no projection)
    let layer_map = LayerMap::last_only(
        student.config.n_layer,
        teacher.map_or(0, |t| t.config.n_layer),
    );
    if let Some(t) = teacher
        && settings.loss.alpha > 0.0
        && t.config.n_embd != student.config.n_embd
    {
        return Err(DistilDpError::InvalidArgument {
            field: "student.loss.alpha",
            value: format!(
                "{} with a {}-wide student and a {}-wide teacher",
                settings.loss.alpha, student.config.n_embd, t.config.n_embd
            ),
            expected: "0 unless the student's n_embd equals the teacher's (the hidden-state MSE compares the last hidden states directly)",
        });
    }
    let loss_config = if teacher.is_some() {
        &settings.loss
    } else {
        &hard_labels
    };
    let (student, resumed) = load_checkpoint(dir, STATE_FILE, student)?;
    let (mut student, mut optim, mut state) = match resumed {
        Some((optim, state, state_path)) => {
            let state: State = state;
            if state.rows != data.len() || state.planned_steps != planned {
                return Err(DistilDpError::RunMismatch {
                    path: state_path,
                    detail: format!(
                        "the checkpoint trained on {} rows for {} steps, this run has {} rows and {} steps",
                        state.rows,
                        state.planned_steps,
                        data.len(),
                        planned
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
                rows: data.len(),
            },
        ),
    };
    let save = |student: &Gpt2<B>, optim: &DynOptimizer<Gpt2<B>, B>, state: &State| {
        save_checkpoint(dir, STATE_FILE, student, optim, state)
    };
    let start = Instant::now();
    let mut taken_now = 0;
    let per_epoch = data.len().div_ceil(batch) as u64;
    let mut order: Option<(u64, Vec<usize>)> = None;
    while state.steps_taken < planned {
        if !cadence.may_step(taken_now) {
            break;
        }
        let epoch = state.steps_taken / per_epoch;
        if order.as_ref().is_none_or(|(e, _)| *e != epoch) {
            order = Some((epoch, epoch_order(seed, data.len(), epoch)));
        }
        let rows = &order.as_ref().expect("set above").1;
        let first = ((state.steps_taken % per_epoch) as usize) * batch;
        let picked = &rows[first..(first + batch).min(rows.len())];
        let (ids, mask) = data.rows(picked);
        let loss_mask = data.loss_mask(picked);
        // burn 0.21's autodiff can lose a gradient when another thread runs a backward
        // concurrently (see train_kit::autodiff_guard)
        let serial = train_kit::autodiff_guard();
        let hidden = teacher.is_some() && loss_config.alpha > 0.0;
        let output = student.forward_full(ids.clone(), Some(mask.clone()), hidden);
        let (teacher_logits, teacher_hidden) = match teacher {
            Some(t) => {
                let out = t.forward_full(ids.clone().inner(), Some(mask.clone().inner()), hidden);
                let states: Vec<Tensor<B, 3>> = out
                    .hidden_states
                    .into_iter()
                    .map(Tensor::from_inner)
                    .collect();
                (Tensor::from_inner(out.logits), states)
            }
            // λ = 0: the divergence is weighted 0; any logits of the right shape do
            None => (output.logits.clone().detach(), Vec::new()),
        };
        let terms = distillation_loss(
            loss_config,
            output.logits,
            teacher_logits,
            ids,
            Some(loss_mask),
            hidden.then(|| HiddenStates {
                student: &output.hidden_states,
                teacher: &teacher_hidden,
                map: &layer_map,
                projection: None,
            }),
        )?;
        let lr = settings.schedule.lr(state.steps_taken, planned);
        let now;
        (student, now) = descend(terms.loss(), student, &mut optim, lr);
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

/// One optimiser step of `student` on the batch's `loss` at `lr`: the updated model and the
/// loss's value.
pub(crate) fn descend<B: AutodiffBackend>(
    loss: Tensor<B, 1>,
    student: Gpt2<B>,
    optim: &mut DynOptimizer<Gpt2<B>, B>,
    lr: f64,
) -> (Gpt2<B>, f64) {
    let value = num(loss.clone().into_scalar());
    let grads = GradientsParams::from_grads(loss.backward(), &student);
    (optim.step(lr, student, grads), value)
}

/// After a step of a non-private training: a checkpoint when `cadence` says so, then the
/// step's line (`steps` of `planned`, the batch's `loss`, seconds since `start`).
pub(crate) fn after_step(
    steps: u64,
    planned: u64,
    cadence: Cadence,
    loss: f64,
    start: Instant,
    log: &mut dyn FnMut(&StepLine),
    save: impl FnOnce() -> Result<(), DistilDpError>,
) -> Result<(), DistilDpError> {
    let checkpoint = cadence.is_checkpoint(steps, planned);
    if checkpoint {
        save()?;
    }
    log(&StepLine {
        steps,
        planned_steps: planned,
        loss: Some(loss),
        seconds: Some(start.elapsed().as_secs_f64()),
        checkpoint: Some(checkpoint),
        ..StepLine::default()
    });
    Ok(())
}

/// The end of a call: done after `planned` steps, else paused with a checkpoint of `model`.
pub(crate) fn finish<M>(
    steps: u64,
    planned: u64,
    model: M,
    save: impl FnOnce(&M) -> Result<(), DistilDpError>,
) -> Result<Progress<M>, DistilDpError> {
    if steps < planned {
        save(&model)?;
        return Ok(Progress::Paused {
            taken: steps,
            planned,
        });
    }
    Ok(Progress::Done(model))
}

pub(crate) fn num<E: burn::tensor::ElementConversion>(v: E) -> f64 {
    v.elem::<f64>()
}

/// What [`load_checkpoint`] found besides the model: the AdamW state, the training's own
/// state, and the path of its file (for a mismatch error).
pub(crate) type Resumed<B, S> = (DynOptimizer<Gpt2<B>, B>, S, std::path::PathBuf);

/// The model [`load_checkpoint`] returns, and what it found besides.
pub(crate) type Loaded<B, S> = (Gpt2<B>, Option<Resumed<B, S>>);

/// A non-private training's checkpoint in `dir` (the finished one, or the one a replacement
/// left: [`readable_dir`]): `student` with its weights, and the rest ([`Resumed`], the
/// training's own state read from `state_file`); `student` as it is and `None` when `dir`
/// holds none.
pub(crate) fn load_checkpoint<B: AutodiffBackend, S: serde::de::DeserializeOwned>(
    dir: &Path,
    state_file: &str,
    student: Gpt2<B>,
) -> Result<Loaded<B, S>, DistilDpError> {
    let Some(src) = readable_dir(dir, state_file) else {
        return Ok((student, None));
    };
    let device = student.devices().into_iter().next().unwrap_or_default();
    let recorder = BinFileRecorder::<FullPrecisionSettings>::new();
    let state_path = src.join(state_file);
    let text = fs::read_to_string(&state_path).map_err(io(&state_path))?;
    let state: S = serde_json::from_str(&text).map_err(|e| DistilDpError::Data {
        path: state_path.clone(),
        line: e.line(),
        message: e.to_string(),
    })?;
    let student = student
        .load_file(src.join(MODEL_FILE), &recorder, &device)
        .map_err(|e| DistilDpError::Checkpoint {
            path: src.join(MODEL_FILE),
            source: Box::new(e),
        })?;
    let optim = optimizer()
        .init::<B, Gpt2<B>>()
        .load(&src.join(OPTIMIZER_FILE), &device)?;
    Ok((student, Some((optim, state, state_path))))
}

/// Replaces the checkpoint in `dir` atomically ([`replace_dir`]) with `student`, `optim` and
/// `state` (as JSON in `state_file`).
pub(crate) fn save_checkpoint<B: AutodiffBackend, S: Serialize>(
    dir: &Path,
    state_file: &str,
    student: &Gpt2<B>,
    optim: &DynOptimizer<Gpt2<B>, B>,
    state: &S,
) -> Result<(), DistilDpError> {
    let recorder = BinFileRecorder::<FullPrecisionSettings>::new();
    replace_dir(dir, |partial| {
        student
            .clone()
            .save_file(partial.join(MODEL_FILE), &recorder)
            .map_err(|e| DistilDpError::Checkpoint {
                path: partial.join(MODEL_FILE),
                source: Box::new(e),
            })?;
        optim.save(&partial.join(OPTIMIZER_FILE))?;
        let json = serde_json::to_vec(state).expect("state serialises");
        let path = partial.join(state_file);
        fs::write(&path, json).map_err(io(&path))
    })
}
