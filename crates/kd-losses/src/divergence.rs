//! Divergences between the teacher's and the student's next-token distributions.

use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{KdLossError, check_range, check_shape};
use crate::token_loss::TokenLoss;

/// Which divergence between `p_T = softmax(teacher/τ)` and `p_S = softmax(student/τ)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Divergence {
    /// `KL(p_T ‖ p_S) = Σ p_T (log p_T − log p_S)` (Hinton et al.; DistilDP's choice).
    #[default]
    ForwardKl,
    /// `KL(p_S ‖ p_T)`: mode-seeking.
    ReverseKl,
    /// Generalised Jensen–Shannon (Agarwal et al. 2024):
    /// `β·KL(p_T ‖ M) + (1−β)·KL(p_S ‖ M)`, `M = β·p_T + (1−β)·p_S`, `β ∈ (0, 1)`.
    Jsd {
        /// Weight β of the teacher in the mixture, in (0, 1).
        beta: f64,
    },
}

/// `Σ_v exp(a)·(a − b)` over the last axis of log-probabilities `a`, `b` `[batch, seq, vocab]`,
/// with `0·log 0 = 0` (a zero-probability token contributes nothing, even against `−∞`).
fn kl_from_logs<B: Backend>(a: Tensor<B, 3>, b: Tensor<B, 3>) -> Tensor<B, 2> {
    let p = a.clone().exp();
    let zero = p.clone().equal_elem(0.0);
    let terms = (p * (a - b)).mask_fill(zero, 0.0);
    let [batch, seq, _] = terms.dims();
    terms.sum_dim(2).reshape([batch, seq])
}

/// `log(w_a·exp(a) + w_b·exp(b))`, element-wise and stable.
fn log_mix<B: Backend>(a: Tensor<B, 3>, wa: f64, b: Tensor<B, 3>, wb: f64) -> Tensor<B, 3> {
    let a = a + wa.ln();
    let b = b + wb.ln();
    let m = a.clone().max_pair(b.clone());
    m.clone() + ((a - m.clone()).exp() + (b - m).exp()).log()
}

/// Per-position divergence `τ²·D(p_T, p_S)` between teacher and student logits
/// `[batch, seq, vocab]` at temperature `τ`; `mask` `[batch, seq]` (1 = counts).
///
/// The `τ²` factor keeps the gradient's scale independent of τ (Hinton et al. 2015). The
/// teacher's logits are detached: no gradient flows into the teacher. Computed from
/// log-softmax values throughout (no probability is rounded to 0 and then logged), so it is
/// stable for large logits and large vocabularies.
pub fn divergence<B: Backend>(
    student_logits: Tensor<B, 3>,
    teacher_logits: Tensor<B, 3>,
    temperature: f64,
    kind: Divergence,
    mask: Option<Tensor<B, 2, Int>>,
) -> Result<TokenLoss<B>, KdLossError> {
    check_range(
        "temperature",
        temperature,
        temperature > 0.0,
        "a finite number > 0",
    )?;
    check_shape(
        "student and teacher logits",
        &student_logits.dims(),
        &teacher_logits.dims(),
    )?;
    if kind == Divergence::ForwardKl {
        // One fused pass per row (and one backward), no [batch, seq, vocab] intermediate.
        let [batch, seq, vocab] = student_logits.dims();
        let values = fused_ops::forward_kl(
            student_logits.reshape([batch * seq, vocab]),
            teacher_logits.detach().reshape([batch * seq, vocab]),
            temperature as f32,
        )
        .reshape([batch, seq]);
        return Ok(TokenLoss::new(values * (temperature * temperature), mask));
    }
    let ls = log_softmax(student_logits / temperature, 2);
    let lt = log_softmax(teacher_logits.detach() / temperature, 2);
    let values = match kind {
        Divergence::ForwardKl => kl_from_logs(lt, ls),
        Divergence::ReverseKl => kl_from_logs(ls, lt),
        Divergence::Jsd { beta } => {
            check_range("beta", beta, beta > 0.0 && beta < 1.0, "a number in (0, 1)")?;
            let lm = log_mix(lt.clone(), beta, ls.clone(), 1.0 - beta);
            kl_from_logs(lt, lm.clone()) * beta + kl_from_logs(ls, lm) * (1.0 - beta)
        }
    };
    Ok(TokenLoss::new(values * (temperature * temperature), mask))
}
