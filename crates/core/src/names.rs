//! Names, identities and the limits AWS puts on them: the leaf every other
//! module builds on (config validates names with it, releases derive ids from it),
//! so neither depends on the other.

use std::fmt;

/// The longest app, environment or service name.
pub const MAX_NAME_LEN: usize = 64;

/// Whether `name` is a valid app, environment or service name:
/// 1 to 64 of `[A-Za-z0-9_-]`.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// What ECS's `startedBy` may hold at most.
pub const MAX_STARTED_BY_LEN: usize = 128;
const STARTED_BY_PREFIX: &str = "ferry/";
/// The longest release id whose `startedBy` still fits ECS's limit.
pub const MAX_RELEASE_ID_LEN: usize = MAX_STARTED_BY_LEN - STARTED_BY_PREFIX.len();
/// How many hex characters of the digest a release id carries.
pub const DIGEST_PREFIX_LEN: usize = 16;

/// Separates a retry's generation from the digest part: `<16 hex>-<generation>`.
/// Not `.`: ECS's `startedBy` takes only letters, digits, `-`, `/` and `_`.
const GENERATION_SEPARATOR: char = '-';
/// The most digits a generation is written with (it fits a `u32`).
const MAX_GENERATION_DIGITS: usize = 9;

/// A release's identity: `<app>/<env>/<first 16 hex characters of the digest>`,
/// and for an operator's retry of that digest `…-<generation>` (2, 3, …).
///
/// The first generation is deterministic in (app, env, digest), so a re-delivered
/// push finds the release it already started instead of starting another; a retry
/// deploys the digest again under the next generation. Generation 1 has no suffix
/// (and `-1` is refused), so every release has exactly one spelling, and the hex
/// part never holds `-`, so the id parses back from `startedBy`, ledger keys and
/// events alike.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReleaseId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    #[error(
        "`{id}` is not a release id ({why}); a release id looks like `shop/prod/3f2a9c1b7e40d5a1` (a retry's: `shop/prod/3f2a9c1b7e40d5a1-2`)"
    )]
    InvalidId { id: String, why: String },
}

impl ReleaseId {
    /// The release of `digest` (`sha256:<hex>`, or bare hex) to `app`/`env`.
    ///
    /// With app and environment names that the config accepted and a digest from a
    /// [`crate::image::PushedImage`], the result always passes [`ReleaseId::parse`].
    pub fn derive(app: &str, env: &str, digest: &str) -> ReleaseId {
        let hex = digest.rsplit(':').next().unwrap_or(digest);
        let short: String = hex
            .chars()
            .filter(char::is_ascii_hexdigit)
            .take(DIGEST_PREFIX_LEN)
            .map(|c| c.to_ascii_lowercase())
            .collect();
        ReleaseId(format!("{app}/{env}/{short}"))
    }

    /// The restart of the release of `digest` for `cause` (e.g. a secret's new
    /// version): deterministic in both, so a redelivered cause is a duplicate,
    /// and distinct from every release of a push (a hash, not the digest's prefix).
    pub fn restart(app: &str, env: &str, digest: &str, cause: &str) -> ReleaseId {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in digest.bytes().chain([b'@']).chain(cause.bytes()) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        ReleaseId::derive(app, env, &format!("{hash:016x}"))
    }

    /// Parses and validates `<app>/<env>/<16 lowercase hex>[-<generation ≥ 2>]`.
    pub fn parse(s: &str) -> Result<ReleaseId, ReleaseError> {
        let invalid = |why: &str| ReleaseError::InvalidId {
            id: s.to_owned(),
            why: why.to_owned(),
        };
        let parts: Vec<&str> = s.split('/').collect();
        let [app, env, hash] = parts.as_slice() else {
            return Err(invalid("it needs exactly three `/`-separated parts"));
        };
        if !is_valid_name(app) {
            return Err(invalid(
                "the app name must be 1 to 64 letters, digits, `_` or `-`",
            ));
        }
        if !is_valid_name(env) {
            return Err(invalid(
                "the environment name must be 1 to 64 letters, digits, `_` or `-`",
            ));
        }
        let (hash, generation) = match hash.split_once(GENERATION_SEPARATOR) {
            Some((hash, generation)) => (hash, Some(generation)),
            None => (*hash, None),
        };
        if hash.len() != DIGEST_PREFIX_LEN
            || !hash
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(invalid(
                "the last part must be the first 16 lowercase hex characters of the image digest",
            ));
        }
        if let Some(generation) = generation {
            if parse_generation(generation).is_none() {
                return Err(invalid(
                    "a retry's generation after the `-` must be a number from 2, without leading zeros",
                ));
            }
        }
        if s.len() > MAX_RELEASE_ID_LEN {
            return Err(invalid(&format!(
                "it is {} characters long; at most {MAX_RELEASE_ID_LEN} fit in ECS's startedBy",
                s.len()
            )));
        }
        Ok(ReleaseId(s.to_owned()))
    }

    /// The release named by an ECS task's `startedBy` (`ferry/<release id>`), if any.
    pub fn from_started_by(started_by: &str) -> Option<ReleaseId> {
        started_by
            .strip_prefix(STARTED_BY_PREFIX)
            .and_then(|id| ReleaseId::parse(id).ok())
    }

    /// `ferry/<release id>`: at most 128 characters of letters, digits, `-`, `_` and
    /// `/`, as ECS's `startedBy` requires (the config limits name lengths so it fits).
    pub fn started_by(&self) -> String {
        format!("{STARTED_BY_PREFIX}{}", self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// 1 for the release a push derives, 2, 3, … for an operator's retries of it.
    pub fn generation(&self) -> u32 {
        let last = self.0.rsplit('/').next().unwrap_or_default();
        last.split_once(GENERATION_SEPARATOR)
            .and_then(|(_, generation)| parse_generation(generation))
            .unwrap_or(1)
    }

    /// The first generation of the same (app, environment, digest): the id a push derives.
    pub fn first_generation(&self) -> ReleaseId {
        match self.generation() {
            1 => self.clone(),
            n => ReleaseId(
                self.0
                    .strip_suffix(&format!("{GENERATION_SEPARATOR}{n}"))
                    .unwrap_or(&self.0)
                    .to_owned(),
            ),
        }
    }

    /// The id a retry of this release deploys the same digest under; refused when
    /// it would no longer fit ECS's `startedBy`.
    pub fn next_generation(&self) -> Result<ReleaseId, ReleaseError> {
        let next = self
            .generation()
            .checked_add(1)
            .ok_or_else(|| ReleaseError::InvalidId {
                id: self.0.clone(),
                why: "it has no next generation".to_owned(),
            })?;
        ReleaseId::parse(&format!(
            "{}{GENERATION_SEPARATOR}{next}",
            self.first_generation()
        ))
    }

    pub fn app(&self) -> &str {
        self.0.split('/').next().unwrap_or("")
    }

    pub fn env(&self) -> &str {
        self.0.split('/').nth(1).unwrap_or("")
    }
}

/// A generation written after the id's `-`: 2 or more, no leading zero.
fn parse_generation(text: &str) -> Option<u32> {
    if text.is_empty()
        || text.len() > MAX_GENERATION_DIGITS
        || text.starts_with('0')
        || !text.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    text.parse().ok().filter(|g| *g >= 2)
}

impl fmt::Display for ReleaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// When an image was pushed, compared as a time (milliseconds since the Unix
/// epoch, UTC), never as text from two formatters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PushTime(i64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an RFC 3339 time like 2026-12-01T09:30:00Z")]
pub struct BadTime(pub String);

impl PushTime {
    pub fn from_epoch_millis(millis: i64) -> PushTime {
        PushTime(millis)
    }

    pub fn epoch_millis(self) -> i64 {
        self.0
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
    pub fn parse_rfc3339(text: &str) -> Result<PushTime, BadTime> {
        let bad = || BadTime(text.to_owned());
        let b = text.as_bytes();
        let digits = |from: usize, len: usize| -> Result<i64, BadTime> {
            let part = b.get(from..from + len).ok_or_else(bad)?;
            if !part.iter().all(u8::is_ascii_digit) {
                return Err(bad());
            }
            Ok(part.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
        };
        let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
        if separators.iter().any(|(i, c)| b.get(*i) != Some(c))
            || !matches!(b.get(10), Some(b'T' | b't' | b' '))
        {
            return Err(bad());
        }
        let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
        let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
        if !(1..=12).contains(&month)
            || !(1..=31).contains(&day)
            || hour > 23
            || minute > 59
            || second > 60
        {
            return Err(bad());
        }
        let mut at = 19;
        let mut millis = 0;
        if b.get(at) == Some(&b'.') {
            let start = at + 1;
            at = start;
            while b.get(at).is_some_and(u8::is_ascii_digit) {
                at += 1;
            }
            if at == start {
                return Err(bad());
            }
            let fraction = &text[start..at.min(start + 3)];
            millis =
                fraction.parse::<i64>().map_err(|_| bad())? * 10_i64.pow(3 - fraction.len() as u32);
        }
        let offset_minutes = match b.get(at) {
            Some(b'Z' | b'z') if at + 1 == b.len() => 0,
            Some(sign @ (b'+' | b'-')) if at + 6 == b.len() && b[at + 3] == b':' => {
                let minutes = digits(at + 1, 2)? * 60 + digits(at + 4, 2)?;
                if *sign == b'+' {
                    minutes
                } else {
                    -minutes
                }
            }
            _ => return Err(bad()),
        };
        let days = days_from_civil(year, month, day);
        let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
        Ok(PushTime(seconds * 1_000 + millis))
    }
}

impl fmt::Display for PushTime {
    /// RFC 3339 in UTC, with milliseconds only when there are some.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.0.div_euclid(1_000);
        let millis = self.0.rem_euclid(1_000);
        let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
        let (year, month, day) = civil_from_days(days);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
            rest / 3_600,
            rest % 3_600 / 60,
            rest % 60
        )?;
        if millis != 0 {
            write!(f, ".{millis:03}")?;
        }
        f.write_str("Z")
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (year_of_era + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod push_time_tests {
    use super::PushTime;

    fn at(text: &str) -> PushTime {
        PushTime::parse_rfc3339(text).expect("a valid time")
    }

    #[test]
    fn push_times_from_different_formatters_compare_as_times() {
        // Same instant, three spellings: equal, whatever their text says.
        assert_eq!(at("2026-12-01T09:30:00Z"), at("2026-12-01T09:30:00.000Z"));
        assert_eq!(at("2026-12-01T09:30:00Z"), at("2026-12-01T10:30:00+01:00"));
        // As strings "…09:30:00.5Z" < "…09:30:00Z" — as times it is later.
        assert!(at("2026-12-01T09:30:00.5Z") > at("2026-12-01T09:30:00Z"));
        assert!(at("2026-12-01T09:30:00Z") < at("2026-12-01T09:30:01Z"));
    }

    #[test]
    fn a_push_time_prints_as_rfc3339_utc_and_parses_back() {
        for text in [
            "1970-01-01T00:00:00Z",
            "2024-02-29T23:59:59Z",
            "2026-12-01T09:30:00.250Z",
            "1969-12-31T23:59:59Z",
        ] {
            assert_eq!(at(text).to_string(), text);
        }
        assert_eq!(at("1970-01-01T00:00:01Z").epoch_millis(), 1_000);
        assert_eq!(at("2026-12-01T05:30:02Z").epoch_millis(), 1_796_103_002_000);
    }

    #[test]
    fn a_malformed_push_time_is_refused_with_its_text() {
        for text in [
            "",
            "2026-12-01",
            "2026-13-01T00:00:00Z",
            "2026-12-01T00:00:00",
            "2026-12-01T00:00:00+0100",
            "yesterday",
        ] {
            let err = PushTime::parse_rfc3339(text).expect_err(text);
            assert!(err.to_string().contains(&format!("`{text}`")), "{err}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_to_64_letters_digits_underscores_or_hyphens() {
        for good in ["a", "shop", "shop_v2-eu", "Prod", &"n".repeat(64)] {
            assert!(is_valid_name(good), "{good}");
        }
        for bad in [
            "",
            "shop.eu",
            "shop eu",
            "shop/eu",
            "schöp",
            &"n".repeat(65),
        ] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }

    fn millis(text: &str) -> i64 {
        PushTime::parse_rfc3339(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .epoch_millis()
    }

    #[test]
    fn push_times_with_an_offset_are_the_same_instant_in_utc() {
        let utc = millis("2026-11-23T08:30:00Z");
        assert_eq!(utc, 1_795_422_600_000);
        assert_eq!(millis("2026-11-23T10:00:00+01:30"), utc);
        assert_eq!(millis("2026-11-23T06:30:00-02:00"), utc);
        assert_eq!(millis("2026-11-23t08:30:00z"), utc);
    }

    #[test]
    fn push_time_fractions_count_to_the_millisecond() {
        let whole = millis("2026-11-23T08:30:00Z");
        assert_eq!(millis("2026-11-23T08:30:00.5Z"), whole + 500);
        assert_eq!(millis("2026-11-23T08:30:00.123456Z"), whole + 123);
        assert_eq!(
            millis("2026-11-23T08:30:60Z"),
            whole + 60_000,
            "a leap second"
        );
    }

    #[test]
    fn malformed_push_times_are_refused() {
        for bad in [
            "2026-11-23X08:30:00Z",
            "2026/11/23T08:30:00Z",
            "2026-11-23T08-30-00Z",
            "2026-13-23T08:30:00Z",
            "2026-11-32T08:30:00Z",
            "2026-11-23T24:30:00Z",
            "2026-11-23T08:60:00Z",
            "2026-11-23T08:30:61Z",
            "2026-11-23T08:30:00",
            "2026-11-23T08:30:00Zx",
            "2026-11-23T08:30:00+0130",
            "2026-11-23T08:30:00+01:30x",
            "2026-11-23T08:30:00+01x30",
            "2026-11-23T08:30:00.Z",
        ] {
            assert!(PushTime::parse_rfc3339(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_day_from_1900_to_2500_is_written_and_read_back_as_the_same_time() {
        let first = millis("1900-01-01T00:00:00Z") / 86_400_000;
        let last = millis("2500-12-31T00:00:00Z") / 86_400_000;
        for day in first..=last {
            let time = PushTime::from_epoch_millis(day * 86_400_000 + 3_723_000);
            let written = time.to_string();
            assert_eq!(
                PushTime::parse_rfc3339(&written).map(PushTime::epoch_millis),
                Ok(time.epoch_millis()),
                "{written}"
            );
        }
        assert_eq!(
            PushTime::from_epoch_millis(millis("2000-02-29T01:02:03Z")).to_string(),
            "2000-02-29T01:02:03Z"
        );
    }
}
