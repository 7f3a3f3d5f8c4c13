//! Runtime dispatch on the concrete backend behind a generic `B`, and host access to burn-flex
//! tensors.
//!
//! burn's operations are generic over `B: Backend` and there is no specialisation in stable
//! Rust, so the fused operations ask at run time, by `TypeId`, whether a primitive is a
//! [`FlexTensor`] of `f32` (then the multi-threaded SIMD kernels of [`crate::cpu`] run on its
//! storage, without a copy) and fall back to the backend's own operations otherwise.

use std::any::{Any, TypeId};

use burn::backend::flex::FlexTensor;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Shape, Tensor, TensorData, TensorPrimitive};

use crate::copy::copy_runs;

/// `value` as a `T` when its type is `T`, otherwise `value` back.
pub(crate) fn cast<A: 'static, T: 'static>(value: A) -> Result<T, A> {
    if TypeId::of::<A>() != TypeId::of::<T>() {
        return Err(value);
    }
    let boxed: Box<dyn Any> = Box::new(value);
    match boxed.downcast::<T>() {
        Ok(t) => Ok(*t),
        Err(_) => unreachable!("the type ids are equal"),
    }
}

/// `value` as a `&T` when its type is `T`.
pub(crate) fn cast_ref<A: 'static, T: 'static>(value: &A) -> Option<&T> {
    (value as &dyn Any).downcast_ref::<T>()
}

/// `t` itself (a cheap clone of its storage handle) when it is contiguous, else a contiguous
/// copy (run by run where [`copy_runs`] can).
fn contiguous(t: &FlexTensor) -> FlexTensor {
    if t.layout().contiguous_offsets().is_some() {
        t.clone()
    } else {
        copy_runs(t).unwrap_or_else(|| t.to_contiguous())
    }
}

/// `t.reshape(shape)`. Where that needs a copy of a burn-flex tensor (a permuted or sliced
/// view whose axes do not merge), the copy is [`copy_runs`]'s, not burn-flex's element-wise
/// one.
pub(crate) fn reshape<B: Backend, const D: usize, const D2: usize>(
    t: Tensor<B, D>,
    shape: [usize; D2],
) -> Tensor<B, D2> {
    let prim = t.into_primitive().tensor();
    let copied = cast_ref::<_, FlexTensor>(&prim)
        .filter(|f| f.layout().reshape(Shape::from(shape.to_vec())).is_none())
        .and_then(copy_runs);
    let prim = match copied.map(cast::<FlexTensor, B::FloatTensorPrimitive>) {
        Some(Ok(p)) => p,
        Some(Err(_)) => unreachable!("a FlexTensor primitive is a FlexTensor"),
        None => prim,
    };
    Tensor::<B, D>::from_primitive(TensorPrimitive::Float(prim)).reshape(shape)
}

/// A contiguous `f32` burn-flex tensor, borrowed as a slice.
pub(crate) struct HostF32 {
    tensor: FlexTensor,
}

impl HostF32 {
    /// The tensor behind primitive `p` when it is an `f32` [`FlexTensor`] (made contiguous).
    pub(crate) fn of<P: 'static>(p: &P) -> Option<Self> {
        let t = cast_ref::<P, FlexTensor>(p)?;
        if t.dtype() != DType::F32 {
            return None;
        }
        Some(Self {
            tensor: contiguous(t),
        })
    }

    /// The elements in row-major order.
    pub(crate) fn values(&self) -> &[f32] {
        let (start, end) = self
            .tensor
            .layout()
            .contiguous_offsets()
            .expect("made contiguous in HostF32::of");
        &self.tensor.storage::<f32>()[start..end]
    }

    /// The tensor's shape.
    pub(crate) fn shape(&self) -> Vec<usize> {
        self.tensor.layout().shape().to_vec()
    }
}

/// Integer indices behind primitive `p` when it is an `i32` or `i64` [`FlexTensor`].
pub(crate) fn host_indices<P: 'static>(p: &P) -> Option<Vec<i64>> {
    let t = cast_ref::<P, FlexTensor>(p)?;
    let t = contiguous(t);
    let (start, end) = t.layout().contiguous_offsets()?;
    match t.dtype() {
        DType::I64 => Some(t.storage::<i64>()[start..end].to_vec()),
        DType::I32 => Some(
            t.storage::<i32>()[start..end]
                .iter()
                .map(|&v| v as i64)
                .collect(),
        ),
        _ => None,
    }
}

/// Boolean mask behind primitive `p` when it is a byte-stored [`FlexTensor`]: `true` = set.
pub(crate) fn host_mask<P: 'static>(p: &P) -> Option<Vec<bool>> {
    let t = cast_ref::<P, FlexTensor>(p)?;
    if !matches!(t.dtype(), DType::Bool(_)) {
        return None;
    }
    let t = contiguous(t);
    let (start, end) = t.layout().contiguous_offsets()?;
    Some(
        t.storage::<u8>()[start..end]
            .iter()
            .map(|&b| b != 0)
            .collect(),
    )
}

/// Runs `f` on the elements of primitive `p` in row-major order, in place, when `p` is an
/// `f32` [`FlexTensor`], and returns the updated tensor; `Err(p)` for any other primitive.
/// A view is made contiguous first, and storage shared with another tensor is copied before
/// it is written (burn-flex's copy-on-write): no other tensor ever sees the change.
pub(crate) fn update_f32<P: 'static>(p: P, f: impl FnOnce(&mut [f32])) -> Result<P, P> {
    let is_f32 = cast_ref::<P, FlexTensor>(&p).is_some_and(|t| t.dtype() == DType::F32);
    if !is_f32 {
        return Err(p);
    }
    let t = cast::<P, FlexTensor>(p).unwrap_or_else(|_| unreachable!("checked above"));
    let n = t.layout().num_elements();
    let mut t = if t.layout().contiguous_offsets() == Some((0, n)) {
        t
    } else {
        contiguous(&t)
    };
    let start = t.layout().contiguous_offsets().map_or(0, |(s, _)| s);
    f(&mut t.storage_mut::<f32>()[start..start + n]);
    Ok(cast::<FlexTensor, P>(t).unwrap_or_else(|_| unreachable!("P is FlexTensor")))
}

/// A new `f32` primitive of type `P` (which must be [`FlexTensor`]) holding `values`.
pub(crate) fn flex_f32<P: 'static>(values: Vec<f32>, shape: &[usize]) -> P {
    let tensor = FlexTensor::from_data(TensorData::new(values, Shape::from(shape.to_vec())));
    match cast::<FlexTensor, P>(tensor) {
        Ok(p) => p,
        Err(_) => unreachable!("only called after HostF32::of succeeded for P"),
    }
}
