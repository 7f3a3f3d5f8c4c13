//! The header of a data-parallel job: what worker 0 tells every worker at the start.

use crate::error::DpOptimError;

/// Numbers worker 0 broadcasts at the start (little-endian words, then the sampling key),
/// which every other worker checks against its own.
pub(super) struct Header {
    pub(super) world: u64,
    pub(super) dataset_size: u64,
    pub(super) sample_rate_bits: u64,
    pub(super) max_grad_norm_bits: u64,
    pub(super) parameters: u64,
    pub(super) planned_steps: u64,
    pub(super) steps_taken: u64,
    pub(super) key: [u8; 32],
}

const HEADER_WORDS: usize = 7;
const HEADER_LEN: usize = HEADER_WORDS * 8 + 32;

impl Header {
    /// Little-endian words, then the key: what worker 0 broadcasts.
    pub(super) fn encode(&self) -> Vec<u8> {
        let words = [
            self.world,
            self.dataset_size,
            self.sample_rate_bits,
            self.max_grad_norm_bits,
            self.parameters,
            self.planned_steps,
            self.steps_taken,
        ];
        let mut out = Vec::with_capacity(HEADER_LEN);
        for w in words {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(&self.key);
        out
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<Self, DpOptimError> {
        if bytes.len() != HEADER_LEN {
            return Err(DpOptimError::WorkerMismatch(format!(
                "worker 0 sent a header of {} bytes, expected {HEADER_LEN} (another dp-optim version?)",
                bytes.len()
            )));
        }
        let word =
            |i: usize| u64::from_le_bytes(bytes[8 * i..8 * (i + 1)].try_into().expect("8 bytes"));
        let mut key = [0u8; 32];
        key.copy_from_slice(&bytes[HEADER_WORDS * 8..]);
        Ok(Self {
            world: word(0),
            dataset_size: word(1),
            sample_rate_bits: word(2),
            max_grad_norm_bits: word(3),
            parameters: word(4),
            planned_steps: word(5),
            steps_taken: word(6),
            key,
        })
    }
}
