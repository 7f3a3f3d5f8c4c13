//! The one thread launcher of the workspace: `k` threads of this process, each registered as
//! worker `k` of a [`BurnCollective`] group on its device.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use burn::tensor::backend::Backend;

use super::collective::BurnCollective;
use crate::error::DpOptimError;

/// Runs `work(rank, group)` on `devices.len()` threads of this process, thread `k` registered
/// (after a reset of the process's collective server) as worker `k` of a [`BurnCollective`]
/// group on `devices[k]`, with `timeout` for the registration and every later operation;
/// returns their results in rank order. See [`lead_and_follow`] for errors and panics.
pub fn on_threads<B, T, E>(
    devices: &[B::Device],
    timeout: Duration,
    work: impl Fn(usize, BurnCollective<B>) -> Result<T, E> + Sync,
) -> Vec<Result<T, E>>
where
    B: Backend,
    T: Send,
    E: From<DpOptimError> + Send,
{
    let (lead, mut rest) = lead_and_follow(devices, timeout, |group| work(0, group), &work);
    rest.insert(0, lead);
    rest
}

/// Worker 0 on the calling thread (`lead`: its captures need not be `Send`), workers
/// `1..devices.len()` on threads of their own (`follow(rank, group)`), each registered (after a
/// reset of the process's collective server) as worker `k` of a [`BurnCollective`] group on
/// `devices[k]` with `timeout` for the registration and every later operation. Returns worker
/// 0's result and the others' in rank order.
///
/// A worker whose registration fails returns that error (as `E`). Each worker owns its
/// group: it calls [`BurnCollective::finish`] when done, and on an error it may call
/// [`BurnCollective::reset`] to release the workers still blocked in a collective call (the
/// driver, [`crate::drive`], does). A panicking worker resets the server; its panic is
/// resumed here once every thread has ended.
pub fn lead_and_follow<B, R, T, E>(
    devices: &[B::Device],
    timeout: Duration,
    lead: impl FnOnce(BurnCollective<B>) -> Result<R, E>,
    follow: impl Fn(usize, BurnCollective<B>) -> Result<T, E> + Sync,
) -> (Result<R, E>, Vec<Result<T, E>>)
where
    B: Backend,
    T: Send,
    E: From<DpOptimError> + Send,
{
    let world = devices.len();
    let join = |rank: usize, device: &B::Device| -> Result<BurnCollective<B>, DpOptimError> {
        Ok(
            BurnCollective::<B>::register(rank, world, device.clone(), timeout)?
                .with_timeout(timeout),
        )
    };
    let guarded = |work: &mut dyn FnMut()| {
        std::panic::catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|panic| {
            // release the workers blocked in a collective call
            BurnCollective::<B>::reset();
            std::panic::resume_unwind(panic)
        })
    };
    BurnCollective::<B>::reset();
    std::thread::scope(|scope| {
        let handles: Vec<_> = devices
            .iter()
            .enumerate()
            .skip(1)
            .map(|(rank, device)| {
                let (follow, join, guarded) = (&follow, &join, &guarded);
                scope.spawn(move || {
                    let mut out = None;
                    guarded(&mut || {
                        out = Some(
                            join(rank, device)
                                .map_err(E::from)
                                .and_then(|g| follow(rank, g)),
                        )
                    });
                    out.expect("set by the worker")
                })
            })
            .collect();
        let mut lead = Some(lead);
        let mut first = None;
        if let Some(device) = devices.first() {
            guarded(&mut || {
                let lead = lead.take().expect("run once");
                first = Some(join(0, device).map_err(E::from).and_then(lead));
            });
        }
        let results: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
        let rest = results
            .into_iter()
            .map(|r| r.unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect();
        let first = first.unwrap_or_else(|| {
            Err(E::from(DpOptimError::InvalidParameter {
                field: "devices",
                value: "[]".into(),
                expected: "at least one device (one per worker)",
            }))
        });
        (first, rest)
    })
}
