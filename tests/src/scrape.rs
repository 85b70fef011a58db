//! [`Scrape`]: one page of `/metrics` (Prometheus text format) parsed into
//! samples, to read them by name and labels. The parser is strict: a line it
//! cannot read fails the test, since Prometheus would not read it either.

use std::collections::BTreeMap;

/// One sample: a metric name, its labels and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The name, with any suffix (`_total`, `_bucket`, `_sum`, `_count`).
    pub name: String,
    /// Label names to values, unescaped.
    pub labels: BTreeMap<String, String>,
    /// The value.
    pub value: f64,
}

/// A parsed `/metrics` page.
#[derive(Debug, Clone)]
pub struct Scrape {
    /// Every sample, in page order.
    pub samples: Vec<Sample>,
    /// The page as served.
    pub text: String,
}

impl Scrape {
    /// Fetches `url` (the metrics listener's `/metrics`) and parses it.
    pub async fn fetch(url: &str) -> Scrape {
        let response = reqwest::get(url).await.expect("scrape /metrics");
        assert_eq!(response.status(), reqwest::StatusCode::OK, "scrape {url}");
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            content_type.starts_with("text/plain"),
            "the Prometheus text format, not {content_type:?}"
        );
        Scrape::parse(&response.text().await.expect("read the scrape"))
    }

    /// Parses a page of the Prometheus text format; panics on a line it
    /// cannot read.
    pub fn parse(text: &str) -> Scrape {
        let samples = text
            .lines()
            .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
            .map(|line| parse_line(line).unwrap_or_else(|| panic!("bad sample line: {line:?}")))
            .collect();
        Scrape {
            samples,
            text: text.to_owned(),
        }
    }

    /// The samples named `name` that carry every label of `labels`.
    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |sample| {
            sample.name == name
                && labels
                    .iter()
                    .all(|(key, value)| sample.labels.get(*key).map(String::as_str) == Some(value))
        })
    }

    /// The value of the one sample named `name` with exactly these labels;
    /// panics if there is none.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no sample {name} {labels:?} in:\n{}", self.text))
    }

    /// The value of the one sample named `name` with exactly these labels.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<&Sample> = self
            .matching(name, labels)
            .filter(|sample| sample.labels.len() == labels.len())
            .collect();
        assert!(found.len() <= 1, "several samples {name} {labels:?}");
        found.first().map(|sample| sample.value)
    }
}

fn parse_line(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    let valid_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if !valid_name {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        rest = after_brace;
        loop {
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = rest.find('=')?;
            let key = rest[..eq].trim_start_matches(',').to_owned();
            rest = rest[eq + 1..].strip_prefix('"')?;
            let mut value = String::new();
            let mut chars = rest.char_indices();
            let end = loop {
                match chars.next()? {
                    (i, '"') => break i,
                    (_, '\\') => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    (_, c) => value.push(c),
                }
            };
            labels.insert(key, value);
            rest = &rest[end + 1..];
        }
    }
    // A value, and perhaps a timestamp after it.
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}
