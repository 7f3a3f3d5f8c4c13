//! The public Debian data the docs and examples use, read from where Debian installs it:
//! `fortunes` (the example's private stand-in) and `wordnet-base` (a public corpus). `.ci/run`
//! installs both and sets `DISTIL_DP_REQUIRE_DEBIAN_DATA=1`, so there a missing package
//! fails; elsewhere a machine without them skips these tests with a message.

use std::path::Path;

use distil_dp::public_corpus::{is_wordnet, wordnet_texts};
use distil_dp::records::{LabelColumns, RecordFormat, read_records};

/// Whether `path` is there; if not, fails when the data is required, else says it skips.
fn present(path: &str, package: &str) -> bool {
    if Path::new(path).exists() {
        return true;
    }
    assert!(
        std::env::var_os("DISTIL_DP_REQUIRE_DEBIAN_DATA").is_none(),
        "{path} is missing: apt-get install -y {package}"
    );
    eprintln!("skipped: {path} is missing (apt-get install -y {package})");
    false
}

#[test]
fn debian_fortunes_are_read_once_each_with_their_category() {
    let dir = "/usr/share/games/fortunes";
    if !present(dir, "fortunes") {
        return;
    }
    let records = read_records(dir, RecordFormat::Auto, &LabelColumns::All).unwrap();
    assert!(records.len() > 5_000, "{} fortunes", records.len());
    let mut categories: Vec<&str> = records.iter().map(|r| r.labels[0].1.as_str()).collect();
    categories.dedup();
    // one category per file, the `.u8` links and `.dat` indexes skipped
    assert!(categories.contains(&"fortunes") && categories.contains(&"science"));
    assert!(
        categories
            .iter()
            .all(|c| !c.ends_with(".u8") && !c.ends_with(".dat")),
        "{categories:?}"
    );
    let mut sorted = categories.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), categories.len(), "a category read twice");
    assert!(records.iter().all(|r| !r.text.trim().is_empty()));
}

#[test]
fn wordnet_gives_its_117_659_glosses() {
    let dir = Path::new("/usr/share/wordnet");
    if !present("/usr/share/wordnet/data.noun", "wordnet-base") {
        return;
    }
    assert!(is_wordnet(dir));
    let texts = wordnet_texts(dir).unwrap();
    assert_eq!(texts.len(), 117_659); // WordNet 3.0's synsets
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("disaster: an act that has disastrous consequences"))
    );
    assert!(texts.iter().all(|t| t.contains(": ") && !t.contains(" | ")));
}
