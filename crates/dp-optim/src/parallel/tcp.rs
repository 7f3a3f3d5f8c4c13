//! All-reduce between processes and machines over plain TCP: every worker connects to
//! worker 0, which sums the vectors in rank order and sends the total back.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use super::collective::{Collective, DEFAULT_TIMEOUT};
use crate::error::DpOptimError;

const HELLO: &[u8; 8] = b"dpoptim1";

/// A worker of a multi-process data-parallel job (processes on one machine, one per device,
/// or on several machines): worker 0 listens on the job's address, the others connect to it.
///
/// Each all-reduce sends every worker's vector to worker 0, which adds them in rank order
/// (so the total is the same whatever the arrival order) and returns the total to every
/// worker: `2·(world − 1)` vectors through worker 0 per call, one round trip for the others.
/// That is the right shape for DP-SGD's few large all-reduces per step at up to a few
/// dozen workers; beyond, worker 0's link is the bottleneck.
///
/// A worker that dies closes its connection: the others' next call fails at once
/// ([`DpOptimError::Collective`]); one that hangs makes it fail after the timeout
/// ([`DEFAULT_TIMEOUT`] unless set with [`Self::with_timeout`]).
///
/// The connections are neither encrypted nor authenticated, as with NCCL or Gloo: the
/// vectors are partial sums of clipped gradients (un-noised) and the parameters. Run the
/// job on a network only its workers can reach (a Kubernetes namespace with a network
/// policy, a private subnet, or one machine's loopback).
#[derive(Debug)]
pub struct TcpCollective {
    rank: usize,
    world: usize,
    /// Worker 0: the connections of workers `1..world`, in rank order. Others: the one
    /// connection to worker 0.
    links: Vec<TcpStream>,
    timeout: Duration,
}

fn fail(operation: &'static str, message: impl std::fmt::Display) -> DpOptimError {
    DpOptimError::Collective {
        operation,
        message: message.to_string(),
    }
}

fn io(operation: &'static str, what: &str) -> impl Fn(std::io::Error) -> DpOptimError {
    let what = what.to_string();
    move |e| {
        let hint = match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                " (timed out: a worker is stuck or too slow; raise the timeout if it is only slow)"
            }
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe => " (the other side closed: a worker died)",
            _ => "",
        };
        fail(
            operation,
            format!(
                "{what}: {e}{hint}; resume the job from its last checkpoint (the steps after it are redone with the same randomness and counted once)"
            ),
        )
    }
}

fn hello(rank: usize, world: usize) -> [u8; 24] {
    let mut out = [0u8; 24];
    out[..8].copy_from_slice(HELLO);
    out[8..16].copy_from_slice(&(rank as u64).to_le_bytes());
    out[16..].copy_from_slice(&(world as u64).to_le_bytes());
    out
}

fn read_hello(stream: &mut TcpStream) -> Result<(usize, usize), DpOptimError> {
    let mut buf = [0u8; 24];
    stream
        .read_exact(&mut buf)
        .map_err(io("connect", "reading a worker's greeting"))?;
    if &buf[..8] != HELLO {
        return Err(fail(
            "connect",
            "a connection that is not a dp-optim worker (another service on the job's port?)",
        ));
    }
    let rank = u64::from_le_bytes(buf[8..16].try_into().expect("8 bytes")) as usize;
    let world = u64::from_le_bytes(buf[16..].try_into().expect("8 bytes")) as usize;
    Ok((rank, world))
}

impl TcpCollective {
    /// Joins the job whose worker 0 listens on `address` (`host:port`): worker 0 binds it
    /// and waits for the `world − 1` others; the others connect (retrying while worker 0 is
    /// not up yet). Everything must happen within `connect_timeout`. Refuses duplicate
    /// ranks and workers that disagree on `world`.
    pub fn connect(
        rank: usize,
        world: usize,
        address: &str,
        connect_timeout: Duration,
    ) -> Result<Self, DpOptimError> {
        super::worker_shard(rank, world)?;
        let deadline = Instant::now() + connect_timeout;
        let links = if world == 1 {
            Vec::new()
        } else if rank == 0 {
            Self::accept(world, address, deadline)?
        } else {
            vec![Self::dial(rank, world, address, deadline)?]
        };
        let mut this = Self {
            rank,
            world,
            links,
            timeout: DEFAULT_TIMEOUT,
        };
        this.set_timeouts(DEFAULT_TIMEOUT)?;
        Ok(this)
    }

    fn accept(
        world: usize,
        address: &str,
        deadline: Instant,
    ) -> Result<Vec<TcpStream>, DpOptimError> {
        let listener = TcpListener::bind(address)
            .map_err(io("connect", &format!("worker 0 listening on {address}")))?;
        listener
            .set_nonblocking(true)
            .map_err(io("connect", "listener"))?;
        let mut peers: Vec<Option<TcpStream>> = (1..world).map(|_| None).collect();
        let mut missing = world - 1;
        while missing > 0 {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    stream
                        .set_nonblocking(false)
                        .map_err(io("connect", "a worker's connection"))?;
                    stream
                        .set_read_timeout(Some(Duration::from_secs(30)))
                        .map_err(io("connect", "a worker's connection"))?;
                    let (rank, theirs) = read_hello(&mut stream)?;
                    if theirs != world {
                        return Err(DpOptimError::WorkerMismatch(format!(
                            "world: worker 0 has {world}, worker {rank} has {theirs}"
                        )));
                    }
                    if rank == 0 || rank >= world || peers[rank - 1].is_some() {
                        return Err(DpOptimError::WorkerMismatch(format!(
                            "two workers, or an out-of-range worker, claim rank {rank} (world {world})"
                        )));
                    }
                    stream
                        .write_all(&hello(0, world))
                        .map_err(io("connect", "greeting a worker"))?;
                    let _ = stream.set_nodelay(true);
                    peers[rank - 1] = Some(stream);
                    missing -= 1;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        let absent: Vec<String> = peers
                            .iter()
                            .enumerate()
                            .filter(|(_, p)| p.is_none())
                            .map(|(i, _)| (i + 1).to_string())
                            .collect();
                        return Err(fail(
                            "connect",
                            format!(
                                "workers {} did not connect to {address} in time",
                                absent.join(", ")
                            ),
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(io("connect", "accepting a worker")(e)),
            }
        }
        Ok(peers
            .into_iter()
            .map(|p| p.expect("all connected"))
            .collect())
    }

    fn dial(
        rank: usize,
        world: usize,
        address: &str,
        deadline: Instant,
    ) -> Result<TcpStream, DpOptimError> {
        let targets: Vec<_> = address
            .to_socket_addrs()
            .map_err(|e| DpOptimError::InvalidParameter {
                field: "address",
                value: format!("{address} ({e})"),
                expected: "host:port of worker 0",
            })?
            .collect();
        loop {
            let attempt = targets
                .iter()
                .find_map(|t| TcpStream::connect_timeout(t, Duration::from_secs(2)).ok());
            match attempt {
                Some(mut stream) => {
                    stream
                        .set_read_timeout(Some(Duration::from_secs(30)))
                        .map_err(io("connect", "the connection to worker 0"))?;
                    stream
                        .write_all(&hello(rank, world))
                        .map_err(io("connect", "greeting worker 0"))?;
                    read_hello(&mut stream)?;
                    let _ = stream.set_nodelay(true);
                    return Ok(stream);
                }
                None if Instant::now() > deadline => {
                    return Err(fail(
                        "connect",
                        format!("worker {rank} could not reach worker 0 at {address} in time"),
                    ));
                }
                None => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    fn set_timeouts(&mut self, timeout: Duration) -> Result<(), DpOptimError> {
        for link in &self.links {
            link.set_read_timeout(Some(timeout))
                .and_then(|_| link.set_write_timeout(Some(timeout)))
                .map_err(io("connect", "setting the timeout"))?;
        }
        self.timeout = timeout;
        Ok(())
    }

    /// Sets the deadline of every later all-reduce (a worker waits this long for the
    /// slowest other worker).
    pub fn with_timeout(mut self, timeout: Duration) -> Result<Self, DpOptimError> {
        self.set_timeouts(timeout)?;
        Ok(self)
    }
}

fn send(stream: &mut TcpStream, values: &[f32]) -> std::io::Result<()> {
    let mut bytes = Vec::with_capacity(8 + 4 * values.len());
    bytes.extend_from_slice(&(values.len() as u64).to_le_bytes());
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    stream.write_all(&bytes)
}

fn receive(stream: &mut TcpStream, len: usize) -> std::io::Result<Vec<f32>> {
    let mut header = [0u8; 8];
    stream.read_exact(&mut header)?;
    let got = u64::from_le_bytes(header) as usize;
    if got != len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a vector of {got} values where {len} were expected (workers out of step)"),
        ));
    }
    let mut bytes = vec![0u8; 4 * len];
    stream.read_exact(&mut bytes)?;
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect())
}

fn send_bytes(stream: &mut TcpStream, bytes: &[u8]) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(8 + bytes.len());
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
    stream.write_all(&out)
}

/// At most this many bytes in one broadcast (headers and keys are a few dozen).
const MAX_BROADCAST: usize = 1 << 20;

fn receive_bytes(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut header = [0u8; 8];
    stream.read_exact(&mut header)?;
    let len = u64::from_le_bytes(header) as usize;
    if len > MAX_BROADCAST {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a broadcast of {len} bytes (at most {MAX_BROADCAST}): workers out of step"),
        ));
    }
    let mut bytes = vec![0u8; len];
    stream.read_exact(&mut bytes)?;
    Ok(bytes)
}

impl<B: Backend> Collective<B> for TcpCollective {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world(&self) -> usize {
        self.world
    }

    fn all_reduce_sum(&mut self, tensor: Tensor<B, 1>) -> Result<Tensor<B, 1>, DpOptimError> {
        if self.world == 1 {
            return Ok(tensor);
        }
        let device = tensor.device();
        let mut values = tensor
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .expect("f32 data");
        let len = values.len();
        if self.rank == 0 {
            for (i, link) in self.links.iter_mut().enumerate() {
                let theirs = receive(link, len).map_err(io(
                    "all-reduce",
                    &format!("receiving worker {}'s part", i + 1),
                ))?;
                for (a, b) in values.iter_mut().zip(theirs) {
                    *a += b;
                }
            }
            for (i, link) in self.links.iter_mut().enumerate() {
                send(link, &values).map_err(io(
                    "all-reduce",
                    &format!("sending the sum to worker {}", i + 1),
                ))?;
            }
        } else {
            let link = &mut self.links[0];
            send(link, &values)
                .map_err(io("all-reduce", "sending this worker's part to worker 0"))?;
            values =
                receive(link, len).map_err(io("all-reduce", "receiving the sum from worker 0"))?;
        }
        Ok(Tensor::from_data(TensorData::new(values, [len]), &device))
    }

    fn broadcast(&mut self, bytes: Vec<u8>) -> Result<Vec<u8>, DpOptimError> {
        if self.rank == 0 {
            for (i, link) in self.links.iter_mut().enumerate() {
                send_bytes(link, &bytes)
                    .map_err(io("broadcast", &format!("sending to worker {}", i + 1)))?;
            }
            Ok(bytes)
        } else {
            receive_bytes(&mut self.links[0]).map_err(io("broadcast", "receiving from worker 0"))
        }
    }
}
