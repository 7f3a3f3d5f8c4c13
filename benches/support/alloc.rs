//! The benches' global allocator: mimalloc, as in the `distil-dp` binary and the examples, so
//! that the benches measure what those run (glibc's malloc hands a training step's large
//! buffers back to the kernel and faults them in again at the next step).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
