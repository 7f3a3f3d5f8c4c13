//! DP-SGD training of a GPT-2 on private token blocks, checkpointed and resumable: stage 1
//! (the teacher) and the DP-SGD student baseline.

use std::path::Path;
use std::time::Instant;

use burn::module::Module;
use burn::tensor::backend::AutodiffBackend;
use causal_lm::{Gpt2, Gpt2Config};
use dp_accounting::PrivacyLedger;
use dp_optim::{DpRng, DpTrainer, EngineConfig, TrainerConfig};

use crate::blocks::TokenBlocks;
use crate::config::{ModelConfig, TeacherConfig};
use crate::error::DistilDpError;

/// What one call achieved.
#[derive(Debug)]
pub enum Progress<M> {
    /// Every planned step is taken; the final model.
    Done(M),
    /// The call's step limit was reached; the checkpoint holds the state to resume from.
    Paused {
        /// Steps taken so far (all calls).
        taken: u64,
        /// Steps planned.
        planned: u64,
    },
}

/// A fresh GPT-2 of `model`'s shape for `tokenizer`'s vocabulary and `positions` positions.
pub fn fresh_model<B: AutodiffBackend>(
    model: &ModelConfig,
    vocab_size: usize,
    eos: u32,
    positions: usize,
    device: &B::Device,
) -> Result<Gpt2<B>, DistilDpError> {
    let mut config = Gpt2Config::new(
        vocab_size,
        positions,
        model.n_embd,
        model.n_layer,
        model.n_head,
    );
    config.eos_token_id = Some(eos);
    Ok(config.init::<B>(device)?)
}

/// Settings of one DP-SGD training.
#[derive(Debug, Clone)]
pub struct DpTraining<'a> {
    /// Architecture, sampling, clipping and optimiser (the `[teacher]` section's fields).
    pub settings: &'a TeacherConfig,
    /// Total ε of this training, prior releases included.
    pub epsilon: f64,
    /// δ.
    pub delta: f64,
    /// The accountant.
    pub accountant: dp_accounting::AccountantKind,
    /// Noise stream seed for an explicitly insecure reproducible run; `None`: from the OS.
    pub insecure_noise_seed: Option<u64>,
    /// Checkpoint every this many steps (and at the end).
    pub checkpoint_every: u64,
}

/// Trains `model` with DP-SGD on `data` until the planned steps are taken, resuming from the
/// checkpoint in `dir` when there is one (the ledger then continues, nothing is repeated or
/// lost: the model, optimiser, engine and noise stream come back exactly). `prior` holds the
/// releases made before (e.g. the label histogram); σ is calibrated so that they and every
/// planned step spend at most `epsilon`. At most `limit` steps are taken in this call.
/// `log` receives one line of JSON per checkpoint (steps, ε so far, seconds; never data).
pub fn train<B: AutodiffBackend>(
    training: &DpTraining<'_>,
    model: Gpt2<B>,
    data: &mut TokenBlocks<B>,
    prior: PrivacyLedger,
    dir: &Path,
    limit: Option<u64>,
    log: &mut dyn FnMut(serde_json::Value),
) -> Result<Progress<Gpt2<B>>, DistilDpError> {
    let s = training.settings;
    let device = model.devices().into_iter().next().unwrap_or_default();
    let (mut trainer, mut model) = if dp_optim::checkpoint_exists(dir) {
        DpTrainer::<B, Gpt2<B>>::load_checkpoint(dir, model, &device)?
    } else {
        let mut engine = EngineConfig::new(
            training.epsilon,
            training.delta,
            s.epochs,
            data.len(),
            s.expected_batch_size,
            s.max_grad_norm,
        );
        engine.accountant = training.accountant;
        engine.clipping = s.clipping;
        engine.clipping_path = s.clipping_path;
        engine.physical_batch_size = s.physical_batch_size;
        let rng = match training.insecure_noise_seed {
            Some(seed) => DpRng::insecure_seeded(seed),
            None => DpRng::secure()?,
        };
        let config = TrainerConfig {
            engine,
            optimizer: s.optimizer.clone(),
            schedule: s.schedule.clone(),
        };
        (DpTrainer::after(config, rng, prior)?, model)
    };
    let start = Instant::now();
    let mut taken_now = 0u64;
    while trainer.can_step() {
        if limit.is_some_and(|l| taken_now >= l) {
            break;
        }
        model = trainer.step(model, data).map_err(|f| f.error)?;
        taken_now += 1;
        let (taken, planned) = trainer.engine().steps();
        if taken % training.checkpoint_every.max(1) == 0 || taken == planned {
            trainer.save_checkpoint(&model, dir)?;
            log(serde_json::json!({
                "steps": taken,
                "planned_steps": planned,
                "epsilon": trainer.engine().epsilon_spent()?,
                "noise_multiplier": trainer.engine().noise_multiplier(),
                "seconds": start.elapsed().as_secs_f64(),
            }));
        }
    }
    let (taken, planned) = trainer.engine().steps();
    if taken < planned {
        trainer.save_checkpoint(&model, dir)?;
        return Ok(Progress::Paused { taken, planned });
    }
    Ok(Progress::Done(model))
}
