//! Times on pages: the server writes a stored time (Unix milliseconds) as
//! ISO 8601 in UTC inside `<time datetime>`, and the console's script shows
//! it in the reader's own time zone; without the script the UTC text stays.

/// `ms` as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn iso_utc(ms: i64) -> String {
    let secs = ms.div_euclid(1_000);
    let (days, of_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        of_day / 3_600,
        of_day % 3_600 / 60,
        of_day % 60
    )
}

/// `ms` as `YYYY-MM-DD HH:MM UTC`, the text shown without the script.
pub fn short_utc(ms: i64) -> String {
    let iso = iso_utc(ms);
    format!("{} {} UTC", &iso[..10], &iso[11..16])
}

/// The proleptic Gregorian date of a count of days since 1970-01-01: the
/// calendar counted in 400-year eras of 146,097 days, from 0000-03-01 so
/// that a leap day ends each year.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month as u32, day as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants_read_right() {
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_utc(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(iso_utc(1_709_251_199_000), "2024-02-29T23:59:59Z");
        assert_eq!(iso_utc(1_735_689_600_000), "2025-01-01T00:00:00Z");
        assert_eq!(iso_utc(-1_000), "1969-12-31T23:59:59Z");
        assert_eq!(short_utc(1_735_689_600_000), "2025-01-01 00:00 UTC");
    }
}
