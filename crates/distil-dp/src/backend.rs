//! Choosing the compute backend at run time.

use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use crate::error::DistilDpError;

/// The backends this build can run on: the `backend` key of the configuration and
/// `--backend` of the command line, read and written as their names (`flex`, `ndarray`,
/// `cuda`).
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

/// The backends a name may choose, for the message of an unknown one.
const CHOICES: &str = if cfg!(feature = "cuda") {
    "flex, ndarray or cuda"
} else {
    "flex or ndarray (cuda with the `cuda` feature)"
};

impl BackendKind {
    /// Name as accepted on the command line and in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Self::Flex => "flex",
            Self::Ndarray => "ndarray",
            #[cfg(feature = "cuda")]
            Self::Cuda => "cuda",
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for BackendKind {
    type Err = DistilDpError;

    /// Parses a name; an unknown one (or `cuda` in a build without the `cuda` feature) is an
    /// error naming `backend` and the choices this build offers.
    fn from_str(name: &str) -> Result<Self, DistilDpError> {
        match name {
            "flex" => Ok(Self::Flex),
            "ndarray" => Ok(Self::Ndarray),
            #[cfg(feature = "cuda")]
            "cuda" => Ok(Self::Cuda),
            _ => Err(DistilDpError::InvalidArgument {
                field: "backend",
                value: name.to_string(),
                expected: CHOICES,
            }),
        }
    }
}

impl Serialize for BackendKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for BackendKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// Work that can run on any backend: [`dispatch`] picks the concrete one.
pub trait BackendTask {
    /// What the task returns.
    type Output;
    /// Runs the task on backend `B`.
    fn run<B: Backend>(self, device: B::Device) -> Self::Output;
}

/// Checks that backend `kind` can compute on its default device, before any work starts: a
/// CPU backend always can; on `cuda`, a one-element tensor is computed and read back, so a
/// machine without a GPU or without the CUDA driver library gets
/// [`DistilDpError::DeviceUnavailable`] (with the driver's own message) instead of a panic in
/// the middle of a run.
pub fn check_device(kind: BackendKind) -> Result<(), DistilDpError> {
    match kind {
        BackendKind::Flex | BackendKind::Ndarray => Ok(()),
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => first_panic(|| {
            let device = Default::default();
            burn::tensor::Tensor::<burn::backend::Cuda, 1>::ones([1], &device)
                .into_data()
                .to_vec::<f32>()
                .map(|v| v.len())
        })
        .and_then(|read| match read {
            Ok(1) => Ok(()),
            other => Err(format!("reading back a one-element tensor gave {other:?}")),
        })
        .map_err(|reason| DistilDpError::DeviceUnavailable {
            backend: kind.name(),
            reason,
        }),
    }
}

/// Runs `f`; when it panics, or a thread it waits on panics first (burn's GPU backends compute
/// on a server thread, and the caller only sees a closed channel), returns the first panic's
/// message. The process's panic hook is replaced while `f` runs (nothing is printed) and
/// restored afterwards.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
fn first_panic<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    use std::sync::{Arc, Mutex};
    let first: Arc<Mutex<Option<String>>> = Arc::default();
    let seen = Arc::clone(&first);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = if let Some(s) = info.payload().downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = info.payload().downcast_ref::<String>() {
            s.clone()
        } else {
            "a panic without a message".to_string()
        };
        let mut slot = seen.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert(message);
    }));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(previous);
    let message = first.lock().unwrap_or_else(|e| e.into_inner()).take();
    outcome.map_err(|_| message.unwrap_or_else(|| "a panic without a message".into()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_an_unknown_one_names_the_field() {
        for kind in [BackendKind::Flex, BackendKind::Ndarray] {
            assert_eq!(kind.name().parse::<BackendKind>().unwrap(), kind);
        }
        let e = "tpu".parse::<BackendKind>().unwrap_err().to_string();
        assert!(
            e.contains("backend") && e.contains("tpu") && e.contains("flex"),
            "{e}"
        );
    }

    #[test]
    fn cpu_backends_are_always_usable() {
        assert!(check_device(BackendKind::Flex).is_ok());
        assert!(check_device(BackendKind::Ndarray).is_ok());
    }

    #[test]
    fn first_panic_reports_the_first_message_even_from_another_thread() {
        assert_eq!(first_panic(|| 7), Ok(7));
        assert_eq!(
            first_panic(|| -> u8 { panic!("no driver") }),
            Err("no driver".to_string())
        );
        // as with a GPU server thread: it panics, the caller then fails on the closed channel
        let outcome = first_panic(|| {
            let (tx, rx) = std::sync::mpsc::channel::<u8>();
            let worker = std::thread::spawn(move || {
                let _tx = tx;
                panic!("libcuda.so not found");
            });
            let _ = worker.join();
            rx.recv().unwrap()
        });
        assert_eq!(outcome, Err("libcuda.so not found".to_string()));
    }
}
