//! From Rényi DP to (ε, δ)-DP.
//!
//! Uses the improved conversion of Balle et al. 2020 ("Hypothesis Testing Interpretations
//! and Renyi Differential Privacy", Proposition 12; also Asoodeh et al. 2020), which Opacus
//! and dp_accounting use: at order α with RDP r,
//! `ε = r + ln(1 − 1/α) − (ln δ + ln α)/(α − 1)`,
//! and the KL bound δ ≤ √(1 − e^{−r}) (Bretagnolle–Huber, valid because the Rényi divergence
//! grows with the order), which gives ε = 0 once it falls below δ.

/// The smallest ε over the orders and the order that achieves it. `rdp[i]` is the RDP at
/// `orders[i]`, `None` where it could not be computed. ε is clamped at 0.
pub(crate) fn epsilon(orders: &[f64], rdp: &[Option<f64>], delta: f64) -> Option<(f64, f64)> {
    let ln_delta = delta.ln();
    let mut best: Option<(f64, f64)> = None;
    for (&a, r) in orders.iter().zip(rdp) {
        let Some(r) = *r else { continue };
        let eps = if delta * delta + (-r).exp_m1() > 0.0 {
            0.0
        } else {
            r + (-1.0 / a).ln_1p() - (ln_delta + a.ln()) / (a - 1.0)
        };
        if eps.is_nan() {
            continue;
        }
        if best.is_none_or(|(b, _)| eps < b) {
            best = Some((eps.max(0.0), a));
        }
    }
    best
}

/// The smallest δ over the orders for a given ε ≥ 0, and the order that achieves it.
pub(crate) fn delta(orders: &[f64], rdp: &[Option<f64>], eps: f64) -> Option<(f64, f64)> {
    let mut best: Option<(f64, f64)> = None;
    for (&a, r) in orders.iter().zip(rdp) {
        let Some(r) = *r else { continue };
        let kl = if r == 0.0 {
            f64::NEG_INFINITY
        } else {
            0.5 * (-(-r).exp()).ln_1p()
        };
        let balle = (a - 1.0) * (r - eps + (-1.0 / a).ln_1p()) - a.ln();
        let log_delta = kl.min(balle);
        if log_delta.is_nan() {
            continue;
        }
        if best.is_none_or(|(b, _)| log_delta < b) {
            best = Some((log_delta, a));
        }
    }
    best.map(|(l, a)| (l.exp().min(1.0), a))
}
