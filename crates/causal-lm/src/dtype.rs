//! Keeping loaded weights in the backend's float type.

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor};

/// Converts every float parameter whose element type is not `dtype` (e.g. `f32` weights read
/// into an `f64` backend, which burn-store keeps as `f32`), keeping ids and gradient flags.
struct CastParams(DType);

impl<B: Backend> ModuleMapper<B> for CastParams {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        if tensor.dtype() == self.0 {
            return Param::from_mapped_value(id, tensor, mapper);
        }
        let grad = tensor.is_require_grad();
        let device = tensor.device();
        let data = tensor.into_data().convert_dtype(self.0);
        let cast = Tensor::from_data(data, &device);
        let cast = if grad { cast.require_grad() } else { cast };
        Param::from_mapped_value(id, cast, mapper)
    }
}

/// `model` with every float parameter in `dtype`.
pub(crate) fn cast_params<B: Backend, M: Module<B>>(model: M, dtype: DType) -> M {
    model.map(&mut CastParams(dtype))
}
