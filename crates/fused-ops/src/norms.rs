//! Squared Euclidean norms of rows, in one pass: the per-example gradient norms of DP-SGD's
//! clipping, where burn would square into a new tensor and then sum it on one thread.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorPrimitive};

use crate::cpu::{RowKernel, dot, par_rows};
use crate::host::{HostF32, flex_f32};

/// `Σ_j x[i, j]²` for every row `i` of `x`: `[rows, cols]` → `[rows]`.
///
/// On burn-flex (`f32`) one row-parallel pass, summed in 16 lanes; elsewhere
/// `x.powi_scalar(2).sum_dim(1)`. No autodiff node: call it on values, not on tracked tensors
/// whose gradient you need (under autodiff it runs the composed form).
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
///
/// let device = Default::default();
/// let x = Tensor::<Flex, 2>::from_floats([[3.0, 4.0], [1.0, -2.0]], &device);
/// let n = fused_ops::row_sum_squares(x).into_data().to_vec::<f32>().unwrap();
/// assert_eq!(n, vec![25.0, 5.0]);
/// ```
pub fn row_sum_squares<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 1> {
    let [rows, cols] = x.dims();
    let prim = x.into_primitive().tensor();
    if let Some(h) = HostF32::of(&prim) {
        let mut out = vec![0.0f32; rows];
        par_rows(
            &mut out,
            1,
            cols,
            &SumSquares {
                x: h.values(),
                cols,
            },
        );
        return Tensor::from_primitive(TensorPrimitive::Float(flex_f32(out, &[rows])));
    }
    Tensor::<B, 2>::from_primitive(TensorPrimitive::Float(prim))
        .powi_scalar(2)
        .sum_dim(1)
        .reshape([rows])
}

struct SumSquares<'a> {
    x: &'a [f32],
    cols: usize,
}

impl RowKernel for SumSquares<'_> {
    #[inline(always)]
    fn row(&self, r: usize, out: &mut [f32]) {
        let row = &self.x[r * self.cols..(r + 1) * self.cols];
        out[0] = dot(row, row);
    }
}
