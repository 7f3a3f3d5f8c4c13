//! Converts a checkpoint directory (Hugging Face or native) to the other format.
//!
//! ```text
//! cargo run --release -p causal-lm --example convert -- SRC_DIR DST_DIR [hf|native]
//! ```
//! The default target is `hf`: `DST_DIR` then opens with
//! `GPT2LMHeadModel.from_pretrained(DST_DIR)`. A `tokenizer.json` next to the source is copied.

use std::process::ExitCode;

use burn::backend::NdArray;
use causal_lm::{checkpoint, hf};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 || args.len() > 3 {
        eprintln!("usage: convert SRC_DIR DST_DIR [hf|native]");
        return ExitCode::from(2);
    }
    let (src, dst) = (&args[0], &args[1]);
    let target = args.get(2).map(String::as_str).unwrap_or("hf");
    let device = Default::default();
    let result = checkpoint::load_any::<NdArray>(src, &device).and_then(|model| match target {
        "hf" => hf::save(&model, dst),
        "native" => checkpoint::save(&model, dst),
        other => Err(causal_lm::CausalLmError::InvalidParameter {
            field: "format",
            value: other.to_string(),
            expected: "hf or native",
        }),
    });
    if let Err(e) = result {
        eprintln!("error: {e}");
        return ExitCode::from(1);
    }
    let tok = std::path::Path::new(src).join("tokenizer.json");
    if tok.is_file()
        && let Err(e) = std::fs::copy(&tok, std::path::Path::new(dst).join("tokenizer.json"))
    {
        eprintln!("error: copying tokenizer.json: {e}");
        return ExitCode::from(1);
    }
    println!("{{\"written\": \"{dst}\", \"format\": \"{target}\"}}");
    ExitCode::SUCCESS
}
