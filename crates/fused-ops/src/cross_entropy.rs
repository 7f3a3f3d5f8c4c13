//! Token cross-entropy `−log softmax(logits)[target]`, fused.
//!
//! Forward: one pass per row for the maximum, one for `Σ exp`, no `[rows, vocab]` tensor
//! written. Backward: one pass writing `g·(softmax − onehot)`. burn's `log_softmax` + `gather`
//! writes four `[rows, vocab]` tensors forward and as many backward, each in its own
//! single-threaded pass with a libm `exp` per element.

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::tensor::backend::Backend;
use burn::tensor::ops::{FloatTensor, IntTensor};
use burn::tensor::{Int, Tensor, TensorPrimitive};

use crate::cpu::{RowKernel, exp, exp_sum, par_rows, row_max};
use crate::dispatch::autodiff_dispatch;
use crate::host::{HostF32, flex_f32, host_indices};

/// Per-row negative log-likelihood `−log softmax(logits[r])[targets[r]]`, `[rows]`, of
/// `logits` `[rows, vocab]`: the same values as burn's
/// `-log_softmax(logits, 1).gather(1, targets)` (to float rounding), with one fused backward.
///
/// # Panics
/// If a target is outside `0..vocab` (as burn's `gather`), or the shapes disagree.
pub fn token_nll<B: Backend>(logits: Tensor<B, 2>, targets: Tensor<B, 1, Int>) -> Tensor<B, 1> {
    let [rows, _] = logits.dims();
    assert_eq!(targets.dims(), [rows], "token_nll: one target per row");
    autodiff_dispatch!(B, token_nll_autodiff, (logits, targets), {
        let (nll, _) = forward::<B>(logits.into_primitive().tensor(), targets.into_primitive());
        Tensor::from_primitive(TensorPrimitive::Float(nll))
    })
}

#[derive(Debug)]
struct TokenNll;

impl<B: Backend> Backward<B, 1> for TokenNll {
    /// Logits, targets and the rows' log-sum-exp.
    type State = (FloatTensor<B>, IntTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (logits, targets, lse) = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            backward::<B>(logits, targets, lse, grad)
        });
    }
}

fn token_nll_autodiff<B: Backend>(
    logits: Tensor<Autodiff<B>, 2>,
    targets: Tensor<Autodiff<B>, 1, Int>,
) -> Tensor<Autodiff<B>, 1> {
    let logits = logits.into_primitive().tensor();
    let targets = targets.into_primitive();
    let (nll, lse) = forward::<B>(logits.primitive.clone(), targets.clone());
    let out = match TokenNll
        .prepare::<NoCheckpointing>([logits.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((logits.primitive, targets, lse), nll),
        OpsKind::UnTracked(prep) => prep.finish(nll),
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

fn target_index(t: i64, vocab: usize) -> usize {
    assert!(
        (0..vocab as i64).contains(&t),
        "token_nll: target {t} outside 0..{vocab}"
    );
    t as usize
}

/// Row `r` of the forward: `[nll, lse]`.
struct ForwardRows<'a> {
    logits: &'a [f32],
    targets: &'a [i64],
    vocab: usize,
}

impl RowKernel for ForwardRows<'_> {
    #[inline(always)]
    fn row(&self, r: usize, out: &mut [f32]) {
        let row = &self.logits[r * self.vocab..(r + 1) * self.vocab];
        let m = row_max(row);
        let lse = m + exp_sum(row, 1.0, m).ln();
        out[0] = lse - row[target_index(self.targets[r], self.vocab)];
        out[1] = lse;
    }
}

/// Row `r` of the logits' gradient.
struct BackwardRows<'a> {
    logits: &'a [f32],
    targets: &'a [i64],
    lse: &'a [f32],
    grad: &'a [f32],
    vocab: usize,
}

impl RowKernel for BackwardRows<'_> {
    #[inline(always)]
    fn row(&self, r: usize, out: &mut [f32]) {
        let row = &self.logits[r * self.vocab..(r + 1) * self.vocab];
        let (shift, scale) = (self.lse[r], self.grad[r]);
        for (d, &v) in out.iter_mut().zip(row) {
            *d = scale * exp(v - shift);
        }
        out[target_index(self.targets[r], self.vocab)] -= scale;
    }
}

/// `(nll, lse)`, both `[rows]`.
fn forward<B: Backend>(
    logits: FloatTensor<B>,
    targets: IntTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>) {
    if let (Some(x), Some(t)) = (HostF32::of(&logits), host_indices(&targets)) {
        let [rows, vocab] = x.shape()[..] else {
            unreachable!("two dimensions")
        };
        let mut out = vec![0.0f32; rows * 2];
        let kernel = ForwardRows {
            logits: x.values(),
            targets: &t,
            vocab,
        };
        par_rows(&mut out, 2, 2 * vocab, &kernel);
        let (nll, lse): (Vec<f32>, Vec<f32>) = out.chunks(2).map(|o| (o[0], o[1])).unzip();
        return (flex_f32(nll, &[rows]), flex_f32(lse, &[rows]));
    }
    // Generic form on the backend's own operations.
    let x = Tensor::<B, 2>::from_primitive(TensorPrimitive::Float(logits));
    let [rows, _] = x.dims();
    let t = Tensor::<B, 1, Int>::from_primitive(targets).reshape([rows, 1]);
    let m = x.clone().max_dim(1);
    let lse = (x.clone() - m.clone()).exp().sum_dim(1).log() + m;
    let nll = (lse.clone() - x.gather(1, t)).reshape([rows]);
    (
        nll.into_primitive().tensor(),
        lse.reshape([rows]).into_primitive().tensor(),
    )
}

/// `grad[r]·(softmax(logits[r]) − onehot(targets[r]))`, `[rows, vocab]`.
fn backward<B: Backend>(
    logits: FloatTensor<B>,
    targets: IntTensor<B>,
    lse: FloatTensor<B>,
    grad: FloatTensor<B>,
) -> FloatTensor<B> {
    if let (Some(x), Some(t), Some(l), Some(g)) = (
        HostF32::of(&logits),
        host_indices(&targets),
        HostF32::of(&lse),
        HostF32::of(&grad),
    ) {
        let shape = x.shape();
        let vocab = shape[1];
        let mut out = vec![0.0f32; x.values().len()];
        let kernel = BackwardRows {
            logits: x.values(),
            targets: &t,
            lse: l.values(),
            grad: g.values(),
            vocab,
        };
        par_rows(&mut out, vocab, 2 * vocab, &kernel);
        return flex_f32(out, &shape);
    }
    let x = Tensor::<B, 2>::from_primitive(TensorPrimitive::Float(logits));
    let [rows, _] = x.dims();
    let g = Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(grad)).reshape([rows, 1]);
    let lse = Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(lse)).reshape([rows, 1]);
    let t = Tensor::<B, 1, Int>::from_primitive(targets).reshape([rows, 1]);
    let d = (x - lse).exp() * g.clone();
    d.scatter(1, t, g.neg(), burn::tensor::IndexingUpdateOp::Add)
        .into_primitive()
        .tensor()
}
