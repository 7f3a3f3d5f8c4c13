//! Materialising burn's lazily initialised parameters.

use burn::module::{ModuleVisitor, Param};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

/// Initialises every lazily initialised parameter of `model` in place. burn's parameters may
/// be lazy (created on first use), and each *clone* of a still-lazy parameter initialises
/// itself independently, with different random values: a frozen copy or a saved clone
/// would then not be the caller's model.
pub fn initialise_params<B: Backend, M: burn::module::Module<B>>(model: &M) {
    struct Touch;
    impl<B: Backend> ModuleVisitor<B> for Touch {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let _ = param.val();
        }
    }
    model.visit(&mut Touch);
}
