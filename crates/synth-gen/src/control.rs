//! Control-code prompts (Yue et al. 2023): a record's labels, tab-separated, then a blank
//! line.

use serde::{Deserialize, Serialize};

/// How labels become a prompt: `Name: value` fields joined by `separator`, then `terminator`.
/// The default reproduces the paper's `Business Category: Food\tReview Stars: 5.0\n\n`, both
/// from named columns (`Business Category` = `Food`) and from Yue et al.'s layout, whose
/// values already carry their names (`label1` = `Business Category: Food`, see [`LabelNames`]).
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
    /// Whether a label's name is written before its value (default `auto`: unless the value
    /// already starts with a name and `name_separator`).
    #[serde(default)]
    pub names: LabelNames,
}

/// Whether a label's column name is written before its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LabelNames {
    /// `name: value`, unless the value already carries a name: it starts with a non-empty
    /// name (no separator, terminator or line break in it) followed by `name_separator`, as
    /// in Yue et al.'s CSVs (`label1` = `Review Stars: 5.0`); such a value is written as is.
    #[default]
    Auto,
    /// Always `name: value`.
    Always,
    /// The value alone (as an empty `name_separator`).
    Never,
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
            names: LabelNames::Auto,
        }
    }
}

impl ControlCodeFormat {
    /// The prompt for `(name, value)` labels, in the given order.
    pub fn prompt<N: AsRef<str>, V: AsRef<str>>(&self, labels: &[(N, V)]) -> String {
        let fields: Vec<String> = labels
            .iter()
            .map(|(n, v)| {
                let v = v.as_ref();
                if self.name_separator.is_empty()
                    || self.names == LabelNames::Never
                    || (self.names == LabelNames::Auto && self.carries_name(v))
                {
                    v.to_string()
                } else {
                    format!("{}{}{}", n.as_ref(), self.name_separator, v)
                }
            })
            .collect();
        format!("{}{}", fields.join(&self.separator), self.terminator)
    }

    /// Whether `value` already starts with a name and the name separator (`Review Stars:
    /// 5.0`): a non-empty name holding no separator, terminator or line break.
    pub fn carries_name(&self, value: &str) -> bool {
        if self.name_separator.is_empty() {
            return false;
        }
        let Some((name, _)) = value.split_once(self.name_separator.as_str()) else {
            return false;
        };
        !name.trim().is_empty()
            && !name.contains(['\n', '\r'])
            && (self.separator.is_empty() || !name.contains(self.separator.as_str()))
            && (self.terminator.is_empty() || !name.contains(self.terminator.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_that_carry_their_names_give_the_papers_prompt() {
        let f = ControlCodeFormat::default();
        let named = f.prompt(&[("Business Category", "Food"), ("Review Stars", "5.0")]);
        let yue = f.prompt(&[
            ("label1", "Business Category: Food"),
            ("label2", "Review Stars: 5.0"),
        ]);
        assert_eq!(named, "Business Category: Food\tReview Stars: 5.0\n\n");
        assert_eq!(yue, named);
        let always = ControlCodeFormat {
            names: LabelNames::Always,
            ..f.clone()
        };
        assert_eq!(
            always.prompt(&[("label1", "Review Stars: 5.0")]),
            "label1: Review Stars: 5.0\n\n"
        );
        let never = ControlCodeFormat {
            names: LabelNames::Never,
            ..f.clone()
        };
        assert_eq!(never.prompt(&[("Stars", "5.0")]), "5.0\n\n");
    }

    #[test]
    fn a_value_carries_a_name_only_before_the_name_separator() {
        let f = ControlCodeFormat::default();
        assert!(f.carries_name("Review Stars: 5.0"));
        assert!(!f.carries_name("5.0"));
        assert!(!f.carries_name(": 5.0")); // no name
        assert!(!f.carries_name("a\tb: c")); // the name would hold the field separator
        assert!(!f.carries_name("two\nlines: c"));
        assert_eq!(f.prompt(&[("Time", "12:30")]), "Time: 12:30\n\n"); // no ": "
    }
}
