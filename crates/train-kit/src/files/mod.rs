//! Files and directories written so that a kill or a power loss at any point leaves a
//! complete version: one file ([`write_atomic`], [`write_atomic_with`]), several files of
//! one directory together ([`replace_files`]), or a whole directory ([`replace_dir`]).
//! This is the workspace's one implementation: models, checkpoints, the synthetic corpus
//! and the run directory all write through it.

mod dir;
mod file;
mod pair;

pub use dir::{readable_dir, replace_dir};
pub use file::{create_private_dir, sync_dir, write_atomic, write_atomic_with, write_private};
pub use pair::{recover_files, replace_files};
