//! (ε, δ) queries on a privacy loss distribution discretised on a uniform grid.

/// A privacy-loss distribution with masses `probs[r]` at the values `lo_value + r·h` and
/// `inf_mass` at +∞ (outputs that only one of the two distributions can produce).
#[derive(Clone, Debug)]
pub(crate) struct DiscreteLoss {
    pub lo_value: f64,
    pub h: f64,
    pub probs: Vec<f64>,
    pub inf_mass: f64,
}

impl Drop for DiscreteLoss {
    fn drop(&mut self) {
        crate::buffers::recycle_reals(std::mem::take(&mut self.probs));
    }
}

impl DiscreteLoss {
    fn value(&self, r: usize) -> f64 {
        self.lo_value + r as f64 * self.h
    }

    /// δ(ε) = P(Y = ∞) + E[(1 − e^{ε−Y})₊], the hockey-stick divergence of the pair whose
    /// privacy loss is Y.
    pub(crate) fn delta(&self, eps: f64) -> f64 {
        let mut d = self.inf_mass;
        for (r, &p) in self.probs.iter().enumerate().rev() {
            let v = self.value(r);
            if v <= eps {
                break;
            }
            d += p * -(eps - v).exp_m1();
        }
        d
    }

    /// The smallest ε with δ(ε) ≤ `delta` (δ is non-increasing in ε), solved exactly on the
    /// piece of the curve where it lies: `-inf` if every ε qualifies, `None` if none does
    /// (the mass at +∞ alone exceeds `delta`).
    pub(crate) fn epsilon(&self, delta: f64) -> Option<f64> {
        if self.inf_mass > delta {
            return None;
        }
        let decay = (-self.h).exp();
        // U = P(Y ≥ v_m) including +∞, E = Σ_{k≥m} p_k e^{v_m − v_k}; on [v_{m−1}, v_m],
        // δ(ε) = U − e^{ε − v_m} E.
        let mut upper = self.inf_mass;
        let mut weighted = 0.0;
        for (r, &p) in self.probs.iter().enumerate().rev() {
            upper += p;
            weighted = p + decay * weighted;
            // δ(v_r) ≤ delta holds here; if δ(v_{r−1}) exceeds it, the answer is on this piece.
            if upper - decay * weighted > delta {
                return Some(if weighted > 0.0 {
                    self.value(r) + ((upper - delta) / weighted).ln()
                } else {
                    self.value(r) // only reachable through rounding of negative masses
                });
            }
        }
        // Below the lowest value the curve is U − e^{ε − v_0}·E, which tends to U.
        if upper <= delta || weighted <= 0.0 {
            return Some(f64::NEG_INFINITY);
        }
        Some(self.value(0) + ((upper - delta) / weighted).ln())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_point() -> DiscreteLoss {
        // Randomised response-like: loss +1 w.p. 0.7, −1 w.p. 0.3 (a valid PLD:
        // E[e^{−Y}] = 0.7/e + 0.3e ≈ 1.07 — not required here).
        DiscreteLoss {
            lo_value: -1.0,
            h: 1.0,
            probs: vec![0.3, 0.0, 0.7],
            inf_mass: 0.01,
        }
    }

    #[test]
    fn delta_and_epsilon_are_inverse() {
        let d = two_point();
        for &eps in &[-0.5, 0.0, 0.3, 0.9] {
            let delta = d.delta(eps);
            let back = d.epsilon(delta).unwrap();
            assert!((back - eps).abs() < 1e-12, "{eps} -> {delta} -> {back}");
        }
        assert_eq!(d.delta(5.0), 0.01);
        assert!(d.epsilon(0.005).is_none());
        assert_eq!(d.epsilon(0.01).unwrap(), 1.0);
    }

    #[test]
    fn epsilon_below_the_lowest_value() {
        let d = two_point();
        let eps = -2.0;
        let delta = d.delta(eps);
        assert!((d.epsilon(delta).unwrap() - eps).abs() < 1e-12);
        assert_eq!(d.epsilon(1.5).unwrap(), f64::NEG_INFINITY);
    }
}
