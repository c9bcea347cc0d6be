//! Cron expressions for scheduled drills (SPEC D12): the five classic fields, evaluated in UTC.
//!
//! `minute hour day-of-month month day-of-week`, each `*`, a number, a range `a-b`, a list
//! `a,b,c`, or any of those with a step (`*/15`, `0-30/10`). Months are 1–12, days of the week
//! 0–7 (0 and 7 are Sunday). As in Vixie cron, when both day fields are restricted a day
//! matches if *either* does. Names (`MON`, `JAN`) and the `@daily` shorthands are accepted for
//! convenience: `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`.

use std::fmt;

/// A parsed cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    days_restricted: bool,
    weekdays_restricted: bool,
    source: String,
}

/// Why an expression is not a cron expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{expression}` is not a cron expression: {reason}")]
pub struct CronError {
    pub expression: String,
    pub reason: String,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl Cron {
    /// Parses `expression`.
    ///
    /// # Errors
    /// [`CronError`] naming the field that is wrong.
    pub fn parse(expression: &str) -> Result<Cron, CronError> {
        let err = |reason: String| CronError {
            expression: expression.to_owned(),
            reason,
        };
        let text = match expression.trim() {
            "@hourly" => "0 * * * *",
            "@daily" | "@midnight" => "0 0 * * *",
            "@weekly" => "0 0 * * 0",
            "@monthly" => "0 0 1 * *",
            "@yearly" | "@annually" => "0 0 1 1 *",
            other => other,
        };
        let fields: Vec<&str> = text.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(err(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
                fields.len()
            )));
        }
        let field = |i: usize, name: &str, lo: u32, hi: u32, names: &[&str]| {
            parse_field(fields[i], lo, hi, names).map_err(|r| err(format!("{name}: {r}")))
        };
        let minutes = field(0, "minute", 0, 59, &[])?;
        let hours = field(1, "hour", 0, 23, &[])?;
        let days = field(2, "day of month", 1, 31, &[])?;
        let months = field(3, "month", 1, 12, &MONTHS)?;
        let mut weekdays = field(4, "day of week", 0, 7, &WEEKDAYS)?;
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1;
        }
        Ok(Cron {
            minutes,
            hours: hours as u32,
            days: days as u32,
            months: months as u16,
            weekdays: (weekdays & 0x7f) as u8,
            days_restricted: fields[2] != "*",
            weekdays_restricted: fields[4] != "*",
            source: expression.trim().to_owned(),
        })
    }

    /// The first matching minute strictly after `after_ms` (Unix milliseconds, UTC), in Unix
    /// milliseconds; `None` when nothing matches within eight years (e.g. `0 0 31 2 *`).
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        const MINUTE_MS: i64 = 60_000;
        let mut minute = after_ms.div_euclid(MINUTE_MS) + 1;
        let limit = minute + 8 * 366 * 24 * 60;
        while minute < limit {
            let days = minute.div_euclid(24 * 60);
            let (_, month, day) = civil_from_days(days);
            let weekday = (days + 4).rem_euclid(7) as u32; // 1970-01-01 was a Thursday
            if !self.day_matches(month, day, weekday) {
                minute = (days + 1) * 24 * 60;
                continue;
            }
            let of_day = minute.rem_euclid(24 * 60);
            let (hour, min) = ((of_day / 60) as u32, (of_day % 60) as u32);
            if self.hours & (1 << hour) == 0 {
                minute = days * 24 * 60 + i64::from(hour + 1) * 60;
                continue;
            }
            if self.minutes & (1 << min) == 0 {
                minute += 1;
                continue;
            }
            return Some(minute * MINUTE_MS);
        }
        None
    }

    fn day_matches(&self, month: u32, day: u32, weekday: u32) -> bool {
        if self.months & (1 << month) == 0 {
            return false;
        }
        let dom = self.days & (1 << day) != 0;
        let dow = self.weekdays & (1 << weekday) != 0;
        match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => dom || dow,
            (true, false) => dom,
            (false, true) => dow,
            (false, false) => true,
        }
    }
}

impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// One field as a bit set of the values it allows.
fn parse_field(text: &str, lo: u32, hi: u32, names: &[&str]) -> Result<u64, String> {
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("step `{s}` is not a positive number"))?;
                (r, step)
            }
            None => (part, 1),
        };
        let (start, end) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a, lo, hi, names)?, value(b, lo, hi, names)?)
        } else {
            let v = value(range, lo, hi, names)?;
            // `5/15` means from 5 to the end in steps of 15.
            (v, if step > 1 { hi } else { v })
        };
        if start > end {
            return Err(format!("range `{range}` runs backwards"));
        }
        let mut v = start;
        while v <= end {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

fn value(text: &str, lo: u32, hi: u32, names: &[&str]) -> Result<u32, String> {
    let upper = text.to_ascii_uppercase();
    if let Some(i) = names.iter().position(|n| *n == upper) {
        // Month names count from 1, weekday names from 0.
        return Ok(i as u32 + if names.len() == 12 { 1 } else { 0 });
    }
    let v: u32 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    if v < lo || v > hi {
        return Err(format!("{v} is outside {lo}-{hi}"));
    }
    Ok(v)
}

/// (year, month 1–12, day 1–31) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-25 (a Wednesday) 10:17:30 UTC.
    const NOW: i64 = 1_795_601_850_000;

    fn at(text: &str) -> i64 {
        Cron::parse(text).unwrap().next_after(NOW).unwrap()
    }

    fn minutes(ms: i64) -> i64 {
        (ms - NOW) / 60_000
    }

    #[test]
    fn civil_dates_are_right() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(NOW / 86_400_000), (2026, 11, 25));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn next_minute_hour_day_and_weekday() {
        // Every minute: the next whole minute.
        assert_eq!(at("* * * * *"), (NOW / 60_000 + 1) * 60_000);
        // Every quarter hour: 10:30.
        assert_eq!(at("*/15 * * * *") % 3_600_000, 30 * 60_000);
        // 03:00 every day: tomorrow (26th) at 03:00.
        let daily = at("0 3 * * *");
        assert_eq!(civil_from_days(daily / 86_400_000), (2026, 11, 26));
        assert_eq!(daily % 86_400_000, 3 * 3_600_000);
        // Mondays 02:30: 2026-11-30.
        let monday = at("30 2 * * mon");
        assert_eq!(civil_from_days(monday / 86_400_000), (2026, 11, 30));
        assert_eq!(monday % 86_400_000, 2 * 3_600_000 + 30 * 60_000);
        // Sunday as 7.
        assert_eq!(at("0 0 * * 7"), at("0 0 * * 0"));
        // First of the month: 2026-12-01.
        let first = at("@monthly");
        assert_eq!(civil_from_days(first / 86_400_000), (2026, 12, 1));
        // Later today.
        assert_eq!(minutes(at("20 10 * * *")), 2);
        // Ranges, lists and steps.
        assert_eq!(minutes(at("0-59/20 11,12 * * *")), 42);
    }

    #[test]
    fn both_day_fields_match_either() {
        // The 1st of a month OR a Friday: Friday 2026-11-27 comes first.
        let t = at("0 0 1 * fri");
        assert_eq!(civil_from_days(t / 86_400_000), (2026, 11, 27));
    }

    #[test]
    fn impossible_dates_have_no_next() {
        assert_eq!(Cron::parse("0 0 31 2 *").unwrap().next_after(NOW), None);
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        for (text, needle) in [
            ("* * * *", "expected 5 fields"),
            ("60 * * * *", "minute: 60 is outside 0-59"),
            ("* 24 * * *", "hour"),
            ("* * 0 * *", "day of month"),
            ("* * * 13 *", "month"),
            ("* * * * 8", "day of week"),
            ("*/0 * * * *", "step"),
            ("5-1 * * * *", "backwards"),
            ("x * * * *", "not a number"),
        ] {
            let e = Cron::parse(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }
}
