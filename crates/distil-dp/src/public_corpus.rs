//! Public corpora for the tokenizer and the non-private pre-training (stage 0): plain text,
//! JSONL or CSV files, and Princeton WordNet's glosses (Debian's `wordnet-base`,
//! `/usr/share/wordnet`), plus the held-out part that measures a model on public text.
//!
//! WordNet 3.0 (Miller 1995, "WordNet: a lexical database for English", CACM 38(11); Princeton
//! University, WordNet licence) holds 117 659 synsets, each with a definition in modern
//! English and often example sentences: about 9 MB of public English, installable on any
//! Debian machine with `apt-get install -y wordnet-base`. Nothing here reads private data.

use std::fs;
use std::path::Path;

use crate::error::DistilDpError;

/// WordNet's data files, in the order their glosses are read.
const WORDNET_FILES: [&str; 4] = ["data.noun", "data.verb", "data.adj", "data.adv"];

/// One text in this many is held out of the pre-training (the last of each run of them).
pub const HELD_OUT_EVERY: usize = 20;

/// At most this many held-out texts are scored (enough for a stable perplexity, cheap).
pub const HELD_OUT_MAX: usize = 400;

/// Whether `path` is a WordNet dictionary directory (it holds `data.noun`).
pub fn is_wordnet(path: &Path) -> bool {
    path.is_dir() && path.join("data.noun").is_file()
}

/// The glosses of the WordNet dictionary in `dir`, one text per synset:
/// `lemma: definition; "example"` (underscores in lemmas become spaces). The licence
/// header (lines starting with two spaces) is skipped; a data line without a gloss is an
/// error naming its file and line.
pub fn wordnet_texts(dir: &Path) -> Result<Vec<String>, DistilDpError> {
    let mut texts = Vec::new();
    for name in WORDNET_FILES {
        let path = dir.join(name);
        if !path.is_file() {
            continue;
        }
        let content = fs::read_to_string(&path).map_err(|source| DistilDpError::Io {
            path: path.clone(),
            source,
        })?;
        for (i, line) in content.lines().enumerate() {
            if line.starts_with("  ") || line.trim().is_empty() {
                continue;
            }
            let bad = |message: &str| DistilDpError::Data {
                path: path.clone(),
                line: i + 1,
                message: format!("not a WordNet data line: {message}"),
            };
            let (fields, gloss) = line
                .split_once(" | ")
                .ok_or_else(|| bad("no ` | ` gloss"))?;
            let lemma = fields
                .split_whitespace()
                .nth(4)
                .ok_or_else(|| bad("fewer than 5 fields before the gloss"))?;
            // adjectives may carry a syntactic marker: `galore(ip)`
            let lemma = lemma.split('(').next().unwrap_or(lemma).replace('_', " ");
            let gloss = gloss.trim();
            if !gloss.is_empty() {
                texts.push(format!("{lemma}: {gloss}"));
            }
        }
    }
    if texts.is_empty() {
        return Err(DistilDpError::EmptyData {
            path: dir.to_path_buf(),
            detail: "no WordNet gloss (expected data.noun, data.verb, data.adj or data.adv)".into(),
        });
    }
    Ok(texts)
}

/// Consecutive `texts` joined with a space into paragraphs of at most about `max_chars`
/// characters (a longer text stays whole), so short texts fill a model's block instead of
/// padding it.
pub fn pack(texts: &[String], max_chars: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for t in texts {
        if !current.is_empty() && current.len() + 1 + t.len() > max_chars {
            out.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(t);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The public texts split into (pre-training, held out): one in [`HELD_OUT_EVERY`] held
/// out, at most [`HELD_OUT_MAX`] of them (the others stay out of both), so a model's
/// perplexity on public text it was not trained on can be reported without touching any
/// private split.
pub fn held_out_split(texts: Vec<String>) -> (Vec<String>, Vec<String>) {
    let mut train = Vec::with_capacity(texts.len());
    let mut held = Vec::new();
    for (i, t) in texts.into_iter().enumerate() {
        if i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1 {
            if held.len() < HELD_OUT_MAX {
                held.push(t);
            }
        } else {
            train.push(t);
        }
    }
    (train, held)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wordnet_glosses_are_read_with_their_lemmas() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("data.noun"),
            "  1 This software and database is being provided\n\
             00217499 04 n 01 disaster 0 001 @ 00217014 n 0000 | an act that has disastrous consequences  \n\
             00217593 04 n 02 kill 1 laying_waste 0 002 @ 00217014 n 0000 | the destruction of an enemy plane; \"the pilot reported two kills\"  \n",
        )
        .unwrap();
        fs::write(
            dir.path().join("data.adj"),
            "00003 00 s 01 galore(ip) 0 000 | in great numbers  \n",
        )
        .unwrap();
        assert!(is_wordnet(dir.path()));
        assert_eq!(
            wordnet_texts(dir.path()).unwrap(),
            [
                "disaster: an act that has disastrous consequences",
                "kill: the destruction of an enemy plane; \"the pilot reported two kills\"",
                "galore: in great numbers",
            ]
        );
        fs::write(dir.path().join("data.verb"), "00001 no gloss here\n").unwrap();
        let err = wordnet_texts(dir.path()).unwrap_err().to_string();
        assert!(err.contains("data.verb") && err.contains('1'), "{err}");
    }

    #[test]
    fn packing_fills_paragraphs_and_the_split_holds_one_in_twenty_out() {
        let texts: Vec<String> = ["aa", "bbb", "c", "dddddddddd"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(pack(&texts, 8), ["aa bbb c", "dddddddddd"]);
        let (train, held) = held_out_split((0..100).map(|i| i.to_string()).collect());
        assert_eq!(held, ["19", "39", "59", "79", "99"]);
        assert_eq!(train.len(), 95);
        assert!(held.iter().all(|h| !train.contains(h)));
    }
}
