//! What a run prints: a human summary, then one line of JSON with the figures.

use serde_json::{Map, Value};

/// The outcome of one scenario.
#[derive(Debug, Default)]
pub struct Report {
    /// The human summary, one line each.
    pub lines: Vec<String>,
    /// The figures and parameters, printed as the last line.
    pub json: Map<String, Value>,
}

impl Report {
    /// A report of `scenario` on `database` (`sqlite` or `postgres`).
    pub fn new(scenario: &str, database: &str) -> Report {
        let mut report = Report::default();
        report.set("scenario", scenario);
        report.set("database", database);
        report
    }

    /// Sets one JSON field.
    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.json.insert(key.to_owned(), value.into());
    }

    /// Adds one summary line.
    pub fn line(&mut self, line: impl Into<String>) {
        self.lines.push(line.into());
    }

    /// Prints the summary and then the JSON line on stdout.
    pub fn print(&self) {
        println!();
        for line in &self.lines {
            println!("{line}");
        }
        println!("{}", Value::Object(self.json.clone()));
    }
}

/// The `p`-th percentile (0-100) of `samples` by the nearest-rank method;
/// `None` when there are none. Sorts `samples`.
pub fn percentile(samples: &mut [f64], p: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    Some(samples[rank.clamp(1, samples.len()) - 1])
}

/// Rounds to `digits` decimals, so the JSON line stays readable.
pub fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut samples: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(percentile(&mut samples, 50.0), Some(50.0));
        assert_eq!(percentile(&mut samples, 99.0), Some(99.0));
        assert_eq!(percentile(&mut samples, 100.0), Some(100.0));
        assert_eq!(percentile(&mut samples, 0.0), Some(1.0));
        assert_eq!(percentile(&mut [3.0], 99.0), Some(3.0));
        assert_eq!(percentile(&mut [], 50.0), None);
    }

    #[test]
    fn rounding_keeps_the_asked_decimals() {
        assert_eq!(round(1.23456, 2), 1.23);
        assert_eq!(round(2.5e-3, 3), 0.003);
    }
}
