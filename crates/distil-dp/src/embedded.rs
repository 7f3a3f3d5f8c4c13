//! The embedded default corpus: what the quickstart runs on without any download.
//!
//! It is **generated**, not collected: short business reviews written from templates by a
//! fixed-seed generator, labelled with a business category and a star rating, in the format
//! of Yue et al.'s Yelp data. No person wrote them and they describe no real business, so
//! they are safe to ship; they stand in for private data only to exercise the pipeline. The
//! **public** part is made by a different generator (neutral sentences about the same
//! topics, no ratings, different templates and seed) and shares no record with the private
//! part: it is what the tokenizer and any non-private pre-training may see.

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use crate::records::Record;

/// The label columns of the embedded corpus.
pub const LABEL_COLUMNS: [&str; 2] = ["Business Category", "Review Stars"];

const CATEGORIES: [(&str, &[&str]); 5] = [
    (
        "Restaurants",
        &["pasta", "soup", "burger", "curry", "salad", "dessert"],
    ),
    (
        "Hotels",
        &["room", "bed", "pool", "breakfast", "lobby", "view"],
    ),
    (
        "Shopping",
        &[
            "store",
            "checkout",
            "price",
            "selection",
            "staff",
            "parking",
        ],
    ),
    (
        "Bars",
        &["cocktail", "beer", "music", "bartender", "patio", "crowd"],
    ),
    (
        "Auto Repair",
        &[
            "mechanic",
            "quote",
            "oil change",
            "brakes",
            "waiting room",
            "invoice",
        ],
    ),
];
const PRAISE: [&str; 8] = [
    "was wonderful",
    "was excellent",
    "exceeded my expectations",
    "was friendly and quick",
    "felt like great value",
    "was spotless",
    "made our evening",
    "was better than last time",
];
const MIXED: [&str; 5] = [
    "was fine but nothing special",
    "was okay",
    "could have been better",
    "was average for the price",
    "was hit or miss",
];
const COMPLAINT: [&str; 8] = [
    "was a disappointment",
    "was cold and late",
    "was dirty",
    "felt overpriced",
    "was rude to us",
    "took forever",
    "was worse than last time",
    "ruined the visit",
];
const OPENERS: [&str; 6] = [
    "We stopped by on a Friday.",
    "Came here with friends.",
    "First visit after moving nearby.",
    "Visited on a busy weekend.",
    "Quick stop during lunch.",
    "My second time here.",
];
const CLOSERS_GOOD: [&str; 4] = [
    "Will come back.",
    "Highly recommended.",
    "Five stars from me.",
    "Tell them I sent you.",
];
const CLOSERS_BAD: [&str; 4] = [
    "Will not return.",
    "Avoid if you can.",
    "Not worth it.",
    "Management should take note.",
];
const CLOSERS_MIXED: [&str; 3] = ["Maybe again.", "It depends on the day.", "Fair enough."];

struct Gen(ChaCha20Rng);

impl Gen {
    fn new(seed: u64) -> Self {
        Self(ChaCha20Rng::seed_from_u64(seed))
    }
    fn below(&mut self, n: usize) -> usize {
        (self.0.next_u64() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// The public domain of each label column: every category, and the ratings 1.0 to 5.0.
pub fn label_values() -> Vec<(String, Vec<String>)> {
    vec![
        (
            LABEL_COLUMNS[0].to_string(),
            CATEGORIES.iter().map(|(c, _)| c.to_string()).collect(),
        ),
        (
            LABEL_COLUMNS[1].to_string(),
            (1..=5).map(|s| format!("{s}.0")).collect(),
        ),
    ]
}

/// `n` private-stand-in records: a review text with its category and star rating (1–5,
/// skewed towards 4 and 5 as on review sites), always the same for the same `n`.
pub fn private_records(n: usize) -> Vec<Record> {
    let mut g = Gen::new(0x5EED_0001);
    (0..n)
        .map(|_| {
            let (category, things) = CATEGORIES[g.below(CATEGORIES.len())];
            let stars = [1, 2, 3, 4, 4, 5, 5, 5][g.below(8)];
            let (verdicts, closers): (&[&str], &[&str]) = match stars {
                4 | 5 => (&PRAISE, &CLOSERS_GOOD),
                3 => (&MIXED, &CLOSERS_MIXED),
                _ => (&COMPLAINT, &CLOSERS_BAD),
            };
            let first = g.pick(things);
            let mut second = g.pick(things);
            if second == first {
                second = things
                    [(things.iter().position(|t| *t == first).unwrap_or(0) + 1) % things.len()];
            }
            let text = format!(
                "{} The {first} {}, and the {second} {}. {}",
                g.pick(&OPENERS),
                g.pick(verdicts),
                g.pick(verdicts),
                g.pick(closers)
            );
            Record {
                text,
                labels: vec![
                    (LABEL_COLUMNS[0].to_string(), category.to_string()),
                    (LABEL_COLUMNS[1].to_string(), format!("{stars}.0")),
                ],
            }
        })
        .collect()
}

/// `n` public sentences about the same topics (no ratings, no verdicts), from templates and a
/// seed the private part does not use, plus every label value and control-code word, so a
/// tokenizer trained on them knows the prompts.
pub fn public_texts(n: usize) -> Vec<String> {
    const FRAMES: [&str; 6] = [
        "A guide to choosing a {c} place: look at the {t} and the {u} before you decide.",
        "Most {c} listings mention the {t} first and the {u} second.",
        "In this city, {c} businesses often advertise their {t}.",
        "Questions people ask about {c}: how is the {t}, and is there a {u}?",
        "The {t} and the {u} are common topics in {c} reviews.",
        "Opening hours for {c} vary; call ahead to ask about the {t}.",
    ];
    let mut g = Gen::new(0x9B11_C002);
    let mut texts: Vec<String> = (0..n)
        .map(|_| {
            let (category, things) = CATEGORIES[g.below(CATEGORIES.len())];
            g.pick(&FRAMES)
                .replace("{c}", category)
                .replace("{t}", g.pick(things))
                .replace("{u}", g.pick(things))
        })
        .collect();
    for (category, _) in CATEGORIES {
        for stars in 1..=5 {
            texts.push(format!(
                "{}: {category}\t{}: {stars}.0\n\n",
                LABEL_COLUMNS[0], LABEL_COLUMNS[1]
            ));
        }
    }
    texts
}
