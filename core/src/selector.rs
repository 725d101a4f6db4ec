//! Kubernetes label selectors in their string form (`app=web,tier in (a,b),!canary`).

use std::collections::BTreeMap;
use std::fmt;

/// A parsed label selector: every requirement must hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelSelector {
    source: String,
    requirements: Vec<Requirement>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// A selector string that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("label selector {selector:?}: {message}")]
pub struct SelectorError {
    selector: String,
    message: String,
}

// === impl LabelSelector ===

impl LabelSelector {
    /// Parses the string form `kubectl -l` takes. An empty string matches every pod.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let err = |message: String| SelectorError {
            selector: s.to_owned(),
            message,
        };
        let requirements = split_top_level(s)
            .map_err(err)?
            .into_iter()
            .map(|part| parse_requirement(part).map_err(err))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            source: s.to_owned(),
            requirements,
        })
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::NotExists(k) => !labels.contains_key(k),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
        })
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Splits on commas that are not inside a `( … )` value set.
fn split_top_level(s: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.checked_sub(1).ok_or("unbalanced ')'")?,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced '('".into());
    }
    parts.push(&s[start..]);
    Ok(parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect())
}

fn parse_requirement(part: &str) -> Result<Requirement, String> {
    if let Some(key) = part.strip_prefix('!') {
        return Ok(Requirement::NotExists(valid_key(key.trim())?));
    }
    for (op, negate) in [("!=", true), ("==", false), ("=", false)] {
        if let Some((k, v)) = part.split_once(op) {
            let (k, v) = (valid_key(k.trim())?, valid_value(v.trim())?);
            return Ok(if negate {
                Requirement::NotIn(k, vec![v])
            } else {
                Requirement::In(k, vec![v])
            });
        }
    }
    let mut words = part.splitn(2, char::is_whitespace);
    let key = valid_key(words.next().unwrap_or_default())?;
    let Some(rest) = words.next().map(str::trim) else {
        return Ok(Requirement::Exists(key));
    };
    let (negate, set) = if let Some(set) = rest.strip_prefix("notin") {
        (true, set)
    } else if let Some(set) = rest.strip_prefix("in") {
        (false, set)
    } else {
        return Err(format!(
            "{part:?}: expected =, ==, !=, in or notin after {key:?}"
        ));
    };
    let set = set
        .trim()
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| format!("{part:?}: values must be in parentheses"))?;
    let values = set
        .split(',')
        .map(|v| valid_value(v.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(if negate {
        Requirement::NotIn(key, values)
    } else {
        Requirement::In(key, values)
    })
}

fn valid_key(k: &str) -> Result<String, String> {
    let name = k.rsplit('/').next().unwrap_or_default();
    if name.is_empty()
        || k.len() > 316
        || !k
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
    {
        return Err(format!("{k:?} is not a valid label key"));
    }
    Ok(k.to_owned())
}

fn valid_value(v: &str) -> Result<String, String> {
    if v.len() > 63
        || !v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(format!("{v:?} is not a valid label value"));
    }
    Ok(v.to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn equality_set_and_existence_requirements() {
        let s =
            LabelSelector::parse("app=web, tier in (front,back),!canary,env!=dev,team").unwrap();
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "front"), ("team", "a")])));
        assert!(
            !s.matches(&labels(&[("app", "web"), ("tier", "front")])),
            "team missing"
        );
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "x"), ("team", "a")])));
        assert!(!s.matches(&labels(&[
            ("app", "web"),
            ("tier", "back"),
            ("team", "a"),
            ("canary", "")
        ])));
        assert!(!s.matches(&labels(&[
            ("app", "web"),
            ("tier", "back"),
            ("team", "a"),
            ("env", "dev")
        ])));
    }

    #[test]
    fn notin_matches_missing_key_and_prefixed_keys_parse() {
        let s = LabelSelector::parse("example.com/role notin (batch),app.kubernetes.io/name==x")
            .unwrap();
        assert!(s.matches(&labels(&[("app.kubernetes.io/name", "x")])));
        assert!(!s.matches(&labels(&[
            ("app.kubernetes.io/name", "x"),
            ("example.com/role", "batch")
        ])));
    }

    #[test]
    fn empty_selector_matches_everything() {
        assert!(LabelSelector::parse("").unwrap().matches(&BTreeMap::new()));
    }

    #[test]
    fn malformed_selectors_are_rejected_with_the_selector_named() {
        for bad in ["app in (a", "app in a", "a b c", "=x", "app=(x)", "ap p=x"] {
            let err = LabelSelector::parse(bad).unwrap_err().to_string();
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }
}
