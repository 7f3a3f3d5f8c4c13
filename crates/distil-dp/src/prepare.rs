//! Before any training: the private records and their splits, and the public tokenizer.

use causal_lm::{Tokenizer, TokenizerTrainer};

use crate::config::PipelineConfig;
use crate::embedded;
use crate::error::DistilDpError;
use crate::fingerprint::DataFingerprint;
use crate::records::{LabelColumns, Record, read_records};
use crate::run_dir::{RunDir, write_atomic};
use crate::split::Splits;

/// Records of the embedded corpus when no data path is given.
pub const EMBEDDED_RECORDS: usize = 2500;
/// Public sentences of the embedded corpus for the tokenizer.
pub const EMBEDDED_PUBLIC: usize = 4000;

/// The private records split into train / validation / test (the file, or the embedded
/// corpus), after keeping at most `data.max_records` of them (the split's keyed hash decides
/// which). No text is logged.
pub fn load_splits(config: &PipelineConfig) -> Result<Splits<Record>, DistilDpError> {
    load_data(config).map(|(splits, _)| splits)
}

/// [`load_splits`], and the fingerprints of the input and of the training split.
pub fn load_data(
    config: &PipelineConfig,
) -> Result<(Splits<Record>, DataFingerprint), DistilDpError> {
    let data = &config.data;
    let records = match &data.path {
        Some(path) => {
            let labels = if data.label_columns.is_empty() {
                LabelColumns::All
            } else {
                LabelColumns::Named(data.label_columns.clone())
            };
            read_records(path, data.format, &labels)?
        }
        None => embedded::private_records(EMBEDDED_RECORDS),
    };
    let all = if data.path.is_none() {
        records.clone()
    } else {
        Vec::new()
    };
    let mut splits = data.split.split(records)?;
    if let Some(max) = data.max_records {
        // shrink every part in proportion (each is in the order of its keyed hash)
        let total = splits.train.len() + splits.validation.len() + splits.test.len();
        if max < total {
            let keep = |len: usize| ((len as f64) * max as f64 / total as f64).ceil() as usize;
            splits.train.truncate(keep(splits.train.len()));
            splits.validation.truncate(keep(splits.validation.len()));
            splits.test.truncate(keep(splits.test.len()));
        }
    }
    let fingerprint = DataFingerprint::new(data.path.as_deref(), &all, &splits.train)?;
    Ok((splits, fingerprint))
}

/// The run's tokenizer: the one in the run directory when a previous run made it, else the
/// configured `tokenizer.json`, else one trained on the public corpus (the embedded public
/// part, or `tokenizer.public_corpus`): never on the private records. Saved in the run
/// directory when it was not there.
pub fn tokenizer(config: &PipelineConfig, dir: &RunDir) -> Result<Tokenizer, DistilDpError> {
    let tokenizer = load_tokenizer(config, dir)?;
    save_tokenizer(dir, &tokenizer)?;
    Ok(tokenizer)
}

/// [`tokenizer`] without writing anything (the pipeline saves it once every check passed).
pub fn load_tokenizer(config: &PipelineConfig, dir: &RunDir) -> Result<Tokenizer, DistilDpError> {
    let saved = dir.tokenizer_path();
    if saved.exists() {
        return Ok(Tokenizer::from_file(&saved)?);
    }
    Ok(match &config.tokenizer.path {
        Some(path) => Tokenizer::from_file(path)?,
        None => {
            check_public_corpus(config)?;
            let public = public_texts(config)?;
            TokenizerTrainer::new(config.tokenizer.vocab_size).train(public.iter())?
        }
    })
}

/// Writes `tokenizer.json` to the run directory unless it is there.
pub fn save_tokenizer(dir: &RunDir, tokenizer: &Tokenizer) -> Result<(), DistilDpError> {
    let saved = dir.tokenizer_path();
    if !saved.exists() {
        write_atomic(&saved, tokenizer.to_json()?.as_bytes())?;
    }
    Ok(())
}

/// Refuses a public corpus that is (or lies inside) the private data: the tokenizer and the
/// pre-training would read the private records outside any accounting.
pub fn check_public_corpus(config: &PipelineConfig) -> Result<(), DistilDpError> {
    let Some(data) = &config.data.path else {
        return Ok(());
    };
    let canonical = |p: &std::path::Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let data = canonical(data);
    for file in &config.tokenizer.public_corpus {
        if canonical(file).starts_with(&data) {
            return Err(DistilDpError::InvalidArgument {
                field: "tokenizer.public_corpus",
                value: file.display().to_string(),
                expected: "public text files other than the private data (data.path): the tokenizer and the pre-training read them outside the privacy accounting",
            });
        }
    }
    Ok(())
}

/// The public corpus: `tokenizer.public_corpus`'s files (text, JSONL, CSV, or a WordNet
/// directory such as `/usr/share/wordnet`, see [`crate::public_corpus`]), else the embedded
/// public part. It trains the tokenizer and, but for its held-out part, the optional
/// non-private pre-training (stage 0).
pub fn public_texts(config: &PipelineConfig) -> Result<Vec<String>, DistilDpError> {
    if config.tokenizer.public_corpus.is_empty() {
        return Ok(embedded::public_texts(EMBEDDED_PUBLIC));
    }
    let mut texts = Vec::new();
    for path in &config.tokenizer.public_corpus {
        if crate::public_corpus::is_wordnet(path) {
            texts.extend(crate::public_corpus::wordnet_texts(path)?);
        } else {
            texts.extend(crate::data::read_texts(path)?);
        }
    }
    Ok(texts)
}
