//! Choosing the compute backend at run time.

use burn::tensor::backend::Backend;

/// The backends this build can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendKind {
    /// burn-flex: pure-Rust CPU backend with SIMD and threads (the default: faster than
    /// ndarray on this project's benchmarks, see `docs/benchmarks.md`).
    #[default]
    Flex,
    /// burn-ndarray: CPU backend on `ndarray` and `matrixmultiply`.
    Ndarray,
    /// burn-cuda on the first GPU (only in builds with the `cuda` feature).
    #[cfg(feature = "cuda")]
    Cuda,
}

impl BackendKind {
    /// Name as accepted on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Flex => "flex",
            Self::Ndarray => "ndarray",
            #[cfg(feature = "cuda")]
            Self::Cuda => "cuda",
        }
    }

    /// Parses a command-line name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "flex" => Some(Self::Flex),
            "ndarray" => Some(Self::Ndarray),
            #[cfg(feature = "cuda")]
            "cuda" => Some(Self::Cuda),
            _ => None,
        }
    }
}

impl BackendKind {
    /// Parses a command-line name, with an error listing the choices this build offers.
    pub fn from_arg(name: &str) -> Result<Self, String> {
        Self::parse(name).ok_or_else(|| {
            if cfg!(feature = "cuda") {
                format!("unknown backend `{name}` (choose flex, ndarray or cuda)")
            } else {
                format!(
                    "unknown backend `{name}` (choose flex or ndarray; cuda needs a build with the `cuda` feature)"
                )
            }
        })
    }
}

/// Work that can run on any backend: [`dispatch`] picks the concrete one.
pub trait BackendTask {
    /// What the task returns.
    type Output;
    /// Runs the task on backend `B`.
    fn run<B: Backend>(self, device: B::Device) -> Self::Output;
}

/// Runs `task` on the backend `kind` names, with its default device.
pub fn dispatch<T: BackendTask>(kind: BackendKind, task: T) -> T::Output {
    match kind {
        BackendKind::Flex => task.run::<burn::backend::Flex>(Default::default()),
        BackendKind::Ndarray => task.run::<burn::backend::NdArray>(Default::default()),
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => task.run::<burn::backend::Cuda>(Default::default()),
    }
}

/// Device `index` of backend `B`: GPU `index` of a GPU backend, the CPU (whatever `index`)
/// of a CPU backend.
pub fn nth_device<B: Backend>(index: usize) -> B::Device {
    use burn::tensor::backend::{Device, DeviceId};
    let first = B::Device::default();
    if index == 0 {
        return first;
    }
    let id = first.to_id();
    B::Device::from_id(DeviceId {
        type_id: id.type_id,
        index_id: index as u16,
    })
}

/// The device of `B`'s inner (non-autodiff) backend that `device` stands for.
pub fn inner_device<B: burn::tensor::backend::AutodiffBackend>(
    device: &B::Device,
) -> burn::tensor::Device<B::InnerBackend> {
    burn::tensor::Tensor::<B, 1>::zeros([1], device)
        .inner()
        .device()
}
