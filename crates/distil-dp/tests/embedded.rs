//! The embedded corpus: deterministic, labelled, and disjoint from its public part.

use std::collections::{HashMap, HashSet};

use distil_dp::embedded::{LABEL_COLUMNS, private_records, public_texts};

#[test]
fn the_embedded_corpus_is_fixed_labelled_and_separate_from_the_public_part() {
    let a = private_records(2000);
    assert_eq!(a, private_records(2000), "deterministic");
    assert_eq!(
        a[..100],
        private_records(100)[..],
        "a prefix of the larger corpus"
    );
    let mut stars: HashMap<String, usize> = HashMap::new();
    for r in &a {
        let names: Vec<&str> = r.labels.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, LABEL_COLUMNS);
        *stars.entry(r.labels[1].1.clone()).or_default() += 1;
        assert!(!r.text.trim().is_empty());
    }
    assert_eq!(stars.len(), 5, "{stars:?}");
    assert!(
        stars["5.0"] > 2 * stars["1.0"],
        "skewed to high ratings: {stars:?}"
    );
    let distinct: HashSet<&str> = a.iter().map(|r| r.text.as_str()).collect();
    assert!(distinct.len() > 1500, "varied texts: {}", distinct.len());

    let public = public_texts(500);
    let public_set: HashSet<&str> = public.iter().map(String::as_str).collect();
    assert!(a.iter().all(|r| !public_set.contains(r.text.as_str())));
    // every control code appears in the public part
    assert!(
        public
            .iter()
            .any(|t| t == "Business Category: Bars\tReview Stars: 1.0\n\n")
    );
}
