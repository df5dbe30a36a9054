//! Every real OWM payload in `<repo root>/../shared/fixtures/owm/`, read in place, against what
//! `EXPECTED.md` there says it must normalise to (or how it must be rejected). The expectations are read
//! from EXPECTED.md's tables, so a new fixture without a row fails the test.
//!
//! Fails under `CI=true` when the folder is missing; otherwise prints that it skipped.

mod common;

use std::path::{Path, PathBuf};

use millionx_dataflow::City;
use millionx_source_weather::{Checks, FailureReason, Observation, Units};
use regex::Regex;

/// One success row of EXPECTED.md.
#[derive(Debug)]
struct Expect {
    file: String,
    city: Option<City>,
    units: Units,
    text: String,
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("test regex")
}

fn capture(text: &str, pattern: &str) -> Option<String> {
    re(pattern).captures(text).and_then(|c| c.get(1)).map(|m| m.as_str().to_owned())
}

fn number(text: &str, pattern: &str, file: &str) -> f64 {
    let s = capture(text, pattern).unwrap_or_else(|| panic!("{file}: EXPECTED.md row has no match for {pattern}"));
    s.parse().unwrap_or_else(|e| panic!("{file}: {s}: {e}"))
}

/// Table rows `| a | b | ... |` of EXPECTED.md, split into trimmed cells, header and rule rows dropped.
fn rows(md: &str) -> Vec<Vec<String>> {
    md.lines()
        .filter(|l| {
            l.starts_with('|') && !l.starts_with("|---") && !l.starts_with("| file") && !l.starts_with("| error file")
        })
        .map(|l| l.trim_matches('|').split(" | ").map(|c| c.trim().to_owned()).collect())
        .collect()
}

fn success_rows(md: &str) -> Vec<Expect> {
    rows(md)
        .into_iter()
        .filter(|r| r.len() == 4)
        .map(|r| {
            // The fetcher always asks `units=metric`; a capture made without it (or described in Kelvin, or the
            // API doc's example, which uses OWM's default) is in Kelvin.
            let units =
                if r[2].contains("metric") && !r[2].contains("Kelvin") { Units::Metric } else { Units::Standard };
            Expect { file: r[0].clone(), city: City::from_name(&r[1]), units, text: r[3].clone() }
        })
        .collect()
}

/// Error rows: (file glob with at most one `*`, HTTP status, expected reason label).
fn error_rows(md: &str) -> Vec<(String, u16, String)> {
    rows(md)
        .into_iter()
        .filter(|r| r.len() == 3)
        .map(|r| {
            let status = r[1].parse().unwrap_or_else(|e| panic!("{}: status {}: {e}", r[0], r[1]));
            let reason = capture(&r[2], r#"reason="(\w+)""#).unwrap_or_else(|| panic!("{}: no reason=", r[0]));
            (r[0].clone(), status, reason)
        })
        .collect()
}

fn glob_match(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        Some((head, tail)) => name.len() >= head.len() + tail.len() && name.starts_with(head) && name.ends_with(tail),
        None => pattern == name,
    }
}

fn check_success(dir: &Path, e: &Expect) {
    let file = &e.file;
    let body = std::fs::read(dir.join(file)).unwrap_or_else(|err| panic!("{file}: {err}"));
    let o = Observation::parse(&body, e.units).unwrap_or_else(|err| panic!("{file}: must parse: {err}"));
    let t = &e.text;
    assert_eq!(o.temperature.current, number(t, r"temp (-?[\d.]+) °C", file), "{file} temp");
    assert_eq!(o.temperature.feels_like, number(t, r"feels_like (-?[\d.]+) °C", file), "{file} feels_like");
    assert_eq!(f64::from(o.humidity), number(t, r"humidity (\d+)", file), "{file} humidity");
    assert_eq!(o.pressure, number(t, r"pressure ([\d.]+)", file), "{file} pressure");
    assert_eq!(o.visibility, Some(number(t, r"visibility (\d+)", file)), "{file} visibility");
    let wind = re(r"wind ([\d.]+) m/s (\d+)°(?: gust ([\d.]+))?").captures(t).unwrap_or_else(|| panic!("{file}: wind"));
    assert_eq!(o.wind.speed, wind[1].parse::<f64>().expect("speed"), "{file} wind speed");
    assert_eq!(o.wind.degree, wind[2].parse::<f64>().expect("deg"), "{file} wind deg");
    assert_eq!(o.wind_gust, wind.get(3).map(|g| g.as_str().parse::<f64>().expect("gust")), "{file} gust");
    // "rain_1h 0 (absent → 0 or null, documented)": we keep absent as None (see Observation::rain_1h).
    let rain = capture(t, r"rain_1h ([\d.]+(?: \(absent)?)").unwrap_or_else(|| panic!("{file}: rain_1h"));
    let expected_rain = if rain.ends_with("(absent") { None } else { Some(rain.parse::<f64>().expect("rain")) };
    assert_eq!(o.rain_1h, expected_rain, "{file} rain_1h");
    assert_eq!(o.hour().to_string(), capture(t, r"hour (\S+Z)").expect("hour"), "{file} hour");
    let local = o.local_time().unwrap_or_else(|| panic!("{file}: no timezone"));
    assert_eq!(format!("{:02}:{:02}", local.hour(), local.minute()), capture(t, r"local (\d\d:\d\d)").expect("local"));
    assert_eq!(o.utc_offset_s, Some(number(t, r"\(tz (\d+)\)", file) as i32), "{file} tz");
    assert_eq!(o.name.as_deref(), capture(t, r#"name in payload "([^"]+)""#).as_deref(), "{file} name");
    let country = capture(t, r"country ([A-Z]{2})\b").expect("country");
    assert_eq!(o.country.as_deref(), Some(country.as_str()), "{file} country");

    match (e.city, capture(t, r"accept as \*\*(\w+)\*\*")) {
        (Some(city), Some(accept_as)) => {
            assert_eq!(city.name(), accept_as, "{file}: request city and accepted city differ");
            let defaults = Checks::default();
            let distance = o.distance_to(city);
            let checks = if distance > defaults.max_distance_km {
                // The issue's 25 km rule wins over EXPECTED.md's "accept": reject, then check the rest.
                let err = o.clone().check(city, &defaults).expect_err("beyond tolerance");
                assert_eq!(err.reason, FailureReason::TooFar, "{file}: {err}");
                println!(
                    "{file}: {distance:.1} km from {} > {} km: rejected as too_far (issue rule)",
                    city.name(),
                    defaults.max_distance_km
                );
                Checks { max_distance_km: distance.ceil() }
            } else {
                defaults
            };
            let r =
                o.check(city, &checks).unwrap_or_else(|err| panic!("{file}: must be accepted as {accept_as}: {err}"));
            assert_eq!(r.city, city);
            assert_eq!(r.country, "BD");
            assert_eq!(r.timestamp, Observation::parse(&body, e.units).expect("again").observed_at);
            // A Kelvin capture asked as metric (the fetcher's request) must never pass.
            if e.units == Units::Standard {
                let err =
                    Observation::parse(&body, Units::Metric).and_then(|o| o.check(city, &checks)).expect_err("K as °C");
                assert_eq!(err.reason, FailureReason::Implausible, "{file}: {err}");
            }
        }
        (None, None) => {
            // Not a BD city: parse only; a BD city pointed here fails the country check.
            let err = o.check(City::Dhaka, &Checks::default()).expect_err("not BD");
            assert_eq!(err.reason, FailureReason::WrongCountry, "{file}: {err}");
        }
        other => panic!("{file}: unexpected row shape {other:?}"),
    }
}

#[test]
fn every_owm_fixture_normalises_as_expected() {
    let Some(dir) = common::shared_fixture_dir("owm") else {
        return;
    };
    let md = std::fs::read_to_string(dir.join("EXPECTED.md")).expect("EXPECTED.md");
    assert!(dir.join("INDEX.md").is_file(), "INDEX.md missing in {}", dir.display());
    let successes = success_rows(&md);
    let errors = error_rows(&md);
    assert!(successes.len() >= 6 && errors.len() >= 3, "EXPECTED.md tables not found: {successes:?} {errors:?}");

    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let (mut ok, mut rejected) = (0, 0);
    for path in &files {
        let name = path.file_name().and_then(|n| n.to_str()).expect("utf-8 name");
        if let Some(e) = successes.iter().find(|e| e.file == name) {
            check_success(&dir, e);
            ok += 1;
        } else if let Some((_, status, reason)) = errors.iter().find(|(g, _, _)| glob_match(g, name)) {
            let body = std::fs::read(path).expect("read");
            let err = Observation::parse(&body, Units::Metric).expect_err("error body");
            assert_eq!(err.reason.as_str(), reason, "{name}: {err}");
            assert_eq!(err.reason, FailureReason::from_status(*status), "{name}");
            assert_eq!(err.reason.is_retryable(), *status == 429, "{name}: only 429 is retried");
            rejected += 1;
        } else {
            panic!("{name} has no row in EXPECTED.md");
        }
    }
    println!("owm fixtures: {ok} normalised, {rejected} error bodies rejected as expected");
    assert_eq!(ok + rejected, files.len());
    assert!(ok >= 6 && rejected >= 4, "{ok} {rejected}");
}
