//! The bench filter of a criterion bench's command line, for benches whose set-up is costly
//! enough (a GPT-2, a σ calibration) to skip for the benches a filter leaves out. Included
//! with `#[path]` by `crates/dp-optim/benches/gpt2_step.rs` and
//! `crates/distil-dp/benches/train_step.rs`.

/// The bench filter of the command line (`cargo bench ... -- FILTER`): the first argument
/// that is neither an option nor the value of one of criterion's options that take a value.
pub fn bench_filter() -> Option<String> {
    const WITH_VALUE: &[&str] = &[
        "--measurement-time",
        "--warm-up-time",
        "--profile-time",
        "--sample-size",
        "--save-baseline",
        "--baseline",
        "--load-baseline",
        "--noise-threshold",
        "--significance-level",
        "--confidence-level",
        "--nresamples",
        "--output-format",
        "--color",
        "--plotting-backend",
        "--format",
    ];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if WITH_VALUE.contains(&a.as_str()) {
            args.next();
        } else if !a.starts_with('-') {
            return Some(a);
        }
    }
    None
}

/// Whether the bench `id` runs under `filter` (criterion's default substring match).
pub fn selected(filter: &Option<String>, id: &str) -> bool {
    filter.as_ref().is_none_or(|f| id.contains(f.as_str()))
}
