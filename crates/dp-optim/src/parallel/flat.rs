//! A model's parameters (or gradients) as one flat vector, so that a step needs one
//! collective call whatever the number of parameter tensors.

use burn::module::{AutodiffModule, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;

/// The inner backend of `B`, where gradients and collective sums live.
type Inner<B> = <B as AutodiffBackend>::InnerBackend;

/// Number of float parameters of `model` (materialised).
pub(crate) fn parameter_count<B: AutodiffBackend, M: AutodiffModule<B>>(model: &M) -> usize {
    struct Count(usize);
    impl<B: AutodiffBackend> ModuleVisitor<B> for Count {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            self.0 += param.val().shape().num_elements();
        }
    }
    let mut count = Count(0);
    model.visit::<Count>(&mut count);
    count.0
}

/// Collects one 1-D piece per float parameter, in visiting order.
struct Pieces<'a, B: AutodiffBackend> {
    grads: Option<&'a GradientsParams>,
    pieces: Vec<Tensor<Inner<B>, 1>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Pieces<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let value = param.val().inner();
        let n = value.shape().num_elements();
        let piece = match self.grads {
            None => value.reshape([n]),
            Some(grads) => match grads.get::<Inner<B>, D>(param.id) {
                Some(g) => g.reshape([n]),
                None => Tensor::zeros([n], &value.device()),
            },
        };
        self.pieces.push(piece);
    }
}

fn pieces<B: AutodiffBackend, M: AutodiffModule<B>>(
    model: &M,
    grads: Option<&GradientsParams>,
) -> Vec<Tensor<Inner<B>, 1>> {
    let mut visitor = Pieces::<B> {
        grads,
        pieces: Vec::new(),
    };
    model.visit(&mut visitor);
    visitor.pieces
}

/// `grads` in `model`'s parameter order as one vector (zeros for parameters without a
/// gradient), followed by `extra`.
pub(crate) fn flatten_grads<B: AutodiffBackend, M: AutodiffModule<B>>(
    model: &M,
    grads: &GradientsParams,
    extra: Tensor<Inner<B>, 1>,
) -> Tensor<Inner<B>, 1> {
    let mut all = pieces::<B, M>(model, Some(grads));
    all.push(extra);
    Tensor::cat(all, 0)
}

/// `model`'s parameter values as one vector.
pub(crate) fn flatten_params<B: AutodiffBackend, M: AutodiffModule<B>>(
    model: &M,
) -> Tensor<Inner<B>, 1> {
    Tensor::cat(pieces::<B, M>(model, None), 0)
}

/// Cuts `flat` (in `model`'s parameter order) back into one gradient per trainable parameter
/// (frozen ones, `require_grad = false`, are left out: the optimiser must not move them).
pub(crate) fn unflatten_grads<B: AutodiffBackend, M: AutodiffModule<B>>(
    model: &M,
    flat: Tensor<Inner<B>, 1>,
) -> GradientsParams {
    struct Cut<B: AutodiffBackend> {
        flat: Tensor<Inner<B>, 1>,
        at: usize,
        out: GradientsParams,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Cut<B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let shape = param.val().shape();
            let n = shape.num_elements();
            let g = self.flat.clone().slice(self.at..self.at + n).reshape(shape);
            self.at += n;
            if param.is_require_grad() {
                // a frozen parameter (e.g. a LoRA base) gets no update
                self.out.register::<Inner<B>, D>(param.id, g);
            }
        }
    }
    let mut cut = Cut::<B> {
        flat,
        at: 0,
        out: GradientsParams::new(),
    };
    model.visit(&mut cut);
    cut.out
}

/// `model` with its parameter values replaced by the pieces of `flat` (in parameter order);
/// parameter ids and trainability are kept.
pub(crate) fn load_params<B: AutodiffBackend, M: AutodiffModule<B>>(
    model: M,
    flat: Tensor<Inner<B>, 1>,
) -> M {
    struct Load<B: AutodiffBackend> {
        flat: Tensor<Inner<B>, 1>,
        at: usize,
    }
    impl<B: AutodiffBackend> ModuleMapper<B> for Load<B> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let flat = &self.flat;
            let at = &mut self.at;
            param.map(|value| {
                let shape = value.shape();
                let n = shape.num_elements();
                let piece = flat.clone().slice(*at..*at + n).reshape(shape);
                *at += n;
                let new = Tensor::from_inner(piece);
                if value.is_require_grad() {
                    new.require_grad()
                } else {
                    new
                }
            })
        }
    }
    // New autodiff leaves: not while another thread runs backward (burn#5573).
    let _guard = crate::autodiff_guard();
    model.map(&mut Load::<B> { flat, at: 0 })
}
