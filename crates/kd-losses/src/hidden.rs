//! Hidden-state MSE between aligned student and teacher layers.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{KdLossError, check_shape};
use crate::token_loss::TokenLoss;

/// Which student hidden state is pulled towards which teacher hidden state. Indices are into
/// Hugging Face's `hidden_states` (0 = embeddings, `i` = output of block `i`, the last one
/// after the final LayerNorm).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerMap {
    /// `(student index, teacher index)` pairs.
    pub pairs: Vec<(usize, usize)>,
}

impl LayerMap {
    /// The last hidden state only (the paper's choice when widths match).
    pub fn last_only(student_layers: usize, teacher_layers: usize) -> Self {
        Self {
            pairs: vec![(student_layers, teacher_layers)],
        }
    }

    /// Student block `i` (1..=n_s) ↔ teacher block `round(i·n_t/n_s)`: evenly spaced, the
    /// last to the last. Needs `0 < n_s ≤ n_t`.
    pub fn evenly_spaced(
        student_layers: usize,
        teacher_layers: usize,
    ) -> Result<Self, KdLossError> {
        if student_layers == 0 || student_layers > teacher_layers {
            return Err(KdLossError::InvalidParameter {
                field: "student_layers",
                value: student_layers.to_string(),
                expected: "an integer in [1, teacher_layers]",
            });
        }
        let pairs = (1..=student_layers)
            .map(|i| {
                (
                    i,
                    (i * teacher_layers + student_layers / 2) / student_layers,
                )
            })
            .collect();
        Ok(Self { pairs })
    }
}

/// Learned linear maps from the student's width to the teacher's, one per layer pair (when
/// the widths are equal, no projection is needed: pass `None` to [`hidden_mse`]).
#[derive(Module, Debug)]
pub struct HiddenProjection<B: Backend> {
    /// One `[d_student, d_teacher]` Linear per pair of the [`LayerMap`].
    pub layers: Vec<Linear<B>>,
}

impl<B: Backend> HiddenProjection<B> {
    /// Fresh projections for `pairs` pairs.
    pub fn new(
        pairs: usize,
        student_width: usize,
        teacher_width: usize,
        device: &B::Device,
    ) -> Self {
        Self {
            layers: (0..pairs)
                .map(|_| LinearConfig::new(student_width, teacher_width).init(device))
                .collect(),
        }
    }
}

/// Per-position MSE `mean_d (P(h_S) − h_T)²` averaged over the pairs of `map`; student and
/// teacher hidden states `[batch, seq, width]`; the teacher's are detached; `mask`
/// `[batch, seq]` (1 = counts, the attention mask).
pub fn hidden_mse<B: Backend>(
    student: &[Tensor<B, 3>],
    teacher: &[Tensor<B, 3>],
    map: &LayerMap,
    projection: Option<&HiddenProjection<B>>,
    mask: Option<Tensor<B, 2, Int>>,
) -> Result<TokenLoss<B>, KdLossError> {
    if map.pairs.is_empty() {
        return Err(KdLossError::InvalidParameter {
            field: "layer_map",
            value: "[]".into(),
            expected: "at least one (student, teacher) pair",
        });
    }
    if let Some(p) = projection
        && p.layers.len() != map.pairs.len()
    {
        return Err(KdLossError::InvalidParameter {
            field: "projection",
            value: format!("{} layers", p.layers.len()),
            expected: "one projection per layer pair",
        });
    }
    let mut total: Option<Tensor<B, 2>> = None;
    for (k, &(s, t)) in map.pairs.iter().enumerate() {
        let (Some(hs), Some(ht)) = (student.get(s), teacher.get(t)) else {
            return Err(KdLossError::InvalidParameter {
                field: "layer_map",
                value: format!("({s}, {t})"),
                expected: "indices below the number of student and teacher hidden states",
            });
        };
        let hs = match projection {
            Some(p) => p.layers[k].forward(hs.clone()),
            None => hs.clone(),
        };
        check_shape(
            "projected student and teacher hidden states",
            &hs.dims(),
            &ht.dims(),
        )?;
        let [batch, seq, _] = hs.dims();
        let mse = (hs - ht.clone().detach())
            .powi_scalar(2)
            .mean_dim(2)
            .reshape([batch, seq]);
        total = Some(match total {
            Some(t) => t + mse,
            None => mse,
        });
    }
    let total = total.expect("at least one pair") / map.pairs.len() as f64;
    Ok(TokenLoss::new(total, mask))
}
