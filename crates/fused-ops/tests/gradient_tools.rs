//! `capture_grad`, `row_sum_squares` and `scatter_add_rows`: the pieces of ghost clipping,
//! checked against exact values and burn's own operations on both CPU backends, with and
//! without the fused dispatch.

use burn::backend::autodiff::checkpoint::strategy::BalancedCheckpointing;
use burn::backend::{Autodiff, Flex, NdArray};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Distribution, IndexingUpdateOp, Int, Tensor};

fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what}[{i}]: {g} vs {w}"
        );
    }
}

/// `h = w·2 + 1` (tracked through `w`), then `loss = Σ h² + Σ 3·h` with `h` used twice: the
/// captured gradient must be `2h + 3` (both uses summed), and `w`'s gradient `2·(2h + 3)`
/// exactly as without the capture.
fn capture_case<B: AutodiffBackend>(expect_node: bool) {
    let device = Default::default();
    let w0 = Tensor::<B, 2>::random([3, 5], Distribution::Uniform(-1.0, 1.0), &device);
    let w = w0.clone().require_grad();
    let (h, probe) = fused_ops::capture_grad(w.clone() * 2.0 + 1.0);
    assert_eq!(probe.is_node(), expect_node);
    assert_eq!(probe.dims(), [3, 5]);
    let loss = (h.clone() * h.clone()).sum() + (h * 3.0).sum();
    let grads = loss.backward();

    let h_exact: Vec<f32> = values(w0.clone()).iter().map(|v| v * 2.0 + 1.0).collect();
    let dh: Vec<f32> = h_exact.iter().map(|h| 2.0 * h + 3.0).collect();
    let dw: Vec<f32> = dh.iter().map(|d| 2.0 * d).collect();
    assert_close("captured", &values(probe.grad(&grads).unwrap()), &dh, 1e-6);
    assert_close("parent", &values(w.grad(&grads).unwrap()), &dw, 1e-6);
    assert_close(
        "grad_or_zeros",
        &values(probe.grad_or_zeros(&grads)),
        &dh,
        1e-6,
    );
}

#[test]
fn capture_grad_is_the_gradient_and_passes_it_on() {
    capture_case::<Autodiff<Flex>>(true);
    capture_case::<Autodiff<NdArray>>(true);
    // An autodiff backend without the fused dispatch: the zero leaf, same values.
    capture_case::<Autodiff<Flex, BalancedCheckpointing>>(false);
}

fn untracked_case<B: AutodiffBackend>() {
    let device = Default::default();
    // Nothing requires a gradient upstream (a frozen embedding's output): a zero leaf.
    let y = Tensor::<B, 2>::from_floats([[1.0, -2.0], [0.5, 4.0]], &device);
    let (h, probe) = fused_ops::capture_grad(y);
    assert!(!probe.is_node());
    let grads = (h.clone() * h).sum().backward();
    let got = values(probe.grad(&grads).unwrap());
    assert_eq!(got, vec![2.0, -4.0, 1.0, 8.0]);
}

#[test]
fn capture_grad_of_an_untracked_tensor_uses_a_zero_leaf() {
    untracked_case::<Autodiff<Flex>>();
    untracked_case::<Autodiff<NdArray>>();
}

fn unused_case<B: AutodiffBackend>() {
    let device = Default::default();
    let w = Tensor::<B, 1>::from_floats([1.0, 2.0], &device).require_grad();
    let (_h, probe) = fused_ops::capture_grad(w.clone() * 2.0);
    // The loss does not use the captured tensor: no gradient reaches it.
    let grads = (w * 3.0).sum().backward();
    assert!(probe.grad(&grads).is_none());
    assert_eq!(values(probe.grad_or_zeros(&grads)), vec![0.0, 0.0]);
}

#[test]
fn capture_grad_of_an_unused_tensor_is_none() {
    unused_case::<Autodiff<Flex>>();
    unused_case::<Autodiff<NdArray>>();
}

fn sum_squares_case<B: Backend>() {
    let device = Default::default();
    for (rows, cols) in [(1, 1), (3, 17), (16, 5000), (2, 100_000)] {
        let x = Tensor::<B, 2>::random([rows, cols], Distribution::Uniform(-2.0, 2.0), &device);
        let host = values(x.clone());
        let exact: Vec<f32> = host
            .chunks(cols)
            .map(|r| r.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() as f32)
            .collect();
        assert_close(
            "row_sum_squares",
            &values(fused_ops::row_sum_squares(x.clone())),
            &exact,
            1e-5,
        );
        // A transposed (strided) view gives the column norms.
        let xt = x.transpose();
        let col_exact: Vec<f32> = (0..cols)
            .map(|c| {
                (0..rows)
                    .map(|r| (host[r * cols + c] as f64).powi(2))
                    .sum::<f64>() as f32
            })
            .collect();
        assert_close(
            "row_sum_squares of a view",
            &values(fused_ops::row_sum_squares(xt)),
            &col_exact,
            1e-5,
        );
    }
}

#[test]
fn row_sum_squares_matches_the_exact_values() {
    sum_squares_case::<Flex>();
    sum_squares_case::<NdArray>();
}

fn scatter_case<B: Backend>() {
    let device = Default::default();
    let table = Tensor::<B, 2>::random([7, 4], Distribution::Uniform(-1.0, 1.0), &device);
    let index = Tensor::<B, 1, Int>::from_ints([3, 0, 3, 6, 3], &device);
    let rows = Tensor::<B, 2>::random([5, 4], Distribution::Uniform(-1.0, 1.0), &device);
    let want = values(table.clone().select_assign(
        0,
        index.clone(),
        rows.clone(),
        IndexingUpdateOp::Add,
    ));
    let before = values(table.clone());
    // `table` is shared with `keep`: the result must not show through it.
    let keep = table.clone();
    let got = values(fused_ops::scatter_add_rows(
        table,
        index.clone(),
        rows.clone(),
    ));
    assert_close("scatter_add_rows", &got, &want, 1e-6);
    assert_eq!(values(keep), before, "a shared table was written");

    // A table that is a transposed view, and one owned by nobody else.
    let base = Tensor::<B, 2>::random([4, 7], Distribution::Uniform(-1.0, 1.0), &device);
    let view = base.clone().transpose();
    let want =
        values(
            view.clone()
                .select_assign(0, index.clone(), rows.clone(), IndexingUpdateOp::Add),
        );
    let got = values(fused_ops::scatter_add_rows(
        view,
        index.clone(),
        rows.clone(),
    ));
    assert_close("scatter_add_rows into a view", &got, &want, 1e-6);
    let owned = Tensor::<B, 2>::zeros([7, 4], &device);
    let got = values(fused_ops::scatter_add_rows(owned, index, rows.clone()));
    let want = values(Tensor::<B, 2>::zeros([7, 4], &device).select_assign(
        0,
        Tensor::<B, 1, Int>::from_ints([3, 0, 3, 6, 3], &device),
        rows,
        IndexingUpdateOp::Add,
    ));
    assert_close("scatter_add_rows into zeros", &got, &want, 1e-6);
}

#[test]
fn scatter_add_rows_matches_select_assign() {
    scatter_case::<Flex>();
    scatter_case::<NdArray>();
}

#[test]
#[should_panic(expected = "outside a table of 3 rows")]
fn scatter_add_rows_refuses_an_index_outside_the_table() {
    let device = Default::default();
    let _ = fused_ops::scatter_add_rows(
        Tensor::<Flex, 2>::zeros([3, 2], &device),
        Tensor::<Flex, 1, Int>::from_ints([3], &device),
        Tensor::<Flex, 2>::ones([1, 2], &device),
    );
}
