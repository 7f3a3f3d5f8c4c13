//! What the driver tests share: the tiny GPT-2 fixture and two control codes.

use std::path::{Path, PathBuf};

use synth_gen::CodeJob;

/// A file of the tiny GPT-2 fixture (`""`: its directory).
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../causal-lm/tests/fixtures/tiny-gpt2")
        .join(rel)
}

/// Two codes, 4 + 3 samples: the second with two labels.
pub fn jobs() -> Vec<CodeJob> {
    vec![
        CodeJob {
            labels: vec![("Category".into(), "A".into())],
            samples: 4,
        },
        CodeJob {
            labels: vec![
                ("Category".into(), "Bee".into()),
                ("Stars".into(), "5".into()),
            ],
            samples: 3,
        },
    ]
}
