//! `ClippingPath::Auto`: the engine times both clipping paths once on public records and
//! keeps the faster (the fast path only where the loss supports it).

use std::time::Instant;

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;

use crate::error::DpOptimError;
use crate::loss::ExampleLoss;

use super::{ClippingPath, EngineConfig, PrivacyEngine, generic, ghost_sum};

/// The records `Auto` times both clipping paths on: `0..k`, `k` = the physical batch size
/// (or the expected batch size rounded up), at least 2, at most the dataset size. A function
/// of the public configuration only.
fn timing_examples(config: &EngineConfig) -> Vec<usize> {
    let per_pass = config
        .physical_batch_size
        .unwrap_or(config.expected_batch_size.ceil() as usize);
    (0..per_pass.max(2).min(config.dataset_size)).collect()
}

impl PrivacyEngine {
    /// Decides [`ClippingPath::Auto`] if it is configured and still undecided (nothing
    /// otherwise): a loss that taps nothing gets the generic path; otherwise, on the fixed
    /// records `0..k` (`k` = the physical batch size, or the expected batch size rounded up,
    /// at least 2, at most the dataset size), the fast path runs once untimed (warm-up and
    /// tap check), then the generic and the fast path once each, timed, and the faster is
    /// kept in the engine state. Their results are discarded: nothing is released, recorded
    /// or drawn from the random stream. Errors: those of the loss on either path (e.g.
    /// [`DpOptimError::LossShape`], [`DpOptimError::UntappedParameter`]).
    ///
    /// Why this depends on no private *quantity*: the number of records and which records
    /// are fixed by the public configuration (never by a Poisson sample, so neither a batch
    /// size nor a batch membership can influence the decision), and it happens before the
    /// first sample. What it may still depend on: the time the loss takes on records `0..k`,
    /// which for a loss whose cost depends on its record's content (e.g. unpadded
    /// variable-length sequences) is a function of those records' content; the choice only
    /// selects between two computations of the same clipped sum (equal up to rounding).
    pub fn resolve_auto<B, M, L>(&mut self, model: &M, loss: &mut L) -> Result<(), DpOptimError>
    where
        B: AutodiffBackend,
        M: AutodiffModule<B>,
        L: ExampleLoss<B, M>,
    {
        let config = &self.state.config;
        if config.clipping_path != ClippingPath::Auto || self.state.resolved_path.is_some() {
            return Ok(());
        }
        let (c, clipping) = (config.max_grad_norm, config.clipping);
        let examples = timing_examples(config);
        match ghost_sum(model, &examples, c, clipping, loss) {
            Err(DpOptimError::NothingTapped) => {
                self.state.resolved_path = Some(ClippingPath::Generic);
                return Ok(());
            }
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        let start = Instant::now();
        let _ = generic(model, &examples, c, clipping, loss)?;
        let generic_time = start.elapsed();
        let start = Instant::now();
        let _ = ghost_sum(model, &examples, c, clipping, loss)?;
        let fast_time = start.elapsed();
        self.state.resolved_path = Some(if generic_time < fast_time {
            ClippingPath::Generic
        } else {
            ClippingPath::Fast
        });
        Ok(())
    }
}
