//! `millionx gen`: the repository's own reference-data generator (no dependency on `../shared`).
//!
//! Writes `social.jsonl`, `market.jsonl`, `weather.jsonl` in the format of PIPELINE.md: hourly weather
//! for the eight cities (starting one hour before the first record), posts and orders in event-time
//! order except `--late-rate` records up to 3 h late, `--dup-rate` exact replays of recent good lines,
//! and `--bad-rate` bad lines. Every bad line that is still JSON carries `"_expect": "<reason>"`; lines
//! that are not JSON carry nothing and must be `parse_error`. Same arguments ⇒ same bytes.
//! Post texts include Bangla script with ZWJ/ZWNJ, prices in টাকা, emoji and Banglish.

use std::fs;
use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use millionx_dataflow::catalog::PRODUCTS;
use millionx_dataflow::time::{EventTime, HOUR_MS};
use millionx_dataflow::City;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// Arguments of `millionx gen`.
#[derive(Args, Debug, Clone)]
pub struct GenArgs {
    /// Output folder (created).
    #[arg(long)]
    pub out: PathBuf,
    /// Social posts to generate.
    #[arg(long, default_value_t = 2000)]
    pub social: usize,
    /// Market orders to generate.
    #[arg(long, default_value_t = 2000)]
    pub market: usize,
    /// Hours of event time covered.
    #[arg(long, default_value_t = 24)]
    pub hours: u32,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Share of bad lines (0–1).
    #[arg(long, default_value_t = 0.03)]
    pub bad_rate: f64,
    /// Share of duplicate lines (0–1).
    #[arg(long, default_value_t = 0.02)]
    pub dup_rate: f64,
    /// Share of late lines (0–1).
    #[arg(long, default_value_t = 0.02)]
    pub late_rate: f64,
    /// First event time, RFC 3339.
    #[arg(long, default_value = "2024-12-15T00:00:00Z")]
    pub start: String,
}

const CONDITIONS: [(&str, &str, &str); 6] = [
    ("Clear", "clear sky", "01"),
    ("Clouds", "scattered clouds", "03"),
    ("Rain", "light rain", "10"),
    ("Thunderstorm", "thunderstorm with rain", "11"),
    ("Haze", "haze", "50"),
    ("Fog", "fog", "50"),
];

const TEMPLATES: [&str; 10] = [
    "Just got my {p} delivered in {c}, loving it!",
    "{p} price went up again... {c} shops are crazy this week",
    "Call me at {phone} if you want to resell your {p}",
    "Selling my old {p}, mail {email} or DM",
    "আজ {c} এ খুব গরম! {p} কিনলাম মাত্র ৫০০ টাকায় 😍",
    "র\u{200d}্যাব এর পাশে দোকানে {p} পাওয়া যায়, দাম ১২০০ টাকা",
    "কি\u{200c}ন্তু {p} টা ভালো না 😞 ফেরত দিব",
    "vai {p} ta khub valo, {c} e delivery fast chilo 🔥",
    "amar number ০১৭১২৩৪৫৬৭৮ e call dio, {p} bechbo",
    "Flash sale on {p} 🔥🔥 limited stock",
];

fn iso(ms: i64) -> String {
    EventTime(ms).to_rfc3339()
}

fn phone(r: &mut StdRng) -> String {
    format!("+8801{}{:08}", r.random_range(3..=9), r.random_range(0..100_000_000))
}

fn email(r: &mut StdRng) -> String {
    format!(
        "user{}@{}",
        r.random_range(0..1_000_000),
        ["gmail.com", "yahoo.com", "example.com.bd"].choose(r).copied().unwrap_or("x.bd")
    )
}

fn weather(start_ms: i64, hours: u32, r: &mut StdRng) -> Vec<String> {
    let mut out = Vec::new();
    for h in 0..i64::from(hours) {
        let t = start_ms + h * HOUR_MS;
        for city in City::ALL {
            let (cond, desc, icon) = *CONDITIONS.choose(r).unwrap_or(&CONDITIONS[0]);
            let cur = (r.random_range(120..360) as f64) / 10.0;
            let (lat, lon) = city.coordinates();
            let day = t - t.rem_euclid(24 * HOUR_MS);
            out.push(
                json!({
                    "city": city.name(), "country": "BD", "latitude": lat, "longitude": lon, "timestamp": iso(t),
                    "weather": {"condition": cond, "description": desc, "icon": format!("{icon}d")},
                    "temperature": {"current": cur, "feels_like": cur + 1.0, "min": cur - 1.5, "max": cur + 1.5},
                    "humidity": r.random_range(40..100), "pressure": r.random_range(995..1025),
                    "visibility": 5000, "wind": {"speed": 3.5, "degree": r.random_range(0..360)}, "clouds": r.random_range(0..101),
                    "sunrise": iso(day + HOUR_MS / 2), "sunset": iso(day + 11 * HOUR_MS + HOUR_MS / 4),
                })
                .to_string(),
            );
        }
    }
    out
}

fn social(i: usize, t: i64, r: &mut StdRng) -> Value {
    let p = PRODUCTS.choose(r).unwrap_or(&PRODUCTS[0]);
    let city = *City::ALL.choose(r).unwrap_or(&City::Dhaka);
    let template = TEMPLATES.choose(r).copied().unwrap_or(TEMPLATES[0]);
    let content = template
        .replace("{p}", p.name)
        .replace("{c}", city.name())
        .replace("{phone}", &phone(r))
        .replace("{email}", &email(r));
    let likes: u64 = r.random_range(0..500);
    let platform = ["facebook", "instagram", "tiktok", "youtube"].choose(r).copied().unwrap_or("facebook");
    json!({
        "postId": format!("S-{i:09}"), "platform": platform,
        "content": content, "authorId": format!("author-{}", r.random_range(0..50_000)), "authorName": format!("Name{}", r.random_range(0..50_000)),
        "likesCount": likes, "commentsCount": likes / 3, "sharesCount": likes / 7, "hashtags": ["#deal"],
        "city": city.name(), "language": if content.chars().any(|c| ('\u{0980}'..='\u{09FF}').contains(&c)) { "bn" } else { "en" }, "postedAt": iso(t),
    })
}

fn market(i: usize, t: i64, r: &mut StdRng) -> Value {
    let p = PRODUCTS.choose(r).unwrap_or(&PRODUCTS[0]);
    let city = *City::ALL.choose(r).unwrap_or(&City::Dhaka);
    let qty: u64 = *[1, 1, 2, 3, 5].choose(r).unwrap_or(&1);
    let platform = ["daraz", "chaldal", "pickaboo"].choose(r).copied().unwrap_or("daraz");
    let unit = (p.price_bdt * r.random_range(85..115) as f64 / 100.0 * 100.0).round() / 100.0;
    json!({
        "orderId": format!("O-{i:09}"), "platform": platform,
        "customerId": format!("cust-{}", r.random_range(0..80_000)), "customerPhone": phone(r), "customerEmail": email(r),
        "productId": p.id, "productName": p.name, "quantity": qty, "unitPrice": unit, "totalPrice": ((unit * qty as f64) * 100.0).round() / 100.0,
        "currency": "BDT", "status": "confirmed", "paymentMethod": "bkash", "paymentStatus": "paid",
        "shippingRegion": city.name(), "shippingCity": city.name(), "orderedAt": iso(t),
    })
}

fn spoil(mut rec: Value, social: bool, r: &mut StdRng) -> String {
    let (id, ts, city) = if social { ("postId", "postedAt", "city") } else { ("orderId", "orderedAt", "shippingCity") };
    let Some(obj) = rec.as_object_mut() else {
        return String::from("{");
    };
    let expect = match r.random_range(0..8) {
        0 => {
            let s = rec.to_string();
            let cut = s.char_indices().nth(r.random_range(5..40)).map_or(s.len(), |(i, _)| i);
            return s[..cut].to_owned();
        }
        1 => {
            obj.remove(id);
            format!("missing_field:{id}")
        }
        2 => {
            let f = if social { "likesCount" } else { "quantity" };
            obj.insert(f.into(), json!("many"));
            format!("wrong_type:{f}")
        }
        3 => {
            let f = if social { "likesCount" } else { "unitPrice" };
            obj.insert(f.into(), json!(-5));
            format!("out_of_range:{f}")
        }
        4 => {
            obj.insert(city.into(), json!("Atlantis"));
            format!("unknown_city:{city}")
        }
        5 => {
            obj.insert(
                ts.into(),
                json!(["yesterday", "2024-13-45T99:00:00Z", "", "1734256800"].choose(r).copied().unwrap_or("")),
            );
            format!("bad_timestamp:{ts}")
        }
        6 if social => {
            obj.insert("content".into(), json!("ক".repeat(10_001)));
            "too_long:content".to_owned()
        }
        6 => {
            let total = obj.get("totalPrice").and_then(Value::as_f64).unwrap_or(0.0);
            obj.insert("totalPrice".into(), json!(total * 3.0 + 1.0));
            "inconsistent:totalPrice".to_owned()
        }
        _ => {
            let f = if social { "content" } else { "productName" };
            obj.insert(f.into(), json!("bad\u{0}text\u{7}here"));
            format!("control_chars:{f}")
        }
    };
    obj.insert("_expect".into(), json!(expect));
    rec.to_string()
}

fn stream(social_kind: bool, n: usize, start_ms: i64, hours: u32, a: &GenArgs, r: &mut StdRng) -> Vec<String> {
    let span = i64::from(hours) * HOUR_MS;
    let mut times: Vec<i64> = (0..n).map(|_| r.random_range(0..span.max(1))).collect();
    times.sort_unstable();
    let (mut lines, mut good) = (Vec::with_capacity(n), Vec::<String>::new());
    for (i, off) in times.into_iter().enumerate() {
        let off =
            if r.random::<f64>() < a.late_rate { (off - r.random_range(600_000..3 * HOUR_MS)).max(0) } else { off };
        let t = start_ms + off / 1000 * 1000;
        let rec = if social_kind { social(i, t, r) } else { market(i, t, r) };
        if r.random::<f64>() < a.bad_rate {
            lines.push(spoil(rec, social_kind, r));
        } else if !good.is_empty() && r.random::<f64>() < a.dup_rate {
            let from = good.len().saturating_sub(1000);
            let pick = good[from..].choose(r).cloned().unwrap_or_default();
            lines.push(pick);
        } else {
            let line = rec.to_string();
            good.push(line.clone());
            lines.push(line);
        }
    }
    lines
}

/// Writes the three files and prints one line per file (path, lines) to stdout. Errors: a bad `--start`,
/// or the folder cannot be written.
pub fn run(a: &GenArgs) -> Result<(), String> {
    let start = EventTime::parse_rfc3339(&a.start).ok_or_else(|| format!("--start: not RFC 3339: {}", a.start))?.0;
    for (name, rate) in [("--bad-rate", a.bad_rate), ("--dup-rate", a.dup_rate), ("--late-rate", a.late_rate)] {
        if !(0.0..=1.0).contains(&rate) {
            return Err(format!("{name}: must be within 0..1, got {rate}"));
        }
    }
    fs::create_dir_all(&a.out).map_err(|e| format!("--out {}: {e}", a.out.display()))?;
    let mut r = StdRng::seed_from_u64(a.seed);
    let files = [
        ("weather.jsonl", weather(start - HOUR_MS, a.hours + 1, &mut r)),
        ("social.jsonl", stream(true, a.social, start, a.hours, a, &mut r)),
        ("market.jsonl", stream(false, a.market, start, a.hours, a, &mut r)),
    ];
    for (name, lines) in files {
        let path = a.out.join(name);
        let mut f = fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        for l in &lines {
            writeln!(f, "{l}").map_err(|e| format!("{}: {e}", path.display()))?;
        }
        println!("gen: wrote {} ({} lines)", path.display(), lines.len());
    }
    Ok(())
}
