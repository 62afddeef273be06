//! date-formatter: a release formatter adding date specifiers (`%Y`, `%y`, `%M`, `%d`, `%D`,
//! `%J`) to name formats, computed in UTC from the delivery's epoch (the time upstream's `%t`
//! prints). It reads the epoch through the `template` capability (`{{ info.time_str_epoch }}`),
//! so two names formatted in one delivery always agree; it never reads the wall clock.

use stasis_sdk::prelude::*;

struct Dates;

impl ReleaseFormatter for Dates {
    const SPECIFIERS: &'static [(char, &'static str)] = &[
        ('Y', "year of the delivery's epoch, 4 digits (UTC)"),
        ('y', "year, 2 digits"),
        ('M', "month, 01-12"),
        ('d', "day of the month, 01-31"),
        ('D', "date as YYYYMMDD"),
        ('J', "day of the year, 001-366"),
    ];

    fn format(spec: char, delivery: &Delivery) -> Result<String, PluginError> {
        let date = Date::from_epoch(epoch(delivery)?);
        Ok(match spec {
            'Y' => format!("{:04}", date.year),
            'y' => format!("{:02}", date.year.rem_euclid(100)),
            'M' => format!("{:02}", date.month),
            'd' => format!("{:02}", date.day),
            'D' => format!("{:04}{:02}{:02}", date.year, date.month, date.day),
            'J' => format!("{:03}", date.day_of_year),
            other => return Err(PluginError::Unsupported(format!("%{other}"))),
        })
    }
}

stasis_sdk::export_release_formatter!(Dates);

/// The delivery's epoch in seconds, as the host's template context has it.
fn epoch(delivery: &Delivery) -> Result<i64, PluginError> {
    let text = template::render("{{ info.time_str_epoch }}")?;
    text.trim().parse().map_err(|_| {
        PluginError::Failed(format!(
            "delivery {:?}: info.time_str_epoch is {text:?}, not a number of seconds",
            delivery.name
        ))
    })
}

/// A UTC calendar date.
#[derive(Debug, PartialEq, Eq)]
struct Date {
    year: i64,
    month: u32,
    day: u32,
    day_of_year: u32,
}

impl Date {
    /// Civil date of a Unix time (Howard Hinnant's `civil_from_days`, proleptic Gregorian).
    fn from_epoch(seconds: i64) -> Date {
        let days = seconds.div_euclid(86_400);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy_from_march = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy_from_march + 2) / 153;
        let day = (doy_from_march - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        const BEFORE_MONTH: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
        let day_of_year = BEFORE_MONTH[(month - 1) as usize] + day + u32::from(leap && month > 2);
        Date {
            year,
            month,
            day,
            day_of_year,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Date;

    fn ymd(seconds: i64) -> (i64, u32, u32, u32) {
        let d = Date::from_epoch(seconds);
        (d.year, d.month, d.day, d.day_of_year)
    }

    #[test]
    fn known_dates() {
        assert_eq!(ymd(0), (1970, 1, 1, 1));
        // upstream's verified example epoch
        assert_eq!(ymd(1_700_000_000), (2023, 11, 14, 318));
        assert_eq!(ymd(951_782_400), (2000, 2, 29, 60));
        assert_eq!(ymd(1_709_251_199), (2024, 2, 29, 60));
        assert_eq!(ymd(1_735_603_200), (2024, 12, 31, 366));
        assert_eq!(ymd(-1), (1969, 12, 31, 365));
    }
}
