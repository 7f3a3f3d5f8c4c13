//! Contiguous copies of strided burn-flex tensors, run by run.
//!
//! burn-flex 0.21 copies a strided layout that does not collapse to two axes (the heads of an
//! attention, a permuted gradient, an expanded mask) element by element through a generic
//! index iterator, on one thread: in a DP training step of the quickstart's teacher that was
//! a fifth of the main thread's time. Such layouts almost always keep their innermost axes
//! contiguous (`head_dim`, a mask row), so they copy as runs of `memcpy`, spread over rayon's
//! pool when there are enough of them.

use burn::backend::flex::{FlexTensor, Layout};
use burn::tensor::{BoolStore, Bytes, DType};
use rayon::prelude::*;

use crate::cpu::TASK_ELEMENTS;

/// Runs shorter than this are left to burn-flex's own copy (its two-axis tiled copy handles
/// transposes; per-run overhead would dominate anyway).
const MIN_RUN: usize = 8;

/// Below this many elements the copy stays on the calling thread.
const PARALLEL_MIN: usize = 1 << 16;

/// A contiguous copy of `t`, copied in runs of its contiguous innermost axes; `None` when `t`
/// is contiguous already, has a negative stride, its contiguous innermost run is shorter than
/// [`MIN_RUN`] elements, or its element type is not one of f32, f64, i64, i32, u8 and
/// byte-stored bool (burn-flex's own copy then).
pub(crate) fn copy_runs(t: &FlexTensor) -> Option<FlexTensor> {
    let layout = t.layout();
    if layout.contiguous_offsets().is_some() || layout.strides().iter().any(|&s| s < 0) {
        return None;
    }
    let runs = Runs::of(layout)?;
    let bytes = match t.dtype() {
        DType::F32 => Bytes::from_elems(runs.copy(t.storage::<f32>())),
        DType::F64 => Bytes::from_elems(runs.copy(t.storage::<f64>())),
        DType::I64 => Bytes::from_elems(runs.copy(t.storage::<i64>())),
        DType::I32 => Bytes::from_elems(runs.copy(t.storage::<i32>())),
        DType::U8 | DType::Bool(BoolStore::Native | BoolStore::U8) => {
            Bytes::from_elems(runs.copy(t.storage::<u8>()))
        }
        _ => return None,
    };
    Some(FlexTensor::new(
        bytes,
        Layout::contiguous(layout.shape().clone()),
        t.dtype(),
    ))
}

/// The layout as runs: `outer` axes (sizes and strides, outermost first) over contiguous runs
/// of `run` elements.
struct Runs {
    outer_shape: Vec<usize>,
    outer_strides: Vec<usize>,
    start: usize,
    run: usize,
    elements: usize,
}

impl Runs {
    fn of(layout: &Layout) -> Option<Self> {
        let shape = layout.shape().to_vec();
        let strides = layout.strides();
        let mut run = 1usize;
        let mut inner = shape.len();
        while inner > 0 && strides[inner - 1] == run as isize {
            run *= shape[inner - 1];
            inner -= 1;
        }
        if run < MIN_RUN {
            return None;
        }
        Some(Self {
            outer_shape: shape[..inner].to_vec(),
            outer_strides: strides[..inner].iter().map(|&s| s as usize).collect(),
            start: layout.start_offset(),
            run,
            elements: layout.num_elements(),
        })
    }

    /// Storage offset of run number `index` (row-major over the outer axes).
    fn offset(&self, mut index: usize) -> usize {
        let mut offset = self.start;
        for (&size, &stride) in self.outer_shape.iter().zip(&self.outer_strides).rev() {
            offset += (index % size) * stride;
            index /= size;
        }
        offset
    }

    /// The elements of `src` (the whole storage) in row-major order.
    fn copy<E: Copy + Default + Send + Sync>(&self, src: &[E]) -> Vec<E> {
        let mut dst = vec![E::default(); self.elements];
        if self.elements == 0 {
            return dst;
        }
        let run = self.run;
        let fill = |first_run: usize, out: &mut [E]| {
            for (k, chunk) in out.chunks_mut(run).enumerate() {
                let from = self.offset(first_run + k);
                chunk.copy_from_slice(&src[from..from + run]);
            }
        };
        if self.elements < PARALLEL_MIN {
            fill(0, &mut dst);
        } else {
            let runs_per_task = (TASK_ELEMENTS / run).max(1);
            dst.par_chunks_mut(runs_per_task * run)
                .enumerate()
                .for_each(|(task, out)| fill(task * runs_per_task, out));
        }
        dst
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::Flex;
    use burn::tensor::{Int, Tensor, TensorData};

    use super::*;

    fn flex<const D: usize>(t: Tensor<Flex, D>) -> FlexTensor {
        t.into_primitive().tensor()
    }

    /// `copy_runs` gives burn-flex's own contiguous copy, bit for bit.
    fn same(t: &FlexTensor) {
        let ours = copy_runs(t).expect("a strided layout with long runs");
        assert!(ours.layout().contiguous_offsets().is_some());
        assert_eq!(ours.layout().shape(), t.layout().shape());
        assert_eq!(ours.into_data(), t.to_contiguous().into_data());
    }

    #[test]
    fn permuted_sliced_and_expanded_views_copy_like_burn_flex() {
        let device = Default::default();
        // [b, s, 3, h, hd] → [3, b, h, s, hd] and one part of it: attention's heads.
        for (b, s, h, hd) in [(2, 5, 3, 8), (8, 64, 4, 32)] {
            let n = b * s * 3 * h * hd;
            let x = Tensor::<Flex, 1>::from_data(
                TensorData::new((0..n).map(|i| i as f32).collect::<Vec<_>>(), [n]),
                &device,
            )
            .reshape([b, s, 3, h, hd])
            .permute([2, 0, 3, 1, 4]);
            same(&flex(x.clone()));
            same(&flex(x.narrow(0, 1, 1)));
        }
        // An expanded boolean mask (stride 0 over the heads), as the model builds it.
        let mask = Tensor::<Flex, 2, Int>::from_data(
            TensorData::new(
                (0..3 * 64 * 64).map(|i| (i % 7) as i64).collect(),
                [3, 64 * 64],
            ),
            &device,
        )
        .equal_elem(3)
        .reshape([3, 1, 64, 64])
        .expand([3, 4, 64, 64]);
        let mask: FlexTensor = mask.into_primitive();
        assert!(matches!(mask.dtype(), DType::Bool(_)));
        same(&mask);
    }

    #[test]
    fn contiguous_short_run_and_empty_layouts_are_left_to_burn_flex() {
        let device = Default::default();
        let x = Tensor::<Flex, 3>::zeros([4, 6, 5], &device);
        assert!(copy_runs(&flex(x.clone())).is_none(), "contiguous");
        assert!(
            copy_runs(&flex(x.clone().swap_dims(1, 2))).is_none(),
            "runs of 1"
        );
        let empty = Tensor::<Flex, 3>::zeros([0, 6, 16], &device).swap_dims(0, 1);
        assert!(copy_runs(&flex(empty)).is_none_or(|c| c.layout().num_elements() == 0));
    }
}
