//! Integers read wider than the range their field allows, so that a number
//! out of range reaches the server's own check (a 422 that names the field)
//! instead of failing to parse (a 400). A number beyond `i64` becomes
//! `i64::MAX` or `i64::MIN`, which is out of every range these fields have;
//! a value that is not an integer at all still fails to parse.
//!
//! Used through `#[serde(deserialize_with = ...)]` on the API's ranged fields.

use std::fmt;

use serde::de::{self, Deserializer, Unexpected, Visitor};

/// An optional integer from a JSON body: a number, or `null` for none.
pub fn option<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    deserializer.deserialize_any(Wide { text: false })
}

/// A required integer from a JSON body.
pub fn required<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    deserializer
        .deserialize_any(Wide { text: false })?
        .ok_or_else(|| de::Error::invalid_type(Unexpected::Unit, &"an integer"))
}

/// An optional integer from a query string, where every value is text.
pub fn option_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    deserializer.deserialize_any(Wide { text: true })
}

/// Reads any integer, saturated to `i64`; with `text`, from its decimal text too.
struct Wide {
    text: bool,
}

/// The float's value when it is an integer too large for `i64` (JSON numbers
/// beyond `u64` reach serde as floats).
fn saturated_float(value: f64) -> Option<i64> {
    const LIMIT: f64 = 9_223_372_036_854_775_807.0;
    if !value.is_finite() || value.fract() != 0.0 {
        return None;
    }
    if value >= LIMIT {
        Some(i64::MAX)
    } else if value <= -LIMIT {
        Some(i64::MIN)
    } else {
        None
    }
}

impl<'de> Visitor<'de> for Wide {
    type Value = Option<i64>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an integer")
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
        Ok(Some(value))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        Ok(Some(i64::try_from(value).unwrap_or(i64::MAX)))
    }

    fn visit_i128<E: de::Error>(self, value: i128) -> Result<Self::Value, E> {
        Ok(Some(i64::try_from(value).unwrap_or(if value < 0 {
            i64::MIN
        } else {
            i64::MAX
        })))
    }

    fn visit_u128<E: de::Error>(self, value: u128) -> Result<Self::Value, E> {
        Ok(Some(i64::try_from(value).unwrap_or(i64::MAX)))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
        saturated_float(value)
            .map(Some)
            .ok_or_else(|| E::invalid_type(Unexpected::Float(value), &self))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        if !self.text {
            return Err(E::invalid_type(Unexpected::Str(value), &self));
        }
        if let Ok(parsed) = value.parse::<i64>() {
            return Ok(Some(parsed));
        }
        let digits = value.strip_prefix(['-', '+']).unwrap_or(value);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(Some(if value.starts_with('-') {
                i64::MIN
            } else {
                i64::MAX
            }));
        }
        Err(E::invalid_value(Unexpected::Str(value), &self))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(default, deserialize_with = "super::option")]
        n: Option<i64>,
    }

    fn n(json: &str) -> Result<Option<i64>, String> {
        serde_json::from_str::<Body>(json)
            .map(|body| body.n)
            .map_err(|error| error.to_string())
    }

    #[test]
    fn numbers_out_of_range_saturate_and_others_fail() {
        assert_eq!(n("{}"), Ok(None));
        assert_eq!(n(r#"{"n": null}"#), Ok(None));
        assert_eq!(n(r#"{"n": -1}"#), Ok(Some(-1)));
        assert_eq!(n(r#"{"n": 18446744073709551615}"#), Ok(Some(i64::MAX)));
        assert_eq!(n(r#"{"n": 1e300}"#), Ok(Some(i64::MAX)));
        assert_eq!(n(r#"{"n": -99999999999999999999}"#), Ok(Some(i64::MIN)));
        for bad in [
            r#"{"n": 1.5}"#,
            r#"{"n": 5.0}"#,
            r#"{"n": "5"}"#,
            r#"{"n": true}"#,
        ] {
            assert!(n(bad).is_err(), "{bad}");
        }
    }
}
