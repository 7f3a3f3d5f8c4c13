//! When a training checkpoints and when a call stops: the shape every training loop of the
//! workspace shares (dp-optim's driver and the non-private distillation).

/// A checkpoint after every `checkpoint_every`-th step and after the last; at most `limit`
/// steps in one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cadence {
    /// The checkpoint cadence in steps (0 is taken as 1).
    pub checkpoint_every: u64,
    /// At most this many steps in one call; `None`: until the planned steps are taken.
    pub limit: Option<u64>,
}

impl Default for Cadence {
    /// A checkpoint after every step, no limit.
    fn default() -> Self {
        Self {
            checkpoint_every: 1,
            limit: None,
        }
    }
}

impl Cadence {
    /// Whether the step that brought the count to `taken` of `planned` is a checkpoint step.
    pub fn is_checkpoint(&self, taken: u64, planned: u64) -> bool {
        taken.is_multiple_of(self.checkpoint_every.max(1)) || taken == planned
    }

    /// Whether a call that has taken `taken_now` steps may take another.
    pub fn may_step(&self, taken_now: u64) -> bool {
        self.limit.is_none_or(|l| taken_now < l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_on_the_cadence_and_at_the_end_and_stops_at_the_limit() {
        let c = Cadence {
            checkpoint_every: 3,
            limit: Some(2),
        };
        let at: Vec<u64> = (1..=7).filter(|&t| c.is_checkpoint(t, 7)).collect();
        assert_eq!(at, [3, 6, 7]);
        assert!(c.may_step(1) && !c.may_step(2));
        let every = Cadence {
            checkpoint_every: 0,
            limit: None,
        };
        assert!(every.is_checkpoint(1, 9) && every.may_step(1_000));
    }
}
