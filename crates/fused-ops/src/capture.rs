//! A tensor's gradient, captured as it flows back through an identity node: what ghost
//! clipping needs from every layer output, without a zero "probe" leaf added to it.
//!
//! The usual way to read an intermediate gradient in burn is to add a zero leaf that
//! requires a gradient (`y + p`) and read `p`'s gradient after the backward pass. That writes
//! a zero tensor the size of `y` and adds it (two passes over `y`'s memory) for every tapped
//! layer, and keeps the leaf alive until the backward ends. [`capture_grad`] instead wraps
//! `y` in an identity node (no copy: the output shares `y`'s storage) whose backward hands
//! the incoming gradient to `y`'s parents unchanged and keeps a handle to it.
//!
//! Only a *tracked* tensor (one whose value depends on something that requires a gradient)
//! takes part in the backward pass. For an untracked `y` (e.g. the output of a frozen
//! embedding table) and under autodiff backends other than `Autodiff<Flex>`,
//! `Autodiff<NdArray>` and `Autodiff<Cuda>`, the zero leaf is used: same gradient, the older
//! cost.

use std::sync::{Arc, Mutex, PoisonError};

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorPrimitive};

use crate::dispatch::{AutodiffOf, autodiff_of, same};

/// Where a captured gradient lands: filled by the identity node's backward.
type Slot<IB> = Arc<Mutex<Option<FloatTensor<IB>>>>;

/// The gradient of a tensor passed through [`capture_grad`], readable after the backward
/// pass with [`OutputGrad::grad`].
pub struct OutputGrad<B: AutodiffBackend, const D: usize> {
    kind: Kind<B, D>,
    dims: [usize; D],
    device: B::Device,
}

impl<B: AutodiffBackend, const D: usize> Clone for OutputGrad<B, D> {
    fn clone(&self) -> Self {
        let kind = match &self.kind {
            Kind::Leaf(leaf) => Kind::Leaf(leaf.clone()),
            Kind::Slot(slot) => Kind::Slot(Arc::clone(slot)),
        };
        Self {
            kind,
            dims: self.dims,
            device: self.device.clone(),
        }
    }
}

enum Kind<B: AutodiffBackend, const D: usize> {
    /// A zero leaf added to the output; its gradient is the output's.
    Leaf(Tensor<B, D>),
    /// Filled by the identity node's backward.
    Slot(Slot<B::InnerBackend>),
}

impl<B: AutodiffBackend, const D: usize> std::fmt::Debug for OutputGrad<B, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            Kind::Leaf(_) => "zero leaf",
            Kind::Slot(_) => "identity node",
        };
        f.debug_struct("OutputGrad").field("kind", &kind).finish()
    }
}

impl<B: AutodiffBackend, const D: usize> OutputGrad<B, D> {
    /// The gradient of the captured tensor from the backward pass that produced `grads`, or
    /// `None` when no gradient reached it (the loss does not depend on it).
    ///
    /// With the identity node, the gradient is the one of the *latest* backward pass through
    /// it (`grads` is not consulted); run one backward per capture.
    pub fn grad(&self, grads: &B::Gradients) -> Option<Tensor<B::InnerBackend, D>> {
        match &self.kind {
            Kind::Leaf(leaf) => leaf.grad(grads),
            Kind::Slot(slot) => slot
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
                .map(|g| Tensor::from_primitive(TensorPrimitive::Float(g))),
        }
    }

    /// The gradient as [`OutputGrad::grad`] gives it, or zeros of the captured tensor's shape
    /// when no gradient reached it.
    pub fn grad_or_zeros(&self, grads: &B::Gradients) -> Tensor<B::InnerBackend, D> {
        self.grad(grads)
            .unwrap_or_else(|| Tensor::zeros(self.dims, &self.device))
    }

    /// The captured tensor's shape.
    pub fn dims(&self) -> [usize; D] {
        self.dims
    }

    /// Whether the capture is an identity node (`false`: a zero leaf was added).
    pub fn is_node(&self) -> bool {
        matches!(self.kind, Kind::Slot(_))
    }
}

/// `y` unchanged, and a handle to its gradient after the backward pass.
///
/// The gradient read from the handle is the sum of everything that flows into `y` from the
/// operations that use the returned tensor, exactly what a zero leaf added to `y` would
/// receive.
///
/// ```
/// use burn::backend::{Autodiff, Flex};
/// use burn::tensor::Tensor;
///
/// type B = Autodiff<Flex>;
/// let device = Default::default();
/// let w = Tensor::<B, 2>::from_floats([[1.0, 2.0], [3.0, 4.0]], &device).require_grad();
/// let (h, probe) = fused_ops::capture_grad(w.clone() * 2.0);
/// let loss = (h.clone() * h).sum(); // d loss / d h = 2h = 4w
/// let grads = loss.backward();
/// let dh = probe.grad(&grads).unwrap().into_data();
/// assert_eq!(dh.to_vec::<f32>().unwrap(), vec![4.0, 8.0, 12.0, 16.0]);
/// assert!(probe.is_node());
/// ```
pub fn capture_grad<B: AutodiffBackend, const D: usize>(
    y: Tensor<B, D>,
) -> (Tensor<B, D>, OutputGrad<B, D>) {
    let (dims, device) = (y.dims(), y.device());
    let slot: Slot<B::InnerBackend> = Arc::new(Mutex::new(None));
    // `autodiff_dispatch!` names one generic argument; `identity` also takes the rank.
    let captured: Option<Tensor<B, D>> = match autodiff_of::<B>() {
        Some(AutodiffOf::Flex) => same(identity::<burn::backend::Flex, D>(
            same(y.clone()),
            same(slot.clone()),
        )),
        Some(AutodiffOf::NdArray) => same(identity::<burn::backend::NdArray, D>(
            same(y.clone()),
            same(slot.clone()),
        )),
        #[cfg(feature = "cuda")]
        Some(AutodiffOf::Cuda) => same(identity::<burn::backend::Cuda, D>(
            same(y.clone()),
            same(slot.clone()),
        )),
        None => None,
    };
    match captured {
        Some(out) => (
            out,
            OutputGrad {
                kind: Kind::Slot(slot),
                dims,
                device,
            },
        ),
        None => {
            let leaf = Tensor::<B, D>::zeros(dims, &device).require_grad();
            (
                y + leaf.clone(),
                OutputGrad {
                    kind: Kind::Leaf(leaf),
                    dims,
                    device,
                },
            )
        }
    }
}

/// The identity node's backward: keeps the gradient, passes it on unchanged.
struct Capture<IB: Backend> {
    slot: Slot<IB>,
}

impl<IB: Backend> std::fmt::Debug for Capture<IB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Capture")
    }
}

impl<IB: Backend> Backward<IB, 1> for Capture<IB> {
    type State = ();

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<IB>(&ops.node);
        *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(grad.clone());
        if let [Some(parent)] = ops.parents {
            grads.register::<IB>(parent.id, grad);
        }
    }
}

/// `y` through a [`Capture`] node, or `None` when `y` is untracked (it would never see a
/// gradient).
fn identity<IB: Backend, const D: usize>(
    y: Tensor<Autodiff<IB>, D>,
    slot: Slot<IB>,
) -> Option<Tensor<Autodiff<IB>, D>> {
    let y = y.into_primitive().tensor();
    if !y.is_tracked() {
        return None;
    }
    let out = Capture { slot }
        .prepare::<NoCheckpointing>([y.node.clone()])
        .compute_bound()
        .stateless(y.primitive);
    Some(Tensor::from_primitive(TensorPrimitive::Float(out)))
}
