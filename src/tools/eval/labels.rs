//! The labels file of a set: call id -> the categories the call must
//! raise, may raise, or that it is benign. Parsed against the built-in
//! categories and a lexicon's extra ones; every refusal names the call and
//! the field.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;

use crate::category::{CategoryKind, BUILTIN_CATEGORIES};

/// Why a labels file was refused.
#[derive(Debug, thiserror::Error)]
pub enum LabelsError {
    #[error("cannot read labels {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("labels: not valid JSON: {0}")]
    Json(String),
    #[error("labels: the top level must be an object of call id -> label")]
    NotAnObject,
    #[error("labels: call {call_id:?}: {field}: {message}")]
    Field {
        call_id: String,
        field: String,
        message: String,
    },
}

/// What one call is expected to raise.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Label {
    /// Categories the call must raise at warning or above.
    pub expected: BTreeSet<String>,
    /// A benign call must raise nothing at warning or above.
    pub benign: bool,
    /// Categories the call may also raise without it counting as a false
    /// alarm (intimidation beside a threat): neither found nor false.
    pub acceptable: BTreeSet<String>,
}

/// The labels of a set of calls, by call id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Labels {
    pub calls: BTreeMap<String, Label>,
}

/// Category ids a label may expect: the built-in harassment categories and
/// `self_harm` (signals and agent markers never raise at warning).
fn alerting_builtin(id: &str) -> Option<bool> {
    BUILTIN_CATEGORIES
        .iter()
        .find(|(name, ..)| *name == id)
        .map(|(_, kind, ..)| matches!(kind, CategoryKind::Harassment | CategoryKind::Welfare))
}

impl Labels {
    /// Parses labels against the built-in categories.
    pub fn parse(json: &str) -> Result<Labels, LabelsError> {
        Labels::parse_with_categories(json, &[])
    }

    /// Parses labels; `extra` are a tenant lexicon's `extra_categories`.
    pub fn parse_with_categories(json: &str, extra: &[String]) -> Result<Labels, LabelsError> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| LabelsError::Json(e.to_string()))?;
        let serde_json::Value::Object(map) = value else {
            return Err(LabelsError::NotAnObject);
        };
        let mut calls = BTreeMap::new();
        for (call_id, label) in map {
            let err = |field: &str, message: String| LabelsError::Field {
                call_id: call_id.clone(),
                field: field.to_owned(),
                message,
            };
            if call_id.is_empty() {
                return Err(err("call_id", "must not be empty".into()));
            }
            let serde_json::Value::Object(fields) = label else {
                return Err(err(
                    "label",
                    "must be an object like {\"expected\": [...], \"benign\": false}".into(),
                ));
            };
            let mut parsed = Label::default();
            let mut saw_expected = false;
            for (field, value) in fields {
                match field.as_str() {
                    "expected" => {
                        saw_expected = true;
                        parsed.expected = category_list(&value, extra)
                            .map_err(|message| err("expected", message))?;
                    }
                    "acceptable" => {
                        parsed.acceptable = category_list(&value, extra)
                            .map_err(|message| err("acceptable", message))?;
                    }
                    "benign" => {
                        parsed.benign = value
                            .as_bool()
                            .ok_or_else(|| err("benign", "must be true or false".into()))?;
                    }
                    // Notes, authors, splits: what the people who write
                    // labels keep beside them is theirs.
                    _ => {}
                }
            }
            if let Some(both) = parsed.expected.intersection(&parsed.acceptable).next() {
                return Err(err(
                    "acceptable",
                    format!("{both:?} is also expected: list it in one of the two"),
                ));
            }
            if parsed.benign && !parsed.expected.is_empty() {
                return Err(err(
                    "benign",
                    "a benign call cannot expect categories".into(),
                ));
            }
            if !saw_expected && !parsed.benign {
                return Err(err(
                    "expected",
                    "missing (list the categories, or set \"benign\": true)".into(),
                ));
            }
            calls.insert(call_id, parsed);
        }
        Ok(Labels { calls })
    }

    /// Reads and parses a labels file against the built-in categories.
    pub fn load(path: &Path) -> Result<Labels, LabelsError> {
        Labels::load_with_categories(path, &[])
    }

    /// Reads and parses a labels file; `extra` as in [`Labels::parse_with_categories`].
    pub fn load_with_categories(path: &Path, extra: &[String]) -> Result<Labels, LabelsError> {
        let text = std::fs::read_to_string(path).map_err(|source| LabelsError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Labels::parse_with_categories(&text, extra)
    }
}

/// A list of category ids that a call may raise at warning: the built-in
/// harassment categories, `self_harm` and the lexicon's extra ones.
fn category_list(value: &serde_json::Value, extra: &[String]) -> Result<BTreeSet<String>, String> {
    let serde_json::Value::Array(items) = value else {
        return Err("must be an array of category ids".into());
    };
    let mut ids = BTreeSet::new();
    for item in items {
        let Some(id) = item.as_str() else {
            return Err(format!("{item} is not a category id string"));
        };
        match alerting_builtin(id) {
            Some(true) => {}
            Some(false) => {
                return Err(format!(
                    "{id:?} is a signal or agent marker, never raised at warning; \
                     expect a harassment category"
                ))
            }
            None if extra.iter().any(|e| e == id) => {}
            None => {
                return Err(format!(
                    "unknown category {id:?} (known: {})",
                    known_categories(extra).join(", ")
                ))
            }
        }
        if !ids.insert(id.to_owned()) {
            return Err(format!("{id:?} listed twice"));
        }
    }
    Ok(ids)
}

fn known_categories(extra: &[String]) -> Vec<String> {
    BUILTIN_CATEGORIES
        .iter()
        .filter(|(_, kind, ..)| matches!(kind, CategoryKind::Harassment | CategoryKind::Welfare))
        .map(|(id, ..)| (*id).to_owned())
        .chain(extra.iter().cloned())
        .collect()
}
