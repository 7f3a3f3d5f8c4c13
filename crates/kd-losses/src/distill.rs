//! The combined DistilDP loss `λ·KL + (1−λ)·CE + α·MSE`.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

use crate::cross_entropy::cross_entropy;
use crate::divergence::{Divergence, divergence};
use crate::error::{KdLossError, check_range};
use crate::hidden::{HiddenProjection, LayerMap, hidden_mse};
use crate::token_loss::TokenLoss;

fn default_lambda() -> f64 {
    0.4
}
fn default_temperature() -> f64 {
    1.0
}

/// Weights of the distillation loss (defaults as in the DistilDP paper: λ = 0.4, τ = 1, no
/// hidden-state term).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistillConfig {
    /// Weight λ of the divergence term; `1 − λ` goes to the cross-entropy. In [0, 1].
    #[serde(default = "default_lambda")]
    pub lambda: f64,
    /// Temperature τ of the divergence (> 0); the divergence is scaled by τ².
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// Weight α of the hidden-state MSE (>= 0; 0 = off).
    #[serde(default)]
    pub alpha: f64,
    /// The divergence (forward KL by default).
    #[serde(default)]
    pub divergence: Divergence,
    /// Label smoothing ε of the cross-entropy, in [0, 1) (default 0).
    #[serde(default)]
    pub label_smoothing: f64,
}

impl Default for DistillConfig {
    fn default() -> Self {
        Self {
            lambda: default_lambda(),
            temperature: default_temperature(),
            alpha: 0.0,
            divergence: Divergence::ForwardKl,
            label_smoothing: 0.0,
        }
    }
}

/// Hidden states for the MSE term (Hugging Face's `hidden_states` of each model).
#[derive(Debug)]
pub struct HiddenStates<'a, B: Backend> {
    /// The student's hidden states.
    pub student: &'a [Tensor<B, 3>],
    /// The teacher's hidden states.
    pub teacher: &'a [Tensor<B, 3>],
    /// Which pairs to align.
    pub map: &'a LayerMap,
    /// Projections when the widths differ.
    pub projection: Option<&'a HiddenProjection<B>>,
}

/// The terms of one batch, each a per-token quantity over real tokens.
#[derive(Debug, Clone)]
pub struct DistillTerms<B: Backend> {
    /// Divergence per predicted position.
    pub divergence: TokenLoss<B>,
    /// Cross-entropy per predicted position.
    pub cross_entropy: TokenLoss<B>,
    /// Hidden-state MSE per input position (when α > 0).
    pub hidden: Option<TokenLoss<B>>,
    lambda: f64,
    alpha: f64,
}

impl<B: Backend> DistillTerms<B> {
    /// `λ·KL + (1−λ)·CE + α·MSE`, each a per-token mean over the batch's real tokens `[1]`.
    pub fn loss(&self) -> Tensor<B, 1> {
        let mut total =
            self.divergence.mean() * self.lambda + self.cross_entropy.mean() * (1.0 - self.lambda);
        if let Some(h) = &self.hidden {
            total = total + h.mean() * self.alpha;
        }
        total
    }

    /// The same combination per example `[batch]` (each term a mean over that example's real
    /// tokens): the per-example losses DP-SGD clips (the DPKD baseline).
    pub fn per_example(&self) -> Tensor<B, 1> {
        let mut total = self.divergence.per_example() * self.lambda
            + self.cross_entropy.per_example() * (1.0 - self.lambda);
        if let Some(h) = &self.hidden {
            total = total + h.per_example() * self.alpha;
        }
        total
    }
}

/// The distillation loss of a causal LM batch: position `t`'s logits predict `tokens[t+1]`
/// (the shift is done here), a prediction counts when both positions are real tokens
/// (`attention_mask` 1; `None`: all), the divergence compares the student's and teacher's
/// next-token distributions, the cross-entropy the student's against the actual next token,
/// and the optional MSE the aligned hidden states at every real position.
pub fn distillation_loss<B: Backend>(
    config: &DistillConfig,
    student_logits: Tensor<B, 3>,
    teacher_logits: Tensor<B, 3>,
    tokens: Tensor<B, 2, Int>,
    attention_mask: Option<Tensor<B, 2, Int>>,
    hidden: Option<HiddenStates<'_, B>>,
) -> Result<DistillTerms<B>, KdLossError> {
    check_range(
        "lambda",
        config.lambda,
        (0.0..=1.0).contains(&config.lambda),
        "a number in [0, 1]",
    )?;
    check_range(
        "alpha",
        config.alpha,
        config.alpha >= 0.0,
        "a finite number >= 0",
    )?;
    let [_, seq, _] = student_logits.dims();
    if seq < 2 {
        return Err(KdLossError::InvalidParameter {
            field: "sequence length",
            value: seq.to_string(),
            expected: "at least 2 tokens (one prediction)",
        });
    }
    let n = seq - 1;
    let predicted = attention_mask
        .clone()
        .map(|m| m.clone().narrow(1, 0, n) * m.narrow(1, 1, n));
    let targets = tokens.narrow(1, 1, n);
    let student = student_logits.narrow(1, 0, n);
    let teacher = teacher_logits.narrow(1, 0, n);
    let div = divergence(
        student.clone(),
        teacher,
        config.temperature,
        config.divergence,
        predicted.clone(),
    )?;
    let ce = cross_entropy(student, targets, predicted, config.label_smoothing)?;
    let hidden = match hidden {
        Some(h) if config.alpha > 0.0 => Some(hidden_mse(
            h.student,
            h.teacher,
            h.map,
            h.projection,
            attention_mask,
        )?),
        _ => None,
    };
    Ok(DistillTerms {
        divergence: div,
        cross_entropy: ce,
        hidden,
        lambda: config.lambda,
        alpha: config.alpha,
    })
}
