//! `--set dotted.key=value` and the merge of the user's tables over the defaults.

use crate::error::DistilDpError;

use super::bad;

/// Merges `user` into `base`: tables key by key, recursively; any other value replaces the
/// base's. A table whose `kind` (the tag of an enum: schedule, optimiser, allocation, …)
/// differs from the base's replaces it whole, since its variant has other fields.
pub(super) fn merge_over(base: &mut toml::Table, user: toml::Table) {
    for (key, value) in user {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(u))
                if u.get("kind").is_none_or(|k| b.get("kind") == Some(k)) =>
            {
                merge_over(b, u)
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Sets `a.b.c = value` in `doc`, creating tables on the way.
pub(super) fn apply_override(doc: &mut toml::Table, assignment: &str) -> Result<(), DistilDpError> {
    let Some((key, raw)) = assignment.split_once('=') else {
        return Err(bad(
            "--set",
            assignment,
            "KEY=VALUE with a dotted key, e.g. teacher.epochs=2",
        ));
    };
    let path: Vec<&str> = key.trim().split('.').collect();
    if path.iter().any(|p| p.is_empty()) {
        return Err(bad("--set", assignment, "a dotted key without empty parts"));
    }
    let raw = raw.trim();
    // a TOML literal (number, boolean, array, quoted string), else the raw text as a string
    let value = format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let Some((last, parents)) = path.split_last() else {
        return Err(bad("--set", assignment, "a dotted key"));
    };
    let mut table = doc;
    for p in parents {
        let entry = table
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = entry
            .as_table_mut()
            .ok_or_else(|| bad("--set", assignment, "a key whose parents are tables"))?;
    }
    table.insert(last.to_string(), value);
    Ok(())
}
