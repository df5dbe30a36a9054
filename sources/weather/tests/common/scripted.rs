//! A scripted [`Transport`]: answers from a queue and records when (tokio clock) and what it was asked.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use millionx_dataflow::City;
use millionx_source_weather::client::HttpReply;
use millionx_source_weather::{FailureReason, Transport, WeatherError};
use reqwest::Url;
use tokio::time::Instant;

/// One scripted answer.
pub type Answer = Result<HttpReply, WeatherError>;

/// Shared handle: clone it, give one copy to the fetcher, inspect the other.
#[derive(Clone, Default)]
pub struct Scripted {
    answers: Arc<Mutex<VecDeque<Answer>>>,
    calls: Arc<Mutex<Vec<(Instant, Url)>>>,
}

impl Scripted {
    pub fn push(&self, a: Answer) {
        self.answers.lock().expect("lock").push_back(a);
    }

    pub fn calls(&self) -> Vec<(Instant, Url)> {
        self.calls.lock().expect("lock").clone()
    }

    /// Call times as offsets from `t0`, in ms.
    pub fn offsets_ms(&self, t0: Instant) -> Vec<u128> {
        self.calls().iter().map(|(t, _)| t.duration_since(t0).as_millis()).collect()
    }
}

impl Transport for Scripted {
    async fn get(&self, url: &Url) -> Result<HttpReply, WeatherError> {
        self.calls.lock().expect("lock").push((Instant::now(), url.clone()));
        let next = self.answers.lock().expect("lock").pop_front();
        next.unwrap_or_else(|| Err(WeatherError::new(FailureReason::Connect, "script exhausted")))
    }
}

/// A 200 answer with a metric payload at `city`'s centre observed at Unix second `dt`.
pub fn ok_reply(city: City, dt: i64) -> Answer {
    Ok(HttpReply { status: 200, retry_after: None, body: metric_body(city, dt).into_bytes() })
}

/// A non-200 answer with an OWM-style error body.
pub fn status_reply(status: u16, retry_after: Option<Duration>) -> Answer {
    Ok(HttpReply { status, retry_after, body: format!(r#"{{"cod":{status},"message":"scripted"}}"#).into_bytes() })
}

/// A metric `/data/2.5/weather` body for `city` written for these tests (values plausible for Bangladesh).
pub fn metric_body(city: City, dt: i64) -> String {
    let (lat, lon) = city.coordinates();
    format!(
        r#"{{"coord":{{"lon":{lon},"lat":{lat}}},"weather":[{{"id":721,"main":"Haze","description":"haze","icon":"50d"}}],"main":{{"temp":29.4,"feels_like":33.1,"temp_min":29.4,"temp_max":29.4,"pressure":1008,"humidity":74}},"visibility":3000,"wind":{{"speed":2.57,"deg":160}},"clouds":{{"all":40}},"dt":{dt},"sys":{{"country":"BD","sunrise":1717283478,"sunset":1717332134}},"timezone":21600,"id":1,"name":"{}","cod":200}}"#,
        city.name()
    )
}
