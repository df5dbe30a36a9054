//! When rounds run: [`Schedule`] (`--once` / `--every`, `weather.every`), and [`run_schedule`], the loop that
//! runs rounds and publishes them to a [`ReadingSink`] (used by `weather fetch` and the live feed).

use std::future::Future;
use std::time::Duration;

use millionx_dataflow::City;

use crate::client::Transport;
use crate::error::FailureReason;
use crate::fetcher::{Fetcher, Round, Status};
use crate::sink::{ReadingSink, SinkError};

/// Shortest `--every` period: a round of 8 cities takes ~9 s at 1.1 s spacing, and OWM refreshes its
/// current weather about every 10 minutes, so faster polling only re-reads unchanged data.
pub const MIN_EVERY: Duration = Duration::from_secs(60);

/// Parses `--every`: a jiff duration (`1h`, `30m`, `1h30m`, `PT1H`), at least [`MIN_EVERY`].
pub fn parse_every(s: &str) -> Result<Duration, String> {
    let d: jiff::SignedDuration = s.parse().map_err(|e| format!("not a duration like 1h or 30m: {e}"))?;
    let d = Duration::try_from(d).map_err(|_| String::from("must be positive"))?;
    if d < MIN_EVERY {
        return Err(format!("must be at least {}s", MIN_EVERY.as_secs()));
    }
    Ok(d)
}

/// How often to run rounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// One round.
    Once,
    /// A round every period (first at once), until shutdown.
    Every(Duration),
}

/// What a run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Rounds completed.
    pub rounds: u64,
    /// Rounds in which at least one city failed.
    pub failed_rounds: u64,
    /// Whether the last completed round had no failure.
    pub last_round_ok: bool,
}

fn log_round(round: &Round) {
    let mut counts = [0u32; 4];
    for o in &round.outcomes {
        let i = match &o.status {
            Status::Published => 0,
            Status::Unchanged => 1,
            Status::Late => 2,
            Status::Failed(e) => {
                eprintln!("weather: {}: failed after {} attempt(s): {e}", o.city.name(), o.attempts);
                3
            }
        };
        counts[i] += 1;
    }
    eprintln!(
        "weather: round started {}: {} published, {} unchanged, {} late, {} failed; watermark {}",
        round.started_at, counts[0], counts[1], counts[2], counts[3], round.watermark
    );
}

/// Runs rounds on `schedule`, publishing each round's readings and then its watermark to `sink`, until the
/// schedule ends or `shutdown` resolves (a round in progress is abandoned: nothing of it is published and
/// no watermark is declared). Errors: the sink failed (the run stops at once).
pub async fn run_schedule<T: Transport, S: ReadingSink>(
    fetcher: &mut Fetcher<T>,
    sink: &mut S,
    schedule: Schedule,
    shutdown: impl Future<Output = ()>,
) -> Result<RunSummary, SinkError> {
    tokio::pin!(shutdown);
    let mut summary = RunSummary::default();
    let mut ticker = match schedule {
        Schedule::Once => None,
        Schedule::Every(period) => {
            let mut t = tokio::time::interval(period);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            Some(t)
        }
    };
    loop {
        if let Some(t) = ticker.as_mut() {
            tokio::select! {
                _ = &mut shutdown => return Ok(summary),
                _ = t.tick() => {}
            }
        }
        let round = tokio::select! {
            _ = &mut shutdown => return Ok(summary),
            r = fetcher.round() => r,
        };
        log_round(&round);
        sink.publish(&round.readings)?;
        let failures: Vec<(City, FailureReason)> = round.failures().map(|(c, e)| (c, e.reason)).collect();
        if !failures.is_empty() {
            sink.failures(&failures)?;
        }
        sink.round_complete(round.watermark)?;
        summary.rounds += 1;
        summary.last_round_ok = round.all_ok();
        if !summary.last_round_ok {
            summary.failed_rounds += 1;
        }
        if ticker.is_none() {
            return Ok(summary);
        }
    }
}

/// The current-thread runtime a schedule runs on (`weather fetch`, the live feed's thread).
pub(crate) fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}
