//! Shared test helpers: every backend-generic test runs on each CPU backend (and on CUDA with
//! the `cuda` feature).
#![allow(dead_code)]

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

/// Instantiates generic test functions `fn name<B: Backend>()` once per CPU backend, and once
/// on the GPU (module `cuda`, burn-cuda) in builds with the `cuda` feature: `cargo test -p
/// causal-lm --features cuda --release -- cuda::` runs only those.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod ndarray {
            $(#[test] fn $name() { super::$name::<burn::backend::NdArray>(); })*
        }
        mod flex {
            $(#[test] fn $name() { super::$name::<burn::backend::Flex>(); })*
        }
        #[cfg(feature = "cuda")]
        mod cuda {
            $(#[test] fn $name() { super::$name::<burn::backend::Cuda>(); })*
        }
    };
}

/// Path of a file under `tests/fixtures`.
pub fn fixture(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// Path of a file at the repository root.
pub fn repo_file(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// `[batch, len]` integer tensor from rows.
pub fn ids<B: Backend>(rows: &[Vec<u32>], device: &B::Device) -> Tensor<B, 2, Int> {
    let len = rows[0].len();
    let data: Vec<i64> = rows.iter().flatten().map(|&v| v as i64).collect();
    Tensor::from_data(TensorData::new(data, [rows.len(), len]), device)
}

/// Flattened f32 values of a tensor.
pub fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

/// Largest absolute difference.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
