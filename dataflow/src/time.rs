//! Epochs (the timely timestamp) and event time (data).

use serde::{Deserialize, Serialize};

/// The timely timestamp: a totally ordered processing tick. File replay advances it every
/// `epoch_lines` input lines; a live source every tick of wall-clock time.
pub type Epoch = u64;

/// Event time in milliseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EventTime(pub i64);

/// One hour in milliseconds.
pub const HOUR_MS: i64 = 3_600_000;

impl EventTime {
    /// The earliest representable event time (a watermark that holds everything back).
    pub const MIN: EventTime = EventTime(i64::MIN);
    /// The latest representable event time (the watermark of an input that has ended).
    pub const MAX: EventTime = EventTime(i64::MAX);

    /// Parses a strict RFC 3339 timestamp `YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)`.
    ///
    /// Errors: `None` when the shape differs (a space or lowercase `t` separator, a missing zone,
    /// a bare number), a field is out of range (month 13, hour 99), or the offset is outside
    /// RFC 3339's `time-numoffset` (hours 00–23, minutes 00–59, so at most ±23:59; jiff's own
    /// parser accepts up to ±25:59:59).
    pub fn parse_rfc3339(s: &str) -> Option<EventTime> {
        if !has_rfc3339_shape(s.as_bytes()) {
            return None;
        }
        let pieces = jiff::fmt::temporal::Pieces::parse(s).ok()?;
        let offset = pieces.to_numeric_offset()?;
        if offset.seconds().unsigned_abs() > MAX_RFC3339_OFFSET_SECONDS {
            return None;
        }
        let ts = offset.to_timestamp(pieces.date().to_datetime(pieces.time()?)).ok()?;
        Some(EventTime(ts.as_millisecond()))
    }

    /// Formats as RFC 3339 UTC with millisecond precision when needed (`2024-12-15T06:00:00Z`).
    pub fn to_rfc3339(self) -> String {
        let mut out = Vec::with_capacity(24);
        self.write_rfc3339(&mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// Appends the RFC 3339 UTC text (as [`EventTime::to_rfc3339`]) to `out` without allocating;
    /// `invalid` for a time outside jiff's range (years −9999..=9999).
    pub fn write_rfc3339(self, out: &mut Vec<u8>) {
        match jiff::Timestamp::from_millisecond(self.0) {
            Ok(ts) => {
                if jiff::fmt::temporal::DateTimePrinter::new().print_timestamp(&ts, &mut *out).is_err() {
                    out.extend_from_slice(b"invalid");
                }
            }
            Err(_) => out.extend_from_slice(b"invalid"),
        }
    }

    /// Start of the UTC hour containing this instant.
    pub fn hour_floor(self) -> EventTime {
        EventTime(self.0.div_euclid(HOUR_MS) * HOUR_MS)
    }

    /// Saturating addition of milliseconds.
    pub fn plus_ms(self, ms: i64) -> EventTime {
        EventTime(self.0.saturating_add(ms))
    }
}

/// The largest RFC 3339 offset, `±23:59` (RFC 3339 §5.6: `time-hour` 00–23, `time-minute` 00–59), seconds.
const MAX_RFC3339_OFFSET_SECONDS: u32 = 23 * 3600 + 59 * 60;

/// Checks the byte shape of `YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|±HH:MM)`; ranges are left to the parser.
fn has_rfc3339_shape(b: &[u8]) -> bool {
    const DATE_TIME: &[u8; 19] = b"dddd-dd-ddTdd:dd:dd";
    if b.len() < 20 {
        return false;
    }
    let shape_ok = DATE_TIME.iter().zip(b).all(|(p, c)| match p {
        b'd' => c.is_ascii_digit(),
        p => p == c,
    });
    if !shape_ok {
        return false;
    }
    let mut rest = &b[19..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let digits = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 || digits > 9 {
            return false;
        }
        rest = &frac[digits..];
    }
    match rest {
        b"Z" => true,
        [sign, h1, h2, b':', m1, m2] => {
            (*sign == b'+' || *sign == b'-') && [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit())
        }
        _ => false,
    }
}

/// Wall-clock now in nanoseconds since the Unix epoch (comparable across processes on one host).
pub fn now_unix_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_contract_shapes() {
        assert_eq!(EventTime::parse_rfc3339("2024-12-15T00:00:00Z"), Some(EventTime(1_734_220_800_000)));
        assert_eq!(EventTime::parse_rfc3339("2024-12-15T06:00:00+06:00"), Some(EventTime(1_734_220_800_000)));
        assert_eq!(EventTime::parse_rfc3339("2024-12-15T00:00:00.250Z"), Some(EventTime(1_734_220_800_250)));
    }

    #[test]
    fn rejects_what_gen_py_spoils() {
        for bad in
            ["yesterday", "2024-13-45T99:00:00Z", "", "1734256800", "2024-12-15 00:00:00Z", "2024-12-15T00:00:00"]
        {
            assert_eq!(EventTime::parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn offsets_outside_rfc3339_are_rejected() {
        for bad in [
            "2024-12-15T00:00:00+24:00",
            "2024-12-15T00:00:00+25:00",
            "2024-12-15T00:00:00-25:59",
            "2024-12-15T00:00:00-99:99",
            "2024-12-15T00:00:00+05:60",
            "2024-12-15T00:00:00.5+25:00",
        ] {
            assert_eq!(EventTime::parse_rfc3339(bad), None, "{bad}");
        }
        // The extremes RFC 3339 allows, and its "unknown local offset" -00:00.
        assert_eq!(EventTime::parse_rfc3339("2024-12-15T23:59:00+23:59"), Some(EventTime(1_734_220_800_000)));
        assert_eq!(EventTime::parse_rfc3339("2024-12-14T00:01:00-23:59"), Some(EventTime(1_734_220_800_000)));
        assert_eq!(EventTime::parse_rfc3339("2024-12-15T00:00:00-00:00"), Some(EventTime(1_734_220_800_000)));
    }

    #[test]
    fn hour_floor_handles_negative_times() {
        assert_eq!(EventTime(-1).hour_floor(), EventTime(-HOUR_MS));
        assert_eq!(EventTime(HOUR_MS + 5).hour_floor(), EventTime(HOUR_MS));
    }

    #[test]
    fn formats_utc() {
        assert_eq!(EventTime(1_734_220_800_000).to_rfc3339(), "2024-12-15T00:00:00Z");
    }
}
