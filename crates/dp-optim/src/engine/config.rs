//! What a DP-SGD run is allowed to spend and how it samples ([`EngineConfig`]), and the
//! calibrated state a checkpoint resumes from ([`EngineState`]).

use dp_accounting::{AccountantKind, PrivacyLedger};
use serde::{Deserialize, Serialize};

use crate::clip::Clipping;
use crate::rng::DpRng;
use crate::sampling_key::SamplingKey;

/// Which per-example clipping implementation the engine runs. Both give the same clipped
/// sum (up to rounding); they differ in cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClippingPath {
    /// Whichever is faster here, decided once per run before its first sampled batch and
    /// kept in the (non-secret) engine state, so a resumed run continues on it: a loss that
    /// taps nothing runs the generic path; otherwise both paths are timed on the fixed
    /// records `0..k`, `k` = the physical batch size (or the expected batch size, rounded
    /// up), at least 2 and at most the dataset size, and their results are discarded. `k`
    /// and the records are functions of the public configuration only, never of a Poisson
    /// sample; the timings can still depend on the *content* of records `0..k` (see
    /// `docs/dp-optim.md`). On CPUs the generic path wins for small models (its per-example
    /// passes cost what the batched pass costs, in far less memory); the fast path wins
    /// when per-example gradients are large (gpt2) and on accelerators. See
    /// `docs/benchmarks.md`.
    #[default]
    Auto,
    /// One backward per example: any module, any loss; cost grows with the batch.
    Generic,
    /// Ghost norms and book-keeping: one forward and one backward per physical batch.
    Fast,
}

/// Default label of DP-SGD steps in the ledger ([`EngineConfig::ledger_label`]).
pub const LEDGER_LABEL: &str = "dp-sgd";

fn default_ledger_label() -> String {
    LEDGER_LABEL.to_string()
}

fn is_default_ledger_label(label: &str) -> bool {
    label == LEDGER_LABEL
}

/// What a DP-SGD run is allowed to spend and how it samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// Target ε of the whole run, > 0.
    pub target_epsilon: f64,
    /// δ, in (0, 1); commonly 1/N or smaller.
    pub delta: f64,
    /// Passes over the data (expected), > 0: steps = ⌈epochs / q⌉.
    pub epochs: f64,
    /// Number of private records N.
    pub dataset_size: usize,
    /// Expected batch size q·N.
    pub expected_batch_size: f64,
    /// Per-example clipping bound C.
    pub max_grad_norm: f64,
    /// Accountant for calibration and reports (PLD by default).
    #[serde(default)]
    pub accountant: AccountantKind,
    /// Flat (default) or per-parameter clipping; both have sensitivity `max_grad_norm`.
    #[serde(default)]
    pub clipping: Clipping,
    /// Generic or fast per-example clipping (default: fast when the loss supports it).
    #[serde(default)]
    pub clipping_path: ClippingPath,
    /// Examples per forward/backward pass: a logical (Poisson) batch larger than this is
    /// split into physical micro-batches whose clipped sums add up before the noise, which
    /// is drawn once per logical step (gradient accumulation without extra privacy cost).
    /// `None`: the whole logical batch at once.
    #[serde(default)]
    pub physical_batch_size: Option<usize>,
    /// An identifier of the private dataset (e.g. a SHA-256 fingerprint of the records),
    /// kept in every checkpoint, so that a caller resuming a run can refuse one whose data
    /// changed (see [`crate::DpTrainer::load_checkpoint`]'s callers). Not used by the engine.
    #[serde(default)]
    pub dataset_id: Option<String>,
    /// The label of this run's steps in the ledger (default [`LEDGER_LABEL`]), e.g.
    /// `teacher` when several trainings share one budget. Not serialised when it is the
    /// default (checkpoints written before it existed read as the default).
    #[serde(
        default = "default_ledger_label",
        skip_serializing_if = "is_default_ledger_label"
    )]
    pub ledger_label: String,
}

impl EngineConfig {
    /// A configuration with the defaults: PLD accounting, flat clipping, automatic path,
    /// whole logical batches.
    pub fn new(
        target_epsilon: f64,
        delta: f64,
        epochs: f64,
        dataset_size: usize,
        expected_batch_size: f64,
        max_grad_norm: f64,
    ) -> Self {
        Self {
            target_epsilon,
            delta,
            epochs,
            dataset_size,
            expected_batch_size,
            max_grad_norm,
            accountant: AccountantKind::default(),
            clipping: Clipping::default(),
            clipping_path: ClippingPath::default(),
            physical_batch_size: None,
            dataset_id: None,
            ledger_label: default_ledger_label(),
        }
    }
}

/// Calibrated parameters and everything a checkpoint needs to resume exactly: the step count,
/// the ledger and the position of the random stream.
///
/// Its serialisation holds the secret stream (`rng`) and sampling key: keep it as private
/// as the data. [`crate::DpTrainer::save_checkpoint`] writes these two to a separate
/// owner-only file and deletes them once the run is finished.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EngineState {
    /// The configuration.
    pub config: EngineConfig,
    /// Calibrated noise multiplier σ (noise std = σ·C).
    pub noise_multiplier: f64,
    /// Steps the budget allows.
    pub planned_steps: u64,
    /// Steps taken (each recorded in the ledger before its update is returned).
    pub steps_taken: u64,
    /// Every DP release so far.
    pub ledger: PrivacyLedger,
    /// The sampling and noise stream: secret (whoever knows it can regenerate every step's
    /// batch and noise). `None` only for a finished run whose stream was deleted (a
    /// [`crate::DpTrainer`] checkpoint written after the last step keeps no stream): such an
    /// engine cannot step.
    pub rng: Option<DpRng>,
    /// Whether the run's stream was seeded by the caller ([`DpRng::insecure_seeded`]: no
    /// privacy guarantee); kept when the stream itself is deleted.
    #[serde(default)]
    pub insecure: bool,
    /// The clipping path `Auto` settled on (kept so a resumed run continues on it).
    #[serde(default)]
    pub resolved_path: Option<ClippingPath>,
    /// The key every data-parallel step's Poisson sample is derived from (set when the
    /// run is trained by a [`crate::DataParallelTrainer`]; `None` for single-worker runs and
    /// once a finished run's secrets were deleted). Secret, like `rng`.
    #[serde(default)]
    pub sampling_key: Option<SamplingKey>,
}
