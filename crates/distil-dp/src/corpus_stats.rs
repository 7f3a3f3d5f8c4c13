//! The report's "Synthetic corpus" section: what stage 2 produced, recomputed from
//! `synthetic.jsonl` and its drop log (so a run that resumes after generation reports the
//! same numbers): the statistics of [`synth_gen::CorpusStats`] overall and per control code,
//! the samples dropped by reason, and the first samples of each code.
//!
//! The synthetic samples are post-processing of the DP teacher, so printing them spends no
//! budget; nothing here reads a private record.

use std::path::Path;

use causal_lm::Tokenizer;
use serde::{Deserialize, Serialize};
use synth_gen::{CorpusStats, DropReason, Drops, Sample};

use crate::error::DistilDpError;

/// Samples shown per control code.
pub const EXAMPLES_PER_CODE: usize = 2;

/// Characters at most of a shown sample (longer ones are cut, with `…`).
pub const EXAMPLE_CHARS: usize = 200;

/// One shown sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// Its index in the corpus.
    pub index: u64,
    /// Its text, cut at [`EXAMPLE_CHARS`] characters.
    pub text: String,
}

/// The first samples (by index) of one control code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodeExamples {
    /// The code's `(column, value)` labels.
    pub labels: Vec<(String, String)>,
    /// Its first [`EXAMPLES_PER_CODE`] samples.
    pub samples: Vec<Example>,
}

/// The synthetic corpus as `report.json` describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyntheticCorpus {
    /// Samples generated: the sum of the label release's counts.
    pub generated: u64,
    /// Samples in `synthetic.jsonl`.
    pub written: u64,
    /// Samples generated but not written, by reason (from `synthetic.jsonl.dropped`).
    pub dropped: Drops,
    /// Lengths, distinct-n, repetition and empty share, overall and per code, against the
    /// budget `generation.sampling.max_new_tokens`; tokens as the run's tokenizer encodes
    /// each text.
    pub stats: CorpusStats,
    /// The first samples of each code, codes in the order of `stats.per_code`.
    pub examples: Vec<CodeExamples>,
}

impl SyntheticCorpus {
    /// Reads the corpus file `path` (and its drop log) of a run that generated `generated`
    /// samples with a budget of `budget` new tokens, counting tokens with `tokenizer`.
    pub fn read(
        path: &Path,
        generated: u64,
        budget: usize,
        tokenizer: &Tokenizer,
    ) -> Result<Self, DistilDpError> {
        let mut samples = synth_gen::read_samples(path)?;
        samples.sort_by_key(|s| s.index);
        let stats = CorpusStats::with_tokenizer(&samples, budget, tokenizer)?;
        let examples = stats
            .per_code
            .iter()
            .map(|code| CodeExamples {
                labels: code.labels.clone(),
                samples: samples
                    .iter()
                    .filter(|s| s.labels == code.labels)
                    .take(EXAMPLES_PER_CODE)
                    .map(example)
                    .collect(),
            })
            .collect();
        Ok(Self {
            generated,
            written: samples.len() as u64,
            dropped: synth_gen::Drops::read(path)?,
            stats,
            examples,
        })
    }

    /// The one-line comparison of the mean length with the generation budget.
    pub fn budget_line(&self) -> String {
        let o = &self.stats.overall;
        format!(
            "mean length {:.1} tokens of a budget of {} ({:.1}% hit the budget)",
            o.mean_tokens,
            self.stats.budget,
            100.0 * o.budget_hit_share
        )
    }

    /// The drops in words: `N dropped: reason x, reason y`.
    pub fn drops_line(&self) -> String {
        let d = &self.dropped;
        if d.total() == 0 {
            return "none dropped".into();
        }
        let reasons: Vec<String> = DropReason::ALL
            .iter()
            .filter(|&&r| d.get(r) > 0)
            .map(|&r| format!("{} {} ({})", r.name(), d.get(r), r.describe()))
            .collect();
        format!("{} dropped: {}", d.total(), reasons.join(", "))
    }

    /// The "Synthetic corpus" section of `report.md` (its heading included).
    pub fn markdown(&self) -> String {
        let o = &self.stats.overall;
        let mut s = format!(
            "## Synthetic corpus\n\n`synthetic.jsonl`: {} samples written of {} generated; {}.\n\nOverall: {}; {:.1} characters on average.\n\n",
            self.written,
            self.generated,
            self.drops_line(),
            self.budget_line(),
            o.mean_chars,
        );
        s.push_str("| control code | samples | mean characters | mean tokens | hit the budget | distinct-1 | distinct-2 | repeated 4-grams | empty |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        let rows = std::iter::once(("**all**".to_string(), o)).chain(
            self.stats
                .per_code
                .iter()
                .map(|c| (escape(&code_name(&c.labels)), &c.stats)),
        );
        for (name, t) in rows {
            s.push_str(&format!(
                "| {name} | {} | {:.1} | {:.1} | {:.1}% | {:.3} | {:.3} | {:.3} | {:.1}% |\n",
                t.samples,
                t.mean_chars,
                t.mean_tokens,
                100.0 * t.budget_hit_share,
                t.distinct_1,
                t.distinct_2,
                t.repeated_4grams,
                100.0 * t.empty_share,
            ));
        }
        s.push_str(&format!(
            "\nTokens as the run's tokenizer encodes each text; words split at whitespace. Distinct-n: distinct word n-grams over all (n-grams within a sample). Repeated 4-grams: per sample, the share of its word 4-grams that repeat an earlier one, averaged over samples of 4 words or more.\n\nThe first {EXAMPLES_PER_CODE} samples of each code (by index, cut at {EXAMPLE_CHARS} characters; post-processing of the DP teacher, no private record):\n\n",
        ));
        for code in &self.examples {
            s.push_str(&format!("- {}\n", escape(&code_name(&code.labels))));
            for e in &code.samples {
                s.push_str(&format!("  - #{}: {}\n", e.index, escape(&e.text)));
            }
        }
        s.push('\n');
        s
    }
}

/// `column: value, column: value`.
fn code_name(labels: &[(String, String)]) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `sample` shown: its text cut at [`EXAMPLE_CHARS`] characters.
fn example(sample: &Sample) -> Example {
    let mut text: String = sample.text.chars().take(EXAMPLE_CHARS).collect();
    if sample.text.chars().nth(EXAMPLE_CHARS).is_some() {
        text.push('…');
    }
    Example {
        index: sample.index,
        text,
    }
}

/// `text` as literal markdown on one line: ASCII punctuation backslash-escaped (no emphasis,
/// link, HTML or table cell boundary can start in it), line breaks shown as `⏎`, other
/// control characters as spaces.
pub fn escape(text: &str) -> String {
    let mut s = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => s.push('⏎'),
            c if c.is_control() => s.push(' '),
            c if c.is_ascii_punctuation() => {
                s.push('\\');
                s.push(c);
            }
            c => s.push(c),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_text_stays_literal_on_one_line() {
        assert_eq!(
            escape("a|b *c* <b>\n`x`\t[l](u)"),
            "a\\|b \\*c\\* \\<b\\>⏎\\`x\\` \\[l\\]\\(u\\)"
        );
    }

    #[test]
    fn examples_are_cut_at_the_limit() {
        let long = Sample {
            index: 4,
            text: "é".repeat(EXAMPLE_CHARS + 1),
            labels: vec![],
        };
        let e = example(&long);
        assert_eq!(e.text.chars().count(), EXAMPLE_CHARS + 1);
        assert!(e.text.ends_with('…'));
        let short = Sample {
            text: "é".repeat(EXAMPLE_CHARS),
            ..long
        };
        assert_eq!(example(&short).text, short.text);
    }
}
