//! Outer-product factors after the backward pass: Gram matrices, per-example gradients,
//! squared norms and the clipped weighted sums.

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Bool, Int, Tensor};

use super::tape::*;
use super::{Inner, Probe};

/// A resolved outer-product factor.
pub(crate) enum Factor<IB: Backend> {
    Dense(Tensor<IB, 3>),
    Ids(Tensor<IB, 2, Int>),
}

pub(crate) enum Resolved<IB: Backend> {
    Outer {
        rows: usize,
        cols: usize,
        a: Factor<IB>,
        b: Tensor<IB, 3>,
    },
    /// Per-example gradients `[batch, n]`.
    Direct(Tensor<IB, 2>),
}

pub(crate) fn resolve_side<B: AutodiffBackend>(
    side: Side<B>,
    grads: &B::Gradients,
) -> Factor<Inner<B>> {
    match side {
        Side::Act(x) => Factor::Dense(x),
        Side::Ids(ids) => Factor::Ids(ids),
        Side::Probe(p) => Factor::Dense(probe_grad(&p, grads)),
    }
}

pub(crate) fn probe_grad<B: AutodiffBackend>(
    p: &Probe<B>,
    grads: &B::Gradients,
) -> Tensor<Inner<B>, 3> {
    p.grad_or_zeros(grads)
}

pub(crate) fn dense<IB: Backend>(f: Factor<IB>) -> Tensor<IB, 3> {
    match f {
        Factor::Dense(t) => t,
        Factor::Ids(_) => unreachable!("the b side of a record is always dense"),
    }
}

/// `G[b, t, s] = a1_t · a2_s` for each example `b`.
pub(crate) fn gram<IB: Backend>(a1: &Factor<IB>, a2: &Factor<IB>) -> Tensor<IB, 3> {
    match (a1, a2) {
        (Factor::Dense(x), Factor::Dense(y)) => x.clone().matmul(y.clone().swap_dims(1, 2)),
        (Factor::Ids(i), Factor::Ids(j)) => {
            let [b, t1] = i.dims();
            let t2 = j.dims()[1];
            let i = i.clone().reshape([b, t1, 1]).expand([b, t1, t2]);
            let j = j.clone().reshape([b, 1, t2]).expand([b, t1, t2]);
            i.equal(j).float()
        }
        (Factor::Ids(i), Factor::Dense(y)) => {
            // one-hot(i_t) · y_s = y[s, i_t]
            let [b, t1] = i.dims();
            let t2 = y.dims()[1];
            let index = i.clone().reshape([b, 1, t1]).expand([b, t2, t1]);
            y.clone().gather(2, index).swap_dims(1, 2)
        }
        (Factor::Dense(_), Factor::Ids(_)) => gram(a2, a1).swap_dims(1, 2),
    }
}

/// `Σ_{t,s} x[b,t,s]·y[b,t,s]` → `[batch]`.
pub(crate) fn frobenius<IB: Backend>(x: Tensor<IB, 3>, y: Tensor<IB, 3>) -> Tensor<IB, 1> {
    let b = x.dims()[0];
    (x * y).sum_dims(&[1, 2]).reshape([b])
}

/// Most elements a parameter's materialised per-example gradients may have (256 MiB of f32).
const MAX_PER_EXAMPLE_ELEMENTS: usize = 1 << 26;

/// The per-example gradients `[batch, rows·cols]` of a parameter whose records are all outer
/// products, when holding them takes no more memory than the records' dense factors (which
/// they replace) and at most [`MAX_PER_EXAMPLE_ELEMENTS`]; `None` otherwise (Gram matrices).
///
/// Forming them costs one `T·rows·cols` product per record and example, which the
/// book-keeping sum would spend anyway; the clipped sum then reuses them (a weighted sum over
/// the batch) instead of multiplying the factors again.
pub(crate) fn per_example<IB: Backend>(records: &[Resolved<IB>]) -> Option<Tensor<IB, 2>> {
    let mut shape = None;
    let mut factors = 0usize;
    for r in records {
        let Resolved::Outer { rows, cols, a, b } = r else {
            return None;
        };
        if shape.is_some_and(|s| s != (*rows, *cols)) {
            return None;
        }
        shape = Some((*rows, *cols));
        factors += b.shape().num_elements();
        if let Factor::Dense(a) = a {
            factors += a.shape().num_elements();
        }
    }
    let (rows, cols) = shape?;
    let Resolved::Outer { b, .. } = &records[0] else {
        return None;
    };
    let batch = b.dims()[0];
    let elements = batch * rows * cols;
    if elements > factors || elements > MAX_PER_EXAMPLE_ELEMENTS {
        return None;
    }
    // Dense records first (one batched product each), then the embedding records
    // scatter-added into their sum: no zero table unless every record is an embedding.
    let device = b.device();
    let mut total: Option<Tensor<IB, 3>> = None;
    for r in records {
        if let Resolved::Outer {
            a: Factor::Dense(a),
            b,
            ..
        } = r
        {
            let per = a.clone().swap_dims(1, 2).matmul(b.clone());
            total = Some(match total.take() {
                Some(t) => t + per,
                None => per,
            });
        }
    }
    let mut stacked = total
        .unwrap_or_else(|| Tensor::zeros([batch, rows, cols], &device))
        .reshape([batch * rows, cols]);
    for r in records {
        if let Resolved::Outer {
            a: Factor::Ids(ids),
            b,
            ..
        } = r
        {
            // Row `ids[e, t]` of example `e`'s table gets `b[e, t]`; the examples' tables are
            // stacked as `[batch·rows, cols]`.
            let t = ids.dims()[1];
            let offsets = Tensor::<IB, 1, Int>::arange(0..batch as i64, &device)
                .mul_scalar(rows as i64)
                .reshape([batch, 1]);
            let index = (ids.clone() + offsets).reshape([batch * t]);
            stacked =
                fused_ops::scatter_add_rows(stacked, index, b.clone().reshape([batch * t, cols]));
        }
    }
    Some(stacked.reshape([batch, rows * cols]))
}

/// Squared per-example gradient norm `[batch]` of one parameter from its records.
pub(crate) fn squared_norm<IB: Backend>(records: &[Resolved<IB>]) -> Tensor<IB, 1> {
    let mut total: Option<Tensor<IB, 1>> = None;
    let mut add = |t: Tensor<IB, 1>| {
        total = Some(match total.take() {
            Some(s) => s + t,
            None => t,
        })
    };
    let mut direct: Option<Tensor<IB, 2>> = None;
    for (k, r) in records.iter().enumerate() {
        match r {
            Resolved::Direct(g) => {
                direct = Some(match direct.take() {
                    Some(s) => s + g.clone(),
                    None => g.clone(),
                })
            }
            Resolved::Outer { a, b, .. } => {
                for r2 in &records[k..] {
                    if let Resolved::Outer { a: a2, b: b2, .. } = r2 {
                        let same = std::ptr::eq(r, r2);
                        let term =
                            frobenius(gram(a, a2), b.clone().matmul(b2.clone().swap_dims(1, 2)));
                        add(if same { term } else { term * 2.0 });
                    }
                }
            }
        }
    }
    if let Some(g) = direct {
        let batch = g.dims()[0];
        add(fused_ops::row_sum_squares(g).reshape([batch]));
    }
    total.expect("a parameter group has at least one record")
}

/// Zeroes the rows (examples) of `x` that `excluded` marks: an excluded example's factors
/// may hold NaN or ±∞, and `0 · NaN` would poison the sum, so they are replaced, not scaled.
pub(crate) fn drop_rows<IB: Backend, const D: usize>(
    x: Tensor<IB, D>,
    excluded: Option<&Tensor<IB, 1, Bool>>,
) -> Tensor<IB, D> {
    match excluded {
        None => x,
        Some(mask) => {
            let dims = x.dims();
            let mut shape = [1; D];
            shape[0] = dims[0];
            let mask = mask.clone().reshape(shape).expand(dims);
            x.mask_fill(mask, 0.0)
        }
    }
}

/// `Σ_b c_b · grad_b` of one record, as a flat `[rows·cols]` or `[n]` tensor; the examples
/// marked in `excluded` (factor 0) are left out.
pub(crate) fn weighted<IB: Backend>(
    record: Resolved<IB>,
    c: &Tensor<IB, 1>,
    excluded: Option<&Tensor<IB, 1, Bool>>,
) -> Tensor<IB, 1> {
    let batch = c.dims()[0];
    match record {
        Resolved::Direct(g) => c
            .clone()
            .reshape([1, batch])
            .matmul(drop_rows(g, excluded))
            .flatten(0, 1),
        Resolved::Outer { rows, cols, a, b } => {
            let b = drop_rows(b, excluded);
            let a = match a {
                Factor::Dense(a) => Factor::Dense(drop_rows(a, excluded)),
                ids => ids,
            };
            let [_, t, _] = b.dims();
            let scaled = (b * c.clone().reshape([batch, 1, 1])).reshape([batch * t, cols]);
            match a {
                Factor::Dense(a) => a
                    .reshape([batch * t, rows])
                    .transpose()
                    .matmul(scaled)
                    .flatten(0, 1),
                Factor::Ids(ids) => fused_ops::scatter_add_rows(
                    Tensor::<IB, 2>::zeros([rows, cols], &scaled.device()),
                    ids.reshape([batch * t]),
                    scaled,
                )
                .flatten(0, 1),
            }
        }
    }
}
