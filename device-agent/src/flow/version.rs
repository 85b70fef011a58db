//! Which app versions a flow file is for: patterns such as `4.1.*` or
//! `4.1.30`, and an optional inclusive range (`min_version`, `max_version`).
//!
//! Versions compare component by component as numbers (`4.1.10` is after
//! `4.1.9`); a component's leading digits count, so `30-beta` is 30. A missing
//! component is 0 for `min_version`, while `max_version = "4.1"` includes every
//! `4.1.x`, which is what a person writing it means.

use std::cmp::Ordering;
use std::fmt;

/// The forms of a `versions` pattern, for messages.
const FORMS: &str = "a pattern is numbers joined by dots, such as `4.1.30` (that version exactly), optionally ending in `.*`, such as `4.1.*` (4.1 and every version under it)";

/// One `versions` pattern: numbers, optionally ending in `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    /// The components before any `*`.
    components: Vec<String>,
    /// Whether it ends in `*` (any further components, or none).
    wildcard: bool,
}

impl Pattern {
    fn parse(text: &str) -> Result<Pattern, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("a version pattern is empty".to_owned());
        }
        let mut components = Vec::new();
        let mut wildcard = false;
        for (i, part) in text.split('.').enumerate() {
            if wildcard {
                return Err(format!("`{text}`: `*` must be the last component"));
            }
            match part {
                "*" => wildcard = true,
                "" => return Err(format!("`{text}` has an empty component")),
                part if part.contains('*') => {
                    return Err(format!("`{text}`: `*` must be a whole component"))
                }
                part if i == 0 && !part.starts_with(|c: char| c.is_ascii_digit()) => {
                    return Err(format!("`{text}` does not start with a number"))
                }
                part if !part.chars().all(|c| c.is_ascii_digit()) => {
                    return Err(format!(
                        "`{text}` is not a version pattern: `{part}` is not a number ({FORMS})"
                    ))
                }
                part => components.push(part.to_owned()),
            }
        }
        Ok(Pattern {
            components,
            wildcard,
        })
    }

    fn matches(&self, version: &str) -> bool {
        let have: Vec<&str> = version.trim().split('.').collect();
        if self.wildcard {
            have.len() >= self.components.len()
                && self
                    .components
                    .iter()
                    .zip(&have)
                    .all(|(want, have)| want == have)
        } else {
            have.len() == self.components.len()
                && self
                    .components
                    .iter()
                    .zip(&have)
                    .all(|(want, have)| want == have)
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<&str> = self.components.iter().map(String::as_str).collect();
        if self.wildcard {
            parts.push("*");
        }
        f.write_str(&parts.join("."))
    }
}

/// A version as numbers, for range checks.
fn numbers(version: &str) -> Result<Vec<u64>, String> {
    version
        .trim()
        .split('.')
        .map(|part| {
            let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
            digits
                .parse::<u64>()
                .map_err(|_| format!("`{version}` is not a version (numbers joined by dots)"))
        })
        .collect()
}

fn compare(left: &[u64], right: &[u64]) -> Ordering {
    let len = left.len().max(right.len());
    for i in 0..len {
        let a = left.get(i).copied().unwrap_or(0);
        let b = right.get(i).copied().unwrap_or(0);
        match a.cmp(&b) {
            Ordering::Equal => {}
            other => return other,
        }
    }
    Ordering::Equal
}

/// The versions one flow file covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    /// The `versions` patterns; a version matching any of them is covered.
    patterns: Vec<Pattern>,
    /// `min_version`, inclusive, as written and as numbers.
    min: Option<(String, Vec<u64>)>,
    /// `max_version`, inclusive of all its extensions, as written and as numbers.
    max: Option<(String, Vec<u64>)>,
}

impl Coverage {
    /// Checks one `versions` pattern on its own, so that a mistake can be
    /// named with its line.
    pub fn check_pattern(pattern: &str) -> Result<(), String> {
        Pattern::parse(pattern).map(drop)
    }

    /// Builds the coverage from a file's `versions`, `min_version` and
    /// `max_version`; at least one must be given.
    pub fn new(
        patterns: &[String],
        min: Option<&str>,
        max: Option<&str>,
    ) -> Result<Coverage, String> {
        if patterns.is_empty() && min.is_none() && max.is_none() {
            return Err(
                "the file says no versions: give `versions` or `min_version`/`max_version`"
                    .to_owned(),
            );
        }
        let patterns = patterns
            .iter()
            .map(|p| Pattern::parse(p))
            .collect::<Result<Vec<_>, _>>()?;
        let min = min
            .map(|m| numbers(m).map(|n| (m.trim().to_owned(), n)))
            .transpose()?;
        let max = max
            .map(|m| numbers(m).map(|n| (m.trim().to_owned(), n)))
            .transpose()?;
        if let (Some((min_text, min)), Some((max_text, max))) = (&min, &max) {
            if compare(min, max) == Ordering::Greater {
                return Err(format!(
                    "min_version {min_text} is after max_version {max_text}"
                ));
            }
        }
        Ok(Coverage { patterns, min, max })
    }

    /// Whether `version` (a `versionName`) is covered: it matches a pattern,
    /// or it lies within the range when there is one.
    pub fn covers(&self, version: &str) -> bool {
        if self.patterns.iter().any(|p| p.matches(version)) {
            return true;
        }
        if self.min.is_none() && self.max.is_none() {
            return false;
        }
        let Ok(have) = numbers(version) else {
            return false;
        };
        let above_min = self
            .min
            .as_ref()
            .is_none_or(|(_, min)| compare(&have, min) != Ordering::Less);
        let below_max = self.max.as_ref().is_none_or(|(_, max)| {
            let cut = &have[..have.len().min(max.len())];
            compare(cut, max) != Ordering::Greater
        });
        above_min && below_max
    }
}

impl fmt::Display for Coverage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = self.patterns.iter().map(ToString::to_string).collect();
        match (&self.min, &self.max) {
            (Some((min, _)), Some((max, _))) => parts.push(format!("{min} to {max}")),
            (Some((min, _)), None) => parts.push(format!("{min} and later")),
            (None, Some((max, _))) => parts.push(format!("up to {max}")),
            (None, None) => {}
        }
        f.write_str(&parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns(list: &[&str]) -> Coverage {
        let list: Vec<String> = list.iter().map(|s| (*s).to_owned()).collect();
        Coverage::new(&list, None, None).unwrap()
    }

    #[test]
    fn patterns_match_whole_components() {
        let c = patterns(&["4.1.*", "4.2.0"]);
        assert!(c.covers("4.1.30"));
        assert!(c.covers("4.1.30.6008"));
        assert!(c.covers("4.1"));
        assert!(c.covers("4.2.0"));
        assert!(!c.covers("4.2.0.1"));
        assert!(!c.covers("4.10.1"));
        assert!(!c.covers("3.1.30"));
        assert_eq!(c.to_string(), "4.1.*, 4.2.0");
    }

    #[test]
    fn ranges_compare_numbers() {
        let c = Coverage::new(&[], Some("4.0.8"), Some("4.1")).unwrap();
        assert!(c.covers("4.0.8"));
        assert!(c.covers("4.0.10"));
        assert!(c.covers("4.1.99.1"));
        assert!(!c.covers("4.0.7"));
        assert!(!c.covers("4.2.0"));
        assert!(!c.covers("beta"));
        assert_eq!(c.to_string(), "4.0.8 to 4.1");
        let open = Coverage::new(&[], Some("5"), None).unwrap();
        assert!(open.covers("5.0.1") && open.covers("12.3"));
        assert!(!open.covers("4.9"));
        assert_eq!(open.to_string(), "5 and later");
    }

    #[test]
    fn bad_coverage_is_refused() {
        assert!(Coverage::new(&[], None, None).is_err());
        for bad in [
            "",
            "4.*.1",
            "4.1*",
            "4..1",
            "x.1",
            "4.1.x",
            "4.1.30-beta",
            "4.x.*",
        ] {
            assert!(
                Coverage::new(&[bad.to_owned()], None, None).is_err(),
                "{bad}"
            );
        }
        assert!(Coverage::new(&[], Some("4.x"), None).is_err());
        let message = Coverage::check_pattern("4.1.x").unwrap_err();
        assert!(message.contains("`x` is not a number"), "{message}");
        assert!(message.contains("`4.1.*`"), "{message}");
        assert!(Coverage::new(&[], Some("4.2"), Some("4.1")).is_err());
    }
}
