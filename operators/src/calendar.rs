//! Calendar fields in Asia/Dhaka local time; the Bangladeshi weekend is Friday and Saturday.
//!
//! ```
//! use millionx_operators::calendar::LocalCalendar;
//! use millionx_dataflow::EventTime;
//! let cal = LocalCalendar::dhaka();
//! // 2024-12-19T20:30:00Z is Friday 02:30 in Dhaka (UTC+6)
//! let c = cal.at(EventTime::parse_rfc3339("2024-12-19T20:30:00Z").unwrap());
//! assert_eq!((c.hour_of_day, c.weekday, c.is_weekend), (2, 5, true));
//! ```

use jiff::tz::TimeZone;
use jiff::Timestamp;
use millionx_dataflow::record::Calendar;
use millionx_dataflow::EventTime;

/// Converts event times to local calendar fields.
#[derive(Clone, Debug)]
pub struct LocalCalendar {
    tz: TimeZone,
}

impl LocalCalendar {
    /// Asia/Dhaka from the bundled IANA database (falls back to fixed UTC+6, Bangladesh's offset
    /// since 2010, should the database lack the zone).
    pub fn dhaka() -> LocalCalendar {
        let tz = TimeZone::get("Asia/Dhaka").unwrap_or_else(|_| TimeZone::fixed(jiff::tz::offset(6)));
        LocalCalendar { tz }
    }

    /// The calendar fields at `t`.
    pub fn at(&self, t: EventTime) -> Calendar {
        let Ok(ts) = Timestamp::from_millisecond(t.0) else {
            return Calendar::default();
        };
        let local = ts.to_zoned_datetime(self.tz.clone());
        let weekday = local.weekday().to_monday_one_offset() as u8;
        Calendar { hour_of_day: local.hour() as u8, weekday, is_weekend: matches!(weekday, 5 | 6) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dhaka_is_utc_plus_six_and_weekend_is_friday_saturday() {
        let cal = LocalCalendar::dhaka();
        let at = |s: &str| cal.at(EventTime::parse_rfc3339(s).expect("valid"));
        // Thursday 2024-12-19 17:59Z = 23:59 Thursday local
        assert_eq!(at("2024-12-19T17:59:00Z"), Calendar { hour_of_day: 23, weekday: 4, is_weekend: false });
        // 18:00Z = Friday 00:00 local
        assert_eq!(at("2024-12-19T18:00:00Z"), Calendar { hour_of_day: 0, weekday: 5, is_weekend: true });
        // Saturday 2024-12-21 17:59Z = 23:59 Saturday local; 18:00Z = Sunday
        assert!(at("2024-12-21T17:59:00Z").is_weekend);
        assert_eq!(at("2024-12-21T18:00:00Z"), Calendar { hour_of_day: 0, weekday: 7, is_weekend: false });
    }
}
