//! Control-code prompts (Yue et al. 2023): a record's labels, tab-separated, then a blank
//! line.

use serde::{Deserialize, Serialize};

/// How labels become a prompt: `Name: value` fields joined by `separator`, then `terminator`.
/// The default reproduces the paper's `Business Category: Food\tReview Stars: 5.0\n\n`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlCodeFormat {
    /// Between fields (default a tab).
    #[serde(default = "tab")]
    pub separator: String,
    /// After the last field (default a blank line).
    #[serde(default = "blank_line")]
    pub terminator: String,
    /// Between a label's name and its value (default `": "`; empty: the value alone).
    #[serde(default = "colon")]
    pub name_separator: String,
}

fn tab() -> String {
    "\t".into()
}
fn blank_line() -> String {
    "\n\n".into()
}
fn colon() -> String {
    ": ".into()
}

impl Default for ControlCodeFormat {
    fn default() -> Self {
        Self {
            separator: tab(),
            terminator: blank_line(),
            name_separator: colon(),
        }
    }
}

impl ControlCodeFormat {
    /// The prompt for `(name, value)` labels, in the given order.
    pub fn prompt<N: AsRef<str>, V: AsRef<str>>(&self, labels: &[(N, V)]) -> String {
        let fields: Vec<String> = labels
            .iter()
            .map(|(n, v)| {
                if self.name_separator.is_empty() {
                    v.as_ref().to_string()
                } else {
                    format!("{}{}{}", n.as_ref(), self.name_separator, v.as_ref())
                }
            })
            .collect();
        format!("{}{}", fields.join(&self.separator), self.terminator)
    }
}
