//! Canonical timestamps (docs/ledger-format.md): any RFC 3339 date-time in, UTC
//! truncated to milliseconds out, always written `YYYY-MM-DDTHH:MM:SS.mmmZ`.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use std::fmt;

/// Milliseconds since the Unix epoch, UTC. Rendered only in the canonical form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// Why a timestamp was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an RFC 3339 date-time with Z or an offset and at most 9 fractional digits")]
pub struct TimestampError;

/// The earliest and latest instants we accept (years 0001 to 9999).
const MIN_MILLIS: i64 = -62_135_596_800_000;
const MAX_MILLIS: i64 = 253_402_300_799_999;

impl Timestamp {
    pub fn now() -> Self {
        Self(Utc::now().timestamp_millis())
    }

    pub fn from_millis(millis: i64) -> Self {
        Self(millis.clamp(MIN_MILLIS, MAX_MILLIS))
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    pub fn plus_millis(self, delta: i64) -> Self {
        Self::from_millis(self.0.saturating_add(delta))
    }

    pub fn plus_days(self, days: i64) -> Self {
        self.plus_millis(days.saturating_mul(86_400_000))
    }

    /// Parses RFC 3339 strictly: `T` (or `t`), seconds required, 0-9 fraction
    /// digits, `Z`/`z` or `±HH:MM`. The result is truncated (not rounded).
    pub fn parse(input: &str) -> Result<Self, TimestampError> {
        let b = input.as_bytes();
        if b.len() < 20 {
            return Err(TimestampError);
        }
        let digits = |range: std::ops::Range<usize>| -> Result<u32, TimestampError> {
            let part = &b[range];
            if part.iter().all(u8::is_ascii_digit) {
                Ok(part.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0')))
            } else {
                Err(TimestampError)
            }
        };
        let year = digits(0..4)?;
        let month = digits(5..7)?;
        let day = digits(8..10)?;
        let hour = digits(11..13)?;
        let minute = digits(14..16)?;
        let second = digits(17..19)?;
        if b[4] != b'-'
            || b[7] != b'-'
            || !matches!(b[10], b'T' | b't')
            || b[13] != b':'
            || b[16] != b':'
        {
            return Err(TimestampError);
        }
        let mut pos = 19;
        let mut nanos: u32 = 0;
        if b[pos] == b'.' {
            pos += 1;
            let start = pos;
            while pos < b.len() && b[pos].is_ascii_digit() {
                pos += 1;
            }
            let count = pos - start;
            if count == 0 || count > 9 {
                return Err(TimestampError);
            }
            nanos = digits(start..pos)? * 10u32.pow(9 - count as u32);
        }
        let offset_seconds: i64 = match &b[pos..] {
            [b'Z' | b'z'] => 0,
            [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
                let hh = digits(pos + 1..pos + 3)?;
                let mm = digits(pos + 4..pos + 6)?;
                if hh > 23 || mm > 59 {
                    return Err(TimestampError);
                }
                let magnitude = i64::from(hh * 3600 + mm * 60);
                if *sign == b'-' {
                    -magnitude
                } else {
                    magnitude
                }
            }
            _ => return Err(TimestampError),
        };
        if hour > 23 || minute > 59 || second > 59 {
            return Err(TimestampError);
        }
        let date = NaiveDate::from_ymd_opt(year as i32, month, day).ok_or(TimestampError)?;
        let local = date
            .and_hms_nano_opt(hour, minute, second, nanos)
            .ok_or(TimestampError)?;
        let utc_millis = local.and_utc().timestamp_millis() - offset_seconds * 1000;
        // timestamp_millis floors toward negative infinity, which is truncation
        // for every instant after 1970 and the documented rule before it.
        if !(MIN_MILLIS..=MAX_MILLIS).contains(&utc_millis) {
            return Err(TimestampError);
        }
        Ok(Self(utc_millis))
    }

    fn to_datetime(self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.0)
            .single()
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// The calendar date in UTC, for `YYYY-MM-DD` comparisons.
    pub fn date(self) -> NaiveDate {
        self.to_datetime().date_naive()
    }
}

impl Timestamp {
    /// Appends `YYYY-MM-DDTHH:MM:SS.mmmZ` (no allocation: entries are
    /// serialised for every verification).
    pub fn write_canonical(self, out: &mut String) {
        let millis = self.0.rem_euclid(1000) as u32;
        let secs = self.0.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let of_day = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        let mut buf = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, width: usize, mut value: u32| {
            for i in (0..width).rev() {
                buf[at + i] = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        put(0, 4, year as u32);
        put(5, 2, month);
        put(8, 2, day);
        put(11, 2, of_day / 3600);
        put(14, 2, of_day / 60 % 60);
        put(17, 2, of_day % 60);
        put(20, 3, millis);
        out.push_str(std::str::from_utf8(&buf).expect("ASCII"));
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (H. Hinnant's algorithm).
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

/// Where "now" comes from: the system clock, or a manual one that a test
/// sets and steps (to expire a key, or to step the clock back).
#[derive(Debug, Clone, Default)]
pub struct Clock {
    manual: Option<std::sync::Arc<std::sync::atomic::AtomicI64>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self { manual: None }
    }

    /// A clock that stands at `start` until it is set or advanced.
    pub fn manual(start: Timestamp) -> Self {
        Self {
            manual: Some(std::sync::Arc::new(std::sync::atomic::AtomicI64::new(
                start.millis(),
            ))),
        }
    }

    pub fn now(&self) -> Timestamp {
        match &self.manual {
            None => Timestamp::now(),
            Some(at) => Timestamp::from_millis(at.load(std::sync::atomic::Ordering::SeqCst)),
        }
    }

    /// Sets a manual clock (every clone of it). Panics on the system clock:
    /// only a test's own clock can be set.
    pub fn set(&self, to: Timestamp) {
        let at = self
            .manual
            .as_ref()
            .expect("only a manual clock can be set");
        at.store(to.millis(), std::sync::atomic::Ordering::SeqCst);
    }

    /// Moves a manual clock by `millis` (negative: back).
    pub fn advance(&self, millis: i64) {
        self.set(self.now().plus_millis(millis));
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::with_capacity(24);
        self.write_canonical(&mut out);
        f.write_str(&out)
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// What `Timestamp::parse` takes, as an OpenAPI pattern (the calendar and
/// the ranges of its fields are checked besides).
pub const TIMESTAMP_PATTERN: &str = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})$";

impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::DateTime,
            )))
            .pattern(Some(TIMESTAMP_PATTERN))
            .description(Some(
                "RFC 3339 with seconds, at most 9 fraction digits and `Z` or an offset, years \
                 0001 to 9999, no leap second; the service answers in UTC with milliseconds: \
                 YYYY-MM-DDTHH:MM:SS.mmmZ",
            ))
            .examples(["2026-11-20T10:00:00.000Z"])
            .into()
    }
}

impl utoipa::ToSchema for Timestamp {}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, Timelike};

    fn canon(s: &str) -> String {
        Timestamp::parse(s).unwrap().to_string()
    }

    #[test]
    fn canonical_form_truncates_to_milliseconds_in_utc() {
        assert_eq!(canon("2026-11-20T10:00:00Z"), "2026-11-20T10:00:00.000Z");
        assert_eq!(
            canon("2026-11-20T10:00:00.123999999Z"),
            "2026-11-20T10:00:00.123Z"
        );
        assert_eq!(
            canon("2026-11-20T10:00:00.9+00:00"),
            "2026-11-20T10:00:00.900Z"
        );
        assert_eq!(
            canon("2026-11-20T11:30:00.5555+01:30"),
            "2026-11-20T10:00:00.555Z"
        );
        assert_eq!(
            canon("2026-11-19T22:00:00.000-12:00"),
            "2026-11-20T10:00:00.000Z"
        );
        assert_eq!(canon("2026-11-20t10:00:00z"), "2026-11-20T10:00:00.000Z");
    }

    #[test]
    fn malformed_timestamps_are_refused() {
        for bad in [
            "",
            "2026-11-20",
            "2026-11-20T10:00Z",
            "2026-11-20 10:00:00Z",
            "2026-11-20T10:00:00",
            "2026-11-20T10:00:00.Z",
            "2026-11-20T10:00:00.1234567890Z",
            "2026-13-20T10:00:00Z",
            "2026-02-30T10:00:00Z",
            "2026-11-20T24:00:00Z",
            "2026-11-20T10:00:60Z",
            "2026-11-20T10:00:00+0100",
            "2026-11-20T10:00:00+24:00",
            "2026-11-20T10:00:00Z ",
            "２026-11-20T10:00:00Z",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn the_fast_formatter_agrees_with_chrono() {
        let mut t = Timestamp::from_millis(MIN_MILLIS);
        while t.millis() < MAX_MILLIS - 7_777_777_777 {
            let dt = t.to_datetime();
            let expected = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                dt.year(),
                dt.month(),
                dt.day(),
                dt.hour(),
                dt.minute(),
                dt.second(),
                dt.timestamp_subsec_millis()
            );
            assert_eq!(t.to_string(), expected);
            t = t.plus_millis(7_777_777_777);
        }
        assert_eq!(
            Timestamp::parse("1969-12-31T23:59:59.999Z")
                .unwrap()
                .to_string(),
            "1969-12-31T23:59:59.999Z"
        );
        assert_eq!(
            Timestamp::parse("2000-02-29T00:00:00Z")
                .unwrap()
                .to_string(),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn a_manual_clock_is_shared_by_its_clones_and_steps_both_ways() {
        let clock = Clock::manual(Timestamp::from_millis(1_000));
        let seen_by_the_app = clock.clone();
        clock.advance(61_000);
        assert_eq!(seen_by_the_app.now().millis(), 62_000);
        clock.advance(-2_000);
        assert_eq!(seen_by_the_app.now().millis(), 60_000);
        let system = Clock::system().now().millis();
        assert!((system - Timestamp::now().millis()).abs() < 60_000);
    }

    #[test]
    fn ordering_follows_the_instant_not_the_text() {
        let a = Timestamp::parse("2026-11-20T11:00:00+02:00").unwrap();
        let b = Timestamp::parse("2026-11-20T10:00:00Z").unwrap();
        assert!(a < b);
    }
}
