//! Labelled records from every format, clear errors, and seeded splits.

use std::fs;

use distil_dp::records::{LabelColumns, Record, RecordFormat, read_records};
use distil_dp::split::SplitConfig;

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn jsonl_and_csv_records_carry_their_labels() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("r.jsonl");
    fs::write(
        &jsonl,
        "{\"text\": \"good food\", \"stars\": 5, \"category\": \"Food\"}\n\n\
         {\"text\": \"  \", \"stars\": 1, \"category\": \"Bars\"}\n\
         {\"text\": \"slow\", \"stars\": 2.5, \"category\": \"Bars\"}\n",
    )
    .unwrap();
    let all = read_records(&jsonl, RecordFormat::Auto, &LabelColumns::All).unwrap();
    assert_eq!(
        all,
        vec![
            Record {
                text: "good food".into(),
                labels: labels(&[("category", "Food"), ("stars", "5")]),
            },
            Record {
                text: "slow".into(),
                labels: labels(&[("category", "Bars"), ("stars", "2.5")]),
            },
        ],
        "empty texts skipped, fields sorted"
    );
    let named = LabelColumns::Named(vec!["stars".into()]);
    let some = read_records(&jsonl, RecordFormat::Auto, &named).unwrap();
    assert_eq!(some[1].labels, labels(&[("stars", "2.5")]));

    let csv = dir.path().join("r.csv");
    fs::write(
        &csv,
        "category,text,stars\nFood,\"good, cheap food\",5\nBars,slow,2\n",
    )
    .unwrap();
    let rows = read_records(&csv, RecordFormat::Auto, &LabelColumns::All).unwrap();
    assert_eq!(rows[0].text, "good, cheap food");
    assert_eq!(
        rows[0].labels,
        labels(&[("category", "Food"), ("stars", "5")])
    );
    let named = LabelColumns::Named(vec!["stars".into(), "category".into()]);
    let rows = read_records(&csv, RecordFormat::Auto, &named).unwrap();
    assert_eq!(
        rows[1].labels,
        labels(&[("stars", "2"), ("category", "Bars")])
    );
}

#[test]
fn plain_text_and_fortunes() {
    let dir = tempfile::tempdir().unwrap();
    let txt = dir.path().join("t.txt");
    fs::write(&txt, "one\n\n two \n").unwrap();
    let r = read_records(&txt, RecordFormat::Auto, &LabelColumns::All).unwrap();
    assert_eq!(r.len(), 2);
    assert!(r.iter().all(|r| r.labels.is_empty()));

    let fortunes = dir.path().join("fortunes");
    fs::create_dir(&fortunes).unwrap();
    fs::write(
        fortunes.join("wisdom"),
        "A first fortune\non two lines.\n%\nSecond.\n%\n%\n",
    )
    .unwrap();
    fs::write(fortunes.join("wisdom.dat"), [0u8, 1, 2, 3]).unwrap();
    fs::write(fortunes.join("art"), "Art is long.\n%\n").unwrap();
    let r = read_records(&fortunes, RecordFormat::Auto, &LabelColumns::All).unwrap();
    let got: Vec<(&str, &str)> = r
        .iter()
        .map(|r| (r.text.as_str(), r.labels[0].1.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("Art is long.", "art"),
            ("A first fortune\non two lines.", "wisdom"),
            ("Second.", "wisdom"),
        ]
    );
    // one file, format given explicitly
    let one = read_records(
        fortunes.join("art"),
        RecordFormat::Fortunes,
        &LabelColumns::All,
    )
    .unwrap();
    assert_eq!(one[0].labels, labels(&[("Category", "art")]));
}

#[test]
fn bad_files_name_the_place_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let check = |name: &str, content: &str, labels: LabelColumns, want: &[&str]| {
        let p = dir.path().join(name);
        fs::write(&p, content).unwrap();
        let err = read_records(&p, RecordFormat::Auto, &labels)
            .unwrap_err()
            .to_string();
        for w in want {
            assert!(err.contains(w), "{err:?} lacks {w:?}");
        }
    };
    check(
        "a.jsonl",
        "{\"text\": \"x\"}\n{oops\n",
        LabelColumns::All,
        &["a.jsonl:2", "malformed JSON"],
    );
    check(
        "b.jsonl",
        "{\"txt\": \"x\"}\n",
        LabelColumns::All,
        &["b.jsonl:1", "no field `text`"],
    );
    check(
        "c.jsonl",
        "{\"text\": \"x\", \"stars\": 5}\n{\"text\": \"y\"}\n",
        LabelColumns::Named(vec!["stars".into()]),
        &["c.jsonl:2", "no label field `stars`"],
    );
    check(
        "d.jsonl",
        "{\"text\": \"x\", \"l\": [1]}\n",
        LabelColumns::All,
        &["d.jsonl:1", "label `l`"],
    );
    check(
        "e.csv",
        "body,stars\nx,5\n",
        LabelColumns::All,
        &["e.csv:1", "no `text` column", "body, stars"],
    );
    check(
        "f.csv",
        "text,stars\nx,5\n",
        LabelColumns::Named(vec!["category".into()]),
        &["no label column `category`"],
    );
    check(
        "g.jsonl",
        "\n\n",
        LabelColumns::All,
        &["g.jsonl", "no record"],
    );
    check("h.txt", "  \n", LabelColumns::All, &["h.txt", "no record"]);
    let missing = read_records(
        dir.path().join("nope.csv"),
        RecordFormat::Auto,
        &LabelColumns::All,
    )
    .unwrap_err()
    .to_string();
    assert!(missing.contains("nope.csv"), "{missing}");
}

#[test]
fn splits_are_seeded_disjoint_and_complete() {
    let records: Vec<u32> = (0..1000).collect();
    let config = SplitConfig {
        validation: 0.1,
        test: 0.2,
        seed: 7,
    };
    let a = config.split(records.clone()).unwrap();
    // binomial sizes around the fractions (mean 700 / 100 / 200, sd <= 15)
    assert!((640..=760).contains(&a.train.len()), "{}", a.train.len());
    assert!(
        (60..=140).contains(&a.validation.len()),
        "{}",
        a.validation.len()
    );
    assert!((150..=250).contains(&a.test.len()), "{}", a.test.len());
    let mut all: Vec<u32> = a
        .train
        .iter()
        .chain(&a.validation)
        .chain(&a.test)
        .copied()
        .collect();
    all.sort();
    assert_eq!(all, records, "a partition of the records");
    assert_eq!(
        config.split(records.clone()).unwrap(),
        a,
        "same seed, same split"
    );
    let other = SplitConfig { seed: 8, ..config }
        .split(records.clone())
        .unwrap();
    assert_ne!(other.test, a.test);
    // not cut in file order
    assert_ne!(a.test, (0..a.test.len() as u32).collect::<Vec<_>>());
    // per record: adding or removing one record moves no other record between the parts
    let part = |s: &distil_dp::split::Splits<u32>, r: u32| {
        if s.train.contains(&r) {
            0
        } else if s.validation.contains(&r) {
            1
        } else {
            2
        }
    };
    let more = config.split((0..1001).collect()).unwrap();
    let fewer = config.split((1..1000).collect()).unwrap();
    for r in 1..1000u32 {
        assert_eq!(
            part(&a, r),
            part(&more, r),
            "record {r} moved when one was added"
        );
        assert_eq!(
            part(&a, r),
            part(&fewer, r),
            "record {r} moved when one was removed"
        );
    }

    let err =
        |c: SplitConfig, n: usize| c.split((0..n).collect::<Vec<_>>()).unwrap_err().to_string();
    assert!(
        err(
            SplitConfig {
                test: 0.0,
                ..config
            },
            10
        )
        .contains("split.test")
    );
    assert!(
        err(
            SplitConfig {
                validation: 0.5,
                test: 0.5,
                seed: 0
            },
            10
        )
        .contains("less than 1")
    );
    assert!(err(config, 1).contains("1 records"));
}

/// Yue et al.'s CSVs (`text,label1,label2`, values `Review Stars: 5.0`) and CSVs with named
/// columns give the same control codes: the paper's, with no column name prefixed twice.
#[test]
fn a_yue_layout_csv_gives_the_same_codes_as_named_columns() {
    use distil_dp::config::PipelineConfig;
    let dir = tempfile::tempdir().unwrap();
    let yue = dir.path().join("yue.csv");
    fs::write(
        &yue,
        "text,label1,label2\n\
         \"Great tacos, slow service.\",Business Category: Restaurants,Review Stars: 4.0\n\
         Loud music.,Business Category: Nightlife,Review Stars: 2.0\n",
    )
    .unwrap();
    let named = dir.path().join("named.csv");
    fs::write(
        &named,
        "text,Business Category,Review Stars\n\
         \"Great tacos, slow service.\",Restaurants,4.0\n\
         Loud music.,Nightlife,2.0\n",
    )
    .unwrap();
    let config = PipelineConfig::from_toml("", &[]).unwrap();
    let format = &config.data.control_code;
    let codes = |path: &std::path::Path| -> Vec<String> {
        read_records(path, RecordFormat::Auto, &LabelColumns::All)
            .unwrap()
            .iter()
            .map(|r| format.prompt(&r.labels))
            .collect()
    };
    assert_eq!(codes(&yue), codes(&named));
    assert_eq!(
        codes(&yue)[0],
        "Business Category: Restaurants\tReview Stars: 4.0\n\n"
    );
    // the old behaviour on request, and a bad terminator named by its field
    let always = PipelineConfig::from_toml("[data.control_code]\nnames = \"always\"\n", &[])
        .unwrap()
        .data
        .control_code;
    let r = read_records(&yue, RecordFormat::Auto, &LabelColumns::All).unwrap();
    assert_eq!(
        always.prompt(&r[1].labels),
        "label1: Business Category: Nightlife\tlabel2: Review Stars: 2.0\n\n"
    );
    let err = PipelineConfig::from_toml("[data.control_code]\nterminator = \"\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("data.control_code.terminator"), "{err}");
}
