//! A small two-layer model with a per-example loss, shared by the tests.
#![allow(dead_code)]

use burn::backend::{Autodiff, NdArray};
use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::{Tensor, TensorData};

pub type B = Autodiff<NdArray>;

#[derive(Module, Debug)]
pub struct Net<B: burn::tensor::backend::Backend> {
    pub a: Linear<B>,
    pub norm: LayerNorm<B>,
    pub b: Linear<B>,
}

/// A freshly initialised [`Net`], its parameters materialised (burn initialises parameters
/// lazily, and clones of a still-lazy parameter would each draw their own values).
pub fn net(device: &burn::backend::ndarray::NdArrayDevice) -> Net<B> {
    let net = Net {
        a: LinearConfig::new(4, 6).init(device),
        norm: LayerNormConfig::new(6).init(device),
        b: LinearConfig::new(6, 2).init(device),
    };
    let _ = (net.a.weight.val(), net.a.bias.as_ref().map(|b| b.val()));
    let _ = (
        net.norm.gamma.val(),
        net.norm.beta.as_ref().map(|b| b.val()),
    );
    let _ = (net.b.weight.val(), net.b.bias.as_ref().map(|b| b.val()));
    net
}

pub struct Data {
    pub x: Vec<[f32; 4]>,
    pub y: Vec<[f32; 2]>,
}

pub fn data(n: usize, seed: u64, scale: f32) -> Data {
    let mut s = seed;
    let mut next = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * scale
    };
    Data {
        x: (0..n).map(|_| [next(), next(), next(), next()]).collect(),
        y: (0..n).map(|_| [next(), next()]).collect(),
    }
}

pub fn loss(model: &Net<B>, d: &Data, i: usize) -> Tensor<B, 1> {
    let device = Default::default();
    let x = Tensor::<B, 2>::from_data(TensorData::new(d.x[i].to_vec(), [1, 4]), &device);
    let y = Tensor::<B, 2>::from_data(TensorData::new(d.y[i].to_vec(), [1, 2]), &device);
    let out = model.b.forward(model.norm.forward(model.a.forward(x)));
    (out - y).powi_scalar(2).sum()
}

/// The same loss as [`loss`], batched and run through a layer tap (both clipping paths).
pub struct TappedLoss<'a> {
    pub data: &'a Data,
}

impl dp_optim::ExampleLoss<B, Net<B>> for TappedLoss<'_> {
    fn losses<T: dp_optim::LayerTap<B>>(
        &mut self,
        m: &Net<B>,
        examples: &[usize],
        tap: &mut T,
    ) -> Tensor<B, 1> {
        let device = Default::default();
        let n = examples.len();
        let x: Vec<f32> = examples.iter().flat_map(|&i| self.data.x[i]).collect();
        let y: Vec<f32> = examples.iter().flat_map(|&i| self.data.y[i]).collect();
        let x = Tensor::<B, 2>::from_data(TensorData::new(x, [n, 4]), &device);
        let y = Tensor::<B, 2>::from_data(TensorData::new(y, [n, 2]), &device);
        let h = tap.linear(&m.a, x);
        let h = tap.layer_norm(&m.norm, 1e-5, h);
        let out = tap.linear(&m.b, h);
        (out - y).powi_scalar(2).sum_dim(1).reshape([n])
    }
}

/// All gradient values of a model's parameters, in visiting order (zeros where absent).
pub fn flat(model: &Net<B>, grads: &burn::optim::GradientsParams) -> Vec<f64> {
    use burn::module::{ModuleVisitor, Param};
    use burn::tensor::backend::AutodiffBackend;
    struct Collect<'a> {
        grads: &'a burn::optim::GradientsParams,
        out: Vec<f64>,
    }
    impl ModuleVisitor<B> for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let n = param.val().shape().num_elements();
            match self
                .grads
                .get::<<B as AutodiffBackend>::InnerBackend, D>(param.id)
            {
                Some(g) => self
                    .out
                    .extend(g.into_data().convert::<f64>().to_vec::<f64>().unwrap()),
                None => self.out.extend(std::iter::repeat_n(0.0, n)),
            }
        }
    }
    let mut c = Collect {
        grads,
        out: Vec::new(),
    };
    model.visit(&mut c);
    c.out
}

/// Every float parameter value of `model`, in visiting order.
pub fn weights<M: Module<B>>(model: &M) -> Vec<f32> {
    use burn::module::{ModuleVisitor, Param};
    struct Collect(Vec<f32>);
    impl ModuleVisitor<B> for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            self.0
                .extend(param.val().into_data().to_vec::<f32>().unwrap());
        }
    }
    let mut c = Collect(Vec::new());
    model.visit(&mut c);
    c.0
}
