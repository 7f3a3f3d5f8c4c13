//! Forward KL divergence between a teacher's and a student's softened distributions, fused.
//!
//! `KL(p_T ‖ p_S)` with `p = softmax(logits/τ)`, per row, written without any `[rows, vocab]`
//! intermediate: `Σ_v p_T,v·(t_v − s_v)/τ − lse_T + lse_S`, where `lse` is the log-sum-exp of
//! the scaled logits. The gradient with respect to the student's logits is
//! `(p_S − p_T)/τ`, one pass.

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorPrimitive};

use crate::cpu::{LANES, RowKernel, exp, exp_sum, par_rows, row_max};
use crate::dispatch::autodiff_dispatch;
use crate::host::{HostF32, flex_f32};

/// Per-row `KL(softmax(teacher/τ) ‖ softmax(student/τ))`, `[rows]`, of logits `[rows, vocab]`.
///
/// Only the student receives a gradient: the teacher's logits are treated as constants whether
/// or not they are tracked (detach them, as distillation does). Values agree with
/// `Σ exp(lt)·(lt − ls)` on burn's `log_softmax` to float rounding.
///
/// # Panics
/// If the shapes differ or `temperature` is not a finite number > 0.
pub fn forward_kl<B: Backend>(
    student: Tensor<B, 2>,
    teacher: Tensor<B, 2>,
    temperature: f32,
) -> Tensor<B, 1> {
    assert_eq!(student.dims(), teacher.dims(), "forward_kl: logits shapes");
    assert!(
        temperature.is_finite() && temperature > 0.0,
        "forward_kl: temperature {temperature} is not a finite number > 0"
    );
    autodiff_dispatch!(B, kl_autodiff, (student, teacher, temperature), {
        let teacher = teacher.detach();
        let (kl, _, _) = forward::<B>(
            student.into_primitive().tensor(),
            teacher.into_primitive().tensor(),
            temperature,
        );
        Tensor::from_primitive(TensorPrimitive::Float(kl))
    })
}

#[derive(Debug)]
struct ForwardKl;

/// Student and teacher logits, their rows' log-sum-exp, and τ.
type KlState<B> = (
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    f32,
);

impl<B: Backend> Backward<B, 1> for ForwardKl {
    type State = KlState<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (s, t, lse_s, lse_t, tau) = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            backward::<B>(s, t, lse_s, lse_t, grad, tau)
        });
    }
}

fn kl_autodiff<B: Backend>(
    student: Tensor<Autodiff<B>, 2>,
    teacher: Tensor<Autodiff<B>, 2>,
    temperature: f32,
) -> Tensor<Autodiff<B>, 1> {
    let s = student.into_primitive().tensor();
    let t = teacher.into_primitive().tensor().primitive;
    let (kl, lse_s, lse_t) = forward::<B>(s.primitive.clone(), t.clone(), temperature);
    let out = match ForwardKl
        .prepare::<NoCheckpointing>([s.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((s.primitive, t, lse_s, lse_t, temperature), kl),
        OpsKind::UnTracked(prep) => prep.finish(kl),
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

/// `log Σ exp(row/τ)`.
#[inline(always)]
fn scaled_lse(row: &[f32], inv_tau: f32) -> f32 {
    let m = row_max(row) * inv_tau;
    m + exp_sum(row, inv_tau, m).ln()
}

/// Row `r` of the forward: `[kl, lse_s, lse_t]`.
struct ForwardRows<'a> {
    s: &'a [f32],
    t: &'a [f32],
    vocab: usize,
    inv_tau: f32,
}

impl RowKernel for ForwardRows<'_> {
    #[inline(always)]
    fn row(&self, r: usize, out: &mut [f32]) {
        let (v, k) = (self.vocab, self.inv_tau);
        let (s, t) = (&self.s[r * v..(r + 1) * v], &self.t[r * v..(r + 1) * v]);
        let (lse_s, lse_t) = (scaled_lse(s, k), scaled_lse(t, k));
        let mut acc = [0.0f32; LANES];
        let (cs, ct) = (s.chunks_exact(LANES), t.chunks_exact(LANES));
        let (ts, tt) = (cs.remainder(), ct.remainder());
        for (a, b) in cs.zip(ct) {
            for i in 0..LANES {
                acc[i] += exp(b[i] * k - lse_t) * (b[i] - a[i]);
            }
        }
        let mut cross: f32 = acc.iter().sum();
        for (a, b) in ts.iter().zip(tt) {
            cross += exp(b * k - lse_t) * (b - a);
        }
        out[0] = cross * k - lse_t + lse_s;
        out[1] = lse_s;
        out[2] = lse_t;
    }
}

/// `(kl, lse_s, lse_t)`, each `[rows]`.
fn forward<B: Backend>(
    s: FloatTensor<B>,
    t: FloatTensor<B>,
    tau: f32,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    if let (Some(sh), Some(th)) = (HostF32::of(&s), HostF32::of(&t)) {
        let [rows, vocab] = sh.shape()[..] else {
            unreachable!("two dimensions")
        };
        let mut out = vec![0.0f32; rows * 3];
        let kernel = ForwardRows {
            s: sh.values(),
            t: th.values(),
            vocab,
            inv_tau: 1.0 / tau,
        };
        par_rows(&mut out, 3, 3 * vocab, &kernel);
        let column = |i: usize| out.chunks(3).map(|o| o[i]).collect::<Vec<_>>();
        return (
            flex_f32(column(0), &[rows]),
            flex_f32(column(1), &[rows]),
            flex_f32(column(2), &[rows]),
        );
    }
    let s = Tensor::<B, 2>::from_primitive(TensorPrimitive::Float(s)) / tau as f64;
    let t = Tensor::<B, 2>::from_primitive(TensorPrimitive::Float(t)) / tau as f64;
    let [rows, _] = s.dims();
    let lse = |x: Tensor<B, 2>| {
        let m = x.clone().max_dim(1);
        ((x - m.clone()).exp().sum_dim(1).log() + m).reshape([rows])
    };
    let (lse_s, lse_t) = (lse(s.clone()), lse(t.clone()));
    let (ls, lt) = (log_softmax(s, 1), log_softmax(t, 1));
    let kl = (lt.clone().exp() * (lt - ls)).sum_dim(1).reshape([rows]);
    (
        kl.into_primitive().tensor(),
        lse_s.into_primitive().tensor(),
        lse_t.into_primitive().tensor(),
    )
}

/// Row `r` of the student's gradient: `g·(p_S − p_T)/τ`.
struct BackwardRows<'a> {
    s: &'a [f32],
    t: &'a [f32],
    lse_s: &'a [f32],
    lse_t: &'a [f32],
    grad: &'a [f32],
    inv_tau: f32,
}

impl RowKernel for BackwardRows<'_> {
    #[inline(always)]
    fn row(&self, r: usize, out: &mut [f32]) {
        let v = out.len();
        let k = self.inv_tau;
        let (s, t) = (&self.s[r * v..(r + 1) * v], &self.t[r * v..(r + 1) * v]);
        let (ls, lt, g) = (self.lse_s[r], self.lse_t[r], self.grad[r] * k);
        for ((o, &a), &b) in out.iter_mut().zip(s).zip(t) {
            *o = g * (exp(a * k - ls) - exp(b * k - lt));
        }
    }
}

fn backward<B: Backend>(
    s: FloatTensor<B>,
    t: FloatTensor<B>,
    lse_s: FloatTensor<B>,
    lse_t: FloatTensor<B>,
    grad: FloatTensor<B>,
    tau: f32,
) -> FloatTensor<B> {
    if let (Some(sh), Some(th), Some(ls), Some(lt), Some(g)) = (
        HostF32::of(&s),
        HostF32::of(&t),
        HostF32::of(&lse_s),
        HostF32::of(&lse_t),
        HostF32::of(&grad),
    ) {
        let shape = sh.shape();
        let mut out = vec![0.0f32; sh.values().len()];
        let kernel = BackwardRows {
            s: sh.values(),
            t: th.values(),
            lse_s: ls.values(),
            lse_t: lt.values(),
            grad: g.values(),
            inv_tau: 1.0 / tau,
        };
        par_rows(&mut out, shape[1], 2 * shape[1], &kernel);
        return flex_f32(out, &shape);
    }
    let s = Tensor::<B, 2>::from_primitive(TensorPrimitive::Float(s));
    let [rows, _] = s.dims();
    let t = Tensor::<B, 2>::from_primitive(TensorPrimitive::Float(t));
    let col = |p: FloatTensor<B>| {
        Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(p)).reshape([rows, 1])
    };
    let (ls, lt, g) = (col(lse_s), col(lse_t), col(grad));
    let k = 1.0 / tau as f64;
    (((s * k - ls).exp() - (t * k - lt).exp()) * g * k)
        .into_primitive()
        .tensor()
}
