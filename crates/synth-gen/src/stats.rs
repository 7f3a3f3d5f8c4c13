//! Statistics of a synthetic corpus, overall and per control code: how long the samples are
//! (in characters and tokens, against the generation budget), how varied (distinct-1 and
//! distinct-2), how repetitive, and how many are empty. Computed from the samples alone, so
//! a corpus file read back with [`read_samples`] gives the same numbers as the run that
//! wrote it.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use causal_lm::Tokenizer;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{SynthGenError, invalid};
use crate::lines::complete_lines;
use crate::output::{Sample, io};

/// The statistics of one group of samples (the whole corpus, or one control code's samples).
///
/// Words are the whitespace-separated pieces of a text (`str::split_whitespace`, case and
/// punctuation kept); n-grams never cross from one sample into the next. A ratio whose
/// denominator is 0 (no sample, no word) is 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextStats {
    /// Samples in the group.
    pub samples: u64,
    /// Samples whose text is empty or whitespace only.
    pub empty: u64,
    /// `empty / samples`.
    pub empty_share: f64,
    /// Mean length in characters (Unicode scalar values).
    pub mean_chars: f64,
    /// Mean length in tokens, as the token counter given to [`CorpusStats::compute`] counts
    /// them (the tokenizer's encoding of the text).
    pub mean_tokens: f64,
    /// Samples of at least [`CorpusStats::budget`] tokens: they hit the generation budget
    /// (`max_new_tokens`) and were cut there, not ended by the model.
    pub budget_hits: u64,
    /// `budget_hits / samples`.
    pub budget_hit_share: f64,
    /// Words in all samples of the group.
    pub words: u64,
    /// Distinct-1: distinct words over all words of the group.
    pub distinct_1: f64,
    /// Distinct-2: distinct word bigrams over all word bigrams of the group.
    pub distinct_2: f64,
    /// Repetition: in each sample with at least 4 words, the share of its word 4-grams that
    /// repeat an earlier 4-gram of the same sample; averaged over those samples.
    pub repeated_4grams: f64,
}

/// The statistics of one control code's samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodeStats {
    /// The code's `(column, value)` labels, as the samples carry them.
    pub labels: Vec<(String, String)>,
    /// Its samples' statistics.
    pub stats: TextStats,
}

/// Statistics of a synthetic corpus: overall and per control code, with the generation budget
/// they are measured against.
///
/// ```
/// use synth_gen::{CorpusStats, Sample};
///
/// let sample = |index, text: &str, stars: &str| Sample {
///     index,
///     text: text.into(),
///     labels: vec![("Stars".into(), stars.into())],
/// };
/// let samples = [sample(0, "good food good food", "5"), sample(1, "bad", "1")];
/// // count tokens as words here; the pipeline uses its tokenizer
/// let words = |t: &str| Ok::<_, std::convert::Infallible>(t.split_whitespace().count());
/// let stats = CorpusStats::compute(&samples, 4, words).unwrap();
/// assert_eq!(stats.overall.samples, 2);
/// assert_eq!(stats.overall.budget_hits, 1); // 4 tokens of a budget of 4
/// assert_eq!(stats.overall.distinct_1, 3.0 / 5.0); // good, food, bad of 5 words
/// assert_eq!(stats.per_code[0].stats.distinct_2, 2.0 / 3.0); // good food, food good
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorpusStats {
    /// The generation budget: new tokens at most per sample (`max_new_tokens`).
    pub budget: usize,
    /// All samples.
    pub overall: TextStats,
    /// Each control code's samples, codes in order of their first sample.
    pub per_code: Vec<CodeStats>,
}

impl CorpusStats {
    /// The statistics of `samples` (in the order given; a code's position is that of its
    /// first sample), with `tokens` counting a text's tokens and `budget` the generation's
    /// `max_new_tokens`. The first error of `tokens` is returned as it is.
    pub fn compute<E>(
        samples: &[Sample],
        budget: usize,
        mut tokens: impl FnMut(&str) -> Result<usize, E>,
    ) -> Result<Self, E> {
        let mut overall = Tally::default();
        let mut codes: Vec<(&[(String, String)], Tally)> = Vec::new();
        let mut position: HashMap<&[(String, String)], usize> = HashMap::new();
        for sample in samples {
            let n = tokens(&sample.text)?;
            let labels = sample.labels.as_slice();
            let at = *position.entry(labels).or_insert_with(|| {
                codes.push((labels, Tally::default()));
                codes.len() - 1
            });
            overall.add(&sample.text, n, budget);
            codes[at].1.add(&sample.text, n, budget);
        }
        Ok(Self {
            budget,
            overall: overall.stats(),
            per_code: codes
                .into_iter()
                .map(|(labels, tally)| CodeStats {
                    labels: labels.to_vec(),
                    stats: tally.stats(),
                })
                .collect(),
        })
    }

    /// [`CorpusStats::compute`] with tokens counted by `tokenizer`'s encoding of each text
    /// (what the student is trained on); a text it cannot encode is an
    /// [`SynthGenError::InvalidParameter`] naming the sample.
    pub fn with_tokenizer(
        samples: &[Sample],
        budget: usize,
        tokenizer: &Tokenizer,
    ) -> Result<Self, SynthGenError> {
        let mut index = samples.iter().map(|s| s.index);
        Self::compute(samples, budget, |text| {
            let i = index.next().unwrap_or_default();
            tokenizer
                .encode(text)
                .map(|ids| ids.len())
                .map_err(|e| invalid("sample text", format!("sample {i}"), e))
        })
    }
}

/// Running counts of one group.
#[derive(Debug, Default)]
struct Tally<'a> {
    samples: u64,
    empty: u64,
    chars: u64,
    tokens: u64,
    hits: u64,
    words: u64,
    unigrams: HashSet<&'a str>,
    bigrams: u64,
    distinct_bigrams: HashSet<(&'a str, &'a str)>,
    repetition_sum: f64,
    repetition_samples: u64,
}

impl<'a> Tally<'a> {
    fn add(&mut self, text: &'a str, tokens: usize, budget: usize) {
        self.samples += 1;
        self.empty += u64::from(text.trim().is_empty());
        self.chars += text.chars().count() as u64;
        self.tokens += tokens as u64;
        self.hits += u64::from(budget > 0 && tokens >= budget);
        let words: Vec<&str> = text.split_whitespace().collect();
        self.words += words.len() as u64;
        self.unigrams.extend(words.iter().copied());
        for pair in words.windows(2) {
            self.bigrams += 1;
            self.distinct_bigrams.insert((pair[0], pair[1]));
        }
        if words.len() >= 4 {
            let grams: Vec<&[&str]> = words.windows(4).collect();
            let distinct: HashSet<&[&str]> = grams.iter().copied().collect();
            self.repetition_sum += (grams.len() - distinct.len()) as f64 / grams.len() as f64;
            self.repetition_samples += 1;
        }
    }

    fn stats(&self) -> TextStats {
        let ratio = |a: f64, b: u64| if b == 0 { 0.0 } else { a / b as f64 };
        TextStats {
            samples: self.samples,
            empty: self.empty,
            empty_share: ratio(self.empty as f64, self.samples),
            mean_chars: ratio(self.chars as f64, self.samples),
            mean_tokens: ratio(self.tokens as f64, self.samples),
            budget_hits: self.hits,
            budget_hit_share: ratio(self.hits as f64, self.samples),
            words: self.words,
            distinct_1: ratio(self.unigrams.len() as f64, self.words),
            distinct_2: ratio(self.distinct_bigrams.len() as f64, self.bigrams),
            repeated_4grams: ratio(self.repetition_sum, self.repetition_samples),
        }
    }
}

/// The samples of a corpus file written by [`crate::JsonlSink`] (or [`crate::merge_shards`]),
/// in file order: `index`, `text`, and every other string field as a label, labels sorted by
/// column name. A last line cut short by a kill is left out; a line that is not a sample is
/// an [`SynthGenError::Io`] naming the file and the line.
pub fn read_samples(path: &Path) -> Result<Vec<Sample>, SynthGenError> {
    let file = File::open(path).map_err(|e| io(path, e))?;
    let mut samples = Vec::new();
    complete_lines(BufReader::new(file), path, |line| {
        let value: Value = serde_json::from_str(line)
            .map_err(|e| format!("not a sample written by synth-gen ({e})"))?;
        let Value::Object(object) = value else {
            return Err("not a JSON object".into());
        };
        let index = object
            .get("index")
            .and_then(Value::as_u64)
            .ok_or("no integer \"index\" field")?;
        let text = object
            .get("text")
            .and_then(Value::as_str)
            .ok_or("no string \"text\" field")?
            .to_string();
        let mut labels: Vec<(String, String)> = object
            .iter()
            .filter(|(k, _)| *k != "index" && *k != "text")
            .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
            .collect();
        labels.sort();
        samples.push(Sample {
            index,
            text,
            labels,
        });
        Ok(())
    })?;
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::convert::Infallible;

    fn sample(index: u64, text: &str, code: &str) -> Sample {
        Sample {
            index,
            text: text.into(),
            labels: vec![("Code".into(), code.into())],
        }
    }

    /// Tokens counted as words.
    fn words(text: &str) -> Result<usize, Infallible> {
        Ok(text.split_whitespace().count())
    }

    #[test]
    fn distinct_n_counts_unique_words_and_bigrams_over_all() {
        // words: a b a b c | a b  -> 7 words, distinct {a, b, c} = 3
        // bigrams: ab ba ab bc | ab -> 5, distinct {ab, ba, bc} = 3
        let samples = [sample(0, "a b a b c", "x"), sample(1, "a b", "x")];
        let s = CorpusStats::compute(&samples, 100, words).unwrap().overall;
        assert_eq!(s.words, 7);
        assert_eq!(s.distinct_1, 3.0 / 7.0);
        assert_eq!(s.distinct_2, 3.0 / 5.0);
    }

    #[test]
    fn bigrams_do_not_cross_samples() {
        // "a" then "b": no bigram at all (a bigram across the samples would be "a b")
        let samples = [sample(0, "a", "x"), sample(1, "b", "x")];
        let s = CorpusStats::compute(&samples, 100, words).unwrap().overall;
        assert_eq!(s.distinct_2, 0.0);
        assert_eq!(s.distinct_1, 1.0);
    }

    #[test]
    fn repetition_is_the_mean_share_of_repeated_4grams_per_sample() {
        // "a b c d a b c d": 4-grams abcd bcda cdab dabc abcd -> 5, one repeat: 1/5
        // "w x y z": one 4-gram, no repeat: 0
        // "short text": fewer than 4 words, not averaged
        let samples = [
            sample(0, "a b c d a b c d", "x"),
            sample(1, "w x y z", "x"),
            sample(2, "short text", "x"),
        ];
        let s = CorpusStats::compute(&samples, 100, words).unwrap().overall;
        assert!(
            (s.repeated_4grams - (0.2 + 0.0) / 2.0).abs() < 1e-12,
            "{s:?}"
        );
        let looping = [sample(0, "go go go go go go", "x")]; // 3 4-grams, 2 repeats
        let s = CorpusStats::compute(&looping, 100, words).unwrap().overall;
        assert!((s.repeated_4grams - 2.0 / 3.0).abs() < 1e-12, "{s:?}");
    }

    #[test]
    fn empty_share_lengths_and_budget_hits() {
        let samples = [
            sample(0, "", "x"),
            sample(1, "  \n", "x"),
            sample(2, "one two three", "x"),
            sample(3, "héllo", "x"),
        ];
        let s = CorpusStats::compute(&samples, 3, words).unwrap().overall;
        assert_eq!((s.samples, s.empty), (4, 2));
        assert_eq!(s.empty_share, 0.5);
        // 0 + 3 + 13 + 5 characters (é is one)
        assert_eq!(s.mean_chars, 21.0 / 4.0);
        assert_eq!(s.mean_tokens, 4.0 / 4.0);
        assert_eq!((s.budget_hits, s.budget_hit_share), (1, 0.25));
    }

    #[test]
    fn samples_are_grouped_per_code_in_order_of_first_appearance() {
        let samples = [
            sample(0, "b1 b1", "b"),
            sample(1, "a1", "a"),
            sample(2, "b2 b2 b2", "b"),
        ];
        let stats = CorpusStats::compute(&samples, 3, words).unwrap();
        let codes: Vec<&str> = stats
            .per_code
            .iter()
            .map(|c| c.labels[0].1.as_str())
            .collect();
        assert_eq!(codes, ["b", "a"]);
        let b = &stats.per_code[0].stats;
        assert_eq!((b.samples, b.budget_hits, b.words), (2, 1, 5));
        assert_eq!(b.mean_chars, (5.0 + 8.0) / 2.0);
        assert_eq!(b.distinct_1, 2.0 / 5.0);
        assert_eq!(stats.per_code[1].stats.samples, 1);
        assert_eq!(stats.overall.samples, 3);
    }

    #[test]
    fn no_samples_give_zeros_not_nan() {
        let stats = CorpusStats::compute(&[], 8, words).unwrap();
        let s = &stats.overall;
        assert!(stats.per_code.is_empty());
        for v in [
            s.empty_share,
            s.mean_chars,
            s.mean_tokens,
            s.budget_hit_share,
            s.distinct_1,
            s.distinct_2,
            s.repeated_4grams,
        ] {
            assert_eq!(v, 0.0);
        }
        serde_json::to_string(&stats).unwrap();
    }

    #[test]
    fn a_token_counter_error_is_returned() {
        let samples = [sample(0, "a", "x")];
        let e = CorpusStats::compute(&samples, 3, |_| Err::<usize, _>("no")).unwrap_err();
        assert_eq!(e, "no");
    }

    #[test]
    fn a_corpus_file_reads_back_as_samples() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.jsonl");
        std::fs::write(
            &path,
            "{\"index\":3,\"text\":\"hi\",\"Stars\":\"5\",\"Cat\":\"Food\"}\n{\"index\":4,\"te",
        )
        .unwrap();
        let samples = read_samples(&path).unwrap();
        assert_eq!(
            samples,
            [Sample {
                index: 3,
                text: "hi".into(),
                labels: vec![("Cat".into(), "Food".into()), ("Stars".into(), "5".into())],
            }]
        );
        std::fs::write(&path, "{\"index\":3}\n").unwrap();
        let e = read_samples(&path).unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("text"), "{e}");
    }

    proptest! {
        #[test]
        fn ratios_stay_in_range_and_codes_partition_the_corpus(
            texts in proptest::collection::vec(("[abc ]{0,24}", 0usize..3), 0..24),
            budget in 0usize..6,
        ) {
            let samples: Vec<Sample> = texts
                .iter()
                .enumerate()
                .map(|(i, (t, c))| sample(i as u64, t, &c.to_string()))
                .collect();
            let stats = CorpusStats::compute(&samples, budget, words).unwrap();
            let all = std::iter::once(&stats.overall).chain(stats.per_code.iter().map(|c| &c.stats));
            for s in all {
                for v in [s.empty_share, s.budget_hit_share, s.distinct_1, s.distinct_2, s.repeated_4grams] {
                    prop_assert!((0.0..=1.0).contains(&v), "{s:?}");
                }
                prop_assert!(s.empty <= s.samples && s.budget_hits <= s.samples);
            }
            let sum = |f: fn(&TextStats) -> u64| stats.per_code.iter().map(|c| f(&c.stats)).sum::<u64>();
            prop_assert_eq!(sum(|s| s.samples), samples.len() as u64);
            prop_assert_eq!(sum(|s| s.empty), stats.overall.empty);
            prop_assert_eq!(sum(|s| s.budget_hits), stats.overall.budget_hits);
            prop_assert_eq!(sum(|s| s.words), stats.overall.words);
            let chars: f64 = stats.per_code.iter().map(|c| c.stats.mean_chars * c.stats.samples as f64).sum();
            prop_assert!((chars - stats.overall.mean_chars * samples.len() as f64).abs() < 1e-9);
        }
    }
}
