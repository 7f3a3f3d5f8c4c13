//! SGD, Adam and AdamW chosen at run time: burn's optimisers behind one enum, with their
//! state saved and restored. Used for non-private training as is, and by `dp_optim` on the
//! privatised update (an optimiser only post-processes the noisy gradient, so it costs no
//! privacy: DP-SGD, DP-Adam, DP-AdamW).

use std::path::Path;

use burn::module::AutodiffModule;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{
    Adam, AdamConfig, AdamW, AdamWConfig, GradientsParams, Optimizer, Sgd, SgdConfig,
};
use burn::record::{BinFileRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use crate::error::TrainKitError;

fn default_beta_1() -> f32 {
    0.9
}
fn default_beta_2() -> f32 {
    0.999
}
fn default_epsilon() -> f32 {
    1e-8
}
fn default_adamw_decay() -> f32 {
    0.01
}

/// Which optimiser turns the private update into a parameter change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// SGD, optionally with momentum (PyTorch's: no dampening) and L2 weight decay.
    Sgd {
        /// Momentum factor in [0, 1) (default 0: plain SGD).
        #[serde(default)]
        momentum: f64,
        /// L2 penalty added to the gradient (default 0).
        #[serde(default)]
        weight_decay: f32,
    },
    /// Adam (L2 weight decay added to the gradient).
    Adam {
        /// First-moment decay (default 0.9).
        #[serde(default = "default_beta_1")]
        beta_1: f32,
        /// Second-moment decay (default 0.999).
        #[serde(default = "default_beta_2")]
        beta_2: f32,
        /// Denominator term (default 1e-8).
        #[serde(default = "default_epsilon")]
        epsilon: f32,
        /// L2 penalty (default 0).
        #[serde(default)]
        weight_decay: f32,
    },
    /// AdamW (decoupled weight decay).
    AdamW {
        /// First-moment decay (default 0.9).
        #[serde(default = "default_beta_1")]
        beta_1: f32,
        /// Second-moment decay (default 0.999).
        #[serde(default = "default_beta_2")]
        beta_2: f32,
        /// Denominator term (default 1e-8).
        #[serde(default = "default_epsilon")]
        epsilon: f32,
        /// Decoupled weight decay (default 0.01).
        #[serde(default = "default_adamw_decay")]
        weight_decay: f32,
    },
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self::Sgd {
            momentum: 0.0,
            weight_decay: 0.0,
        }
    }
}

impl OptimizerConfig {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), TrainKitError> {
        let bad = |field: &'static str, value: f64, expected: &'static str| {
            Err(TrainKitError::InvalidParameter {
                field,
                value: value.to_string(),
                expected,
            })
        };
        match *self {
            Self::Sgd {
                momentum,
                weight_decay,
            } => {
                if !(0.0..1.0).contains(&momentum) {
                    return bad("momentum", momentum, "a number in [0, 1)");
                }
                if !(weight_decay >= 0.0 && weight_decay.is_finite()) {
                    return bad("weight_decay", weight_decay.into(), "a finite number >= 0");
                }
            }
            Self::Adam {
                beta_1,
                beta_2,
                epsilon,
                weight_decay,
            }
            | Self::AdamW {
                beta_1,
                beta_2,
                epsilon,
                weight_decay,
            } => {
                if !(0.0..1.0).contains(&beta_1) {
                    return bad("beta_1", beta_1.into(), "a number in [0, 1)");
                }
                if !(0.0..1.0).contains(&beta_2) {
                    return bad("beta_2", beta_2.into(), "a number in [0, 1)");
                }
                if !(epsilon > 0.0 && epsilon.is_finite()) {
                    return bad("epsilon", epsilon.into(), "a finite number > 0");
                }
                if !(weight_decay >= 0.0 && weight_decay.is_finite()) {
                    return bad("weight_decay", weight_decay.into(), "a finite number >= 0");
                }
            }
        }
        Ok(())
    }

    /// The optimiser, with fresh state.
    pub fn init<B: AutodiffBackend, M: AutodiffModule<B>>(&self) -> DynOptimizer<M, B> {
        let decay = |w: f32| (w > 0.0).then(|| WeightDecayConfig::new(w));
        match *self {
            Self::Sgd {
                momentum,
                weight_decay,
            } => DynOptimizer::Sgd(
                SgdConfig::new()
                    .with_momentum((momentum > 0.0).then(|| {
                        MomentumConfig::new()
                            .with_momentum(momentum)
                            .with_dampening(0.0)
                    }))
                    .with_weight_decay(decay(weight_decay))
                    .init(),
            ),
            Self::Adam {
                beta_1,
                beta_2,
                epsilon,
                weight_decay,
            } => DynOptimizer::Adam(
                AdamConfig::new()
                    .with_beta_1(beta_1)
                    .with_beta_2(beta_2)
                    .with_epsilon(epsilon)
                    .with_weight_decay(decay(weight_decay))
                    .init(),
            ),
            Self::AdamW {
                beta_1,
                beta_2,
                epsilon,
                weight_decay,
            } => DynOptimizer::AdamW(
                AdamWConfig::new()
                    .with_beta_1(beta_1)
                    .with_beta_2(beta_2)
                    .with_epsilon(epsilon)
                    .with_weight_decay(weight_decay)
                    .init(),
            ),
        }
    }
}

/// One of burn's optimisers, chosen at run time (see [`OptimizerConfig`]).
pub enum DynOptimizer<M: AutodiffModule<B>, B: AutodiffBackend> {
    /// SGD (with optional momentum and weight decay).
    Sgd(OptimizerAdaptor<Sgd<B::InnerBackend>, M, B>),
    /// Adam.
    Adam(OptimizerAdaptor<Adam, M, B>),
    /// AdamW.
    AdamW(OptimizerAdaptor<AdamW, M, B>),
}

impl<M: AutodiffModule<B>, B: AutodiffBackend> std::fmt::Debug for DynOptimizer<M, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Sgd(_) => "DynOptimizer::Sgd",
            Self::Adam(_) => "DynOptimizer::Adam",
            Self::AdamW(_) => "DynOptimizer::AdamW",
        })
    }
}

/// The recorder of optimiser and model state in checkpoints (burn's binary format, `f32`).
pub fn recorder() -> BinFileRecorder<FullPrecisionSettings> {
    BinFileRecorder::new()
}

fn record_error(path: &Path, source: burn::record::RecorderError) -> TrainKitError {
    TrainKitError::Record {
        path: path.to_path_buf(),
        source,
    }
}

impl<M: AutodiffModule<B>, B: AutodiffBackend> DynOptimizer<M, B> {
    /// Applies `update` (gradients, or `dp_optim`'s privatised update) with learning rate `lr`.
    pub fn step(&mut self, lr: f64, model: M, update: GradientsParams) -> M {
        match self {
            Self::Sgd(o) => o.step(lr, model, update),
            Self::Adam(o) => o.step(lr, model, update),
            Self::AdamW(o) => o.step(lr, model, update),
        }
    }

    /// Saves the optimiser state (moments, momentum) to `path` (burn's binary record, full
    /// precision; `.bin` is appended).
    pub fn save(&self, path: &Path) -> Result<(), TrainKitError> {
        let r = recorder();
        match self {
            Self::Sgd(o) => r.record(o.to_record(), path.to_path_buf()),
            Self::Adam(o) => r.record(o.to_record(), path.to_path_buf()),
            Self::AdamW(o) => r.record(o.to_record(), path.to_path_buf()),
        }
        .map_err(|e| record_error(path, e))
    }

    /// Restores state saved by [`Self::save`] into an optimiser of the same kind.
    pub fn load(self, path: &Path, device: &B::Device) -> Result<Self, TrainKitError> {
        let r = recorder();
        let p = path.to_path_buf();
        Ok(match self {
            Self::Sgd(o) => {
                Self::Sgd(o.load_record(r.load(p, device).map_err(|e| record_error(path, e))?))
            }
            Self::Adam(o) => {
                Self::Adam(o.load_record(r.load(p, device).map_err(|e| record_error(path, e))?))
            }
            Self::AdamW(o) => {
                Self::AdamW(o.load_record(r.load(p, device).map_err(|e| record_error(path, e))?))
            }
        })
    }
}
