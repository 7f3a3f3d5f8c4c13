//! `distil-dp teacher --world 2`: the teacher's DP-SGD on two processes (loopback), one
//! ledger in worker 0's checkpoint, equal to a one-process run's and to a run on two threads
//! (`--workers 2`); bad arguments named.

mod common;

use std::process::{Command, Stdio};

use common::distil_dp as stage;

fn tiny(out: &str) -> Vec<String> {
    [
        out,
        "data.max_records=120",
        "tokenizer.vocab_size=300",
        "teacher.model.n_embd=16",
        "teacher.model.n_layer=1",
        "teacher.model.n_head=2",
        "teacher.epochs=1",
        "teacher.expected_batch_size=16",
        "checkpoint_every=3",
        "generation.sampling.max_new_tokens=16",
    ]
    .iter()
    .flat_map(|s| ["--set".to_string(), s.to_string()])
    .collect()
}

fn ledger(run: &std::path::Path) -> serde_json::Value {
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("teacher/trainer.json")).unwrap())
            .unwrap();
    state["engine"]["ledger"].clone()
}

/// `distil-dp teacher --world 2` as ranks 0 and 1 on a free loopback port; their outputs.
fn two_processes(out: &str) -> Vec<std::process::Output> {
    two_processes_with(out, &[])
}

/// [`two_processes`] with the overrides `extra` on both ranks.
fn two_processes_with(out: &str, extra: &[&str]) -> Vec<std::process::Output> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let children: Vec<_> = (0..2)
        .map(|rank| {
            let mut args = vec![
                "teacher".to_string(),
                "--output".into(),
                "json".into(),
                "--world".into(),
                "2".into(),
                "--rank".into(),
                rank.to_string(),
                "--address".into(),
                address.clone(),
                "--timeout".into(),
                "120".into(),
            ];
            args.extend(tiny(out));
            args.extend(
                extra
                    .iter()
                    .flat_map(|s| ["--set".to_string(), s.to_string()]),
            );
            Command::new(env!("CARGO_BIN_EXE_distil-dp"))
                .args(&args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect()
}

/// Asserts that every worker succeeded, showing a failed one's stderr.
fn succeeded(outputs: &[std::process::Output]) {
    for (rank, o) in outputs.iter().enumerate() {
        assert!(
            o.status.success(),
            "worker {rank}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// The JSON events a worker printed.
fn events(o: &std::process::Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_teacher_trains_on_two_processes_with_one_ledger() {
    let tmp = tempfile::tempdir().unwrap();
    let two = tmp.path().join("two");
    let out = format!("output_dir={:?}", two.display().to_string());
    let outputs = two_processes(&out);
    succeeded(&outputs);
    // worker 0's steps ran on both processes; worker 1 took part in every step
    let lead = events(&outputs[0]);
    let steps: Vec<&serde_json::Value> = lead
        .iter()
        .filter(|e| e["stage"] == "teacher" && e["planned_steps"].is_u64())
        .collect();
    assert!(!steps.is_empty());
    assert!(steps.iter().all(|e| e["workers"] == 2), "{lead:?}");
    let planned = steps.last().unwrap()["planned_steps"].as_u64().unwrap();
    assert_eq!(steps.last().unwrap()["steps"], planned);
    let follower = events(&outputs[1]);
    assert!(
        follower
            .iter()
            .any(|e| e["event"] == "worker-done" && e["steps"] == planned),
        "{follower:?}"
    );
    // worker 1 wrote only its own events
    assert!(two.join("metrics.worker-1.jsonl").exists());
    // the same commands again: the teacher is finished, worker 0 says so, both stop
    let before = ledger(&two);
    for (rank, o) in two_processes(&out).iter().enumerate() {
        assert!(
            o.status.success(),
            "again, worker {rank}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    assert_eq!(ledger(&two), before, "nothing trained twice");

    // the same run on one process: the same ledger (histogram + the same q, sigma, steps)
    let one = tmp.path().join("one");
    let mut args = vec!["teacher".to_string(), "--output".into(), "quiet".into()];
    args.extend(tiny(&format!("output_dir={:?}", one.display().to_string())));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, _, stderr) = stage(&args);
    assert!(ok, "{stderr}");
    let (a, b) = (ledger(&two), ledger(&one));
    assert_eq!(a["entries"].as_array().unwrap().len(), 2, "{a}");
    // the histogram's noise multiplier and the steps' q and sigma are calibrated the same way
    assert_eq!(a, b);

    // and on two threads of one process (`--workers 2`)
    let threads = tmp.path().join("threads");
    let mut args = vec![
        "teacher".to_string(),
        "--output".into(),
        "json".into(),
        "--workers".into(),
        "2".into(),
    ];
    args.extend(tiny(&format!(
        "output_dir={:?}",
        threads.display().to_string()
    )));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, stdout, stderr) = stage(&args);
    assert!(ok, "{stderr}");
    let step_workers: Vec<u64> = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["planned_steps"].is_u64())
        .map(|e| e["workers"].as_u64().unwrap())
        .collect();
    assert!(!step_workers.is_empty() && step_workers.iter().all(|&w| w == 2));
    assert_eq!(ledger(&threads), b);
}

#[test]
fn a_dp_lora_teacher_trains_on_two_processes() {
    let tmp = tempfile::tempdir().unwrap();
    let two = tmp.path().join("two");
    let out = format!("output_dir={:?}", two.display().to_string());
    let outputs = two_processes_with(&out, &["teacher.lora.rank=2"]);
    succeeded(&outputs);
    // worker 0 trained the adapters alone (rank 2 on a block 16 wide), worker 1 every step
    let lead = events(&outputs[0]);
    let done = lead
        .iter()
        .find(|e| e["stage"] == "teacher" && e["event"] == "done")
        .expect("the teacher finished");
    assert_eq!(
        done["trainable_parameters"],
        2 * ((16 + 48) + (16 + 16) + (16 + 64) + (64 + 16))
    );
    let planned = done["steps"].as_u64().unwrap();
    assert!(planned > 0);
    assert!(
        events(&outputs[1])
            .iter()
            .any(|e| e["event"] == "worker-done" && e["steps"] == planned),
        "{:?}",
        String::from_utf8_lossy(&outputs[1].stdout)
    );
}

#[test]
fn bad_process_arguments_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let out = format!(
        "output_dir={:?}",
        tmp.path().join("run").display().to_string()
    );
    for (extra, field) in [
        (
            &["--world", "1", "--rank", "0", "--address", "127.0.0.1:1"][..],
            "world",
        ),
        (
            &["--world", "2", "--rank", "2", "--address", "127.0.0.1:1"][..],
            "rank",
        ),
        (&["--world", "2", "--rank", "0"][..], "--address"),
    ] {
        let mut args = vec!["teacher", "--set", &out];
        args.extend(extra);
        let (ok, _, stderr) = stage(&args);
        assert!(!ok && stderr.contains(field), "{extra:?}: {stderr}");
    }
}
