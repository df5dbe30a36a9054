//! The enrichment chain, written once for posts and orders: anonymise → categorise → weather as-of join →
//! Asia/Dhaka calendar → embed.

use std::sync::Arc;

use millionx_dataflow::checkpoint::SharedCheckpoints;
use millionx_dataflow::record::{EnrichedOrder, EnrichedPost, MarketOrder, SocialPost, WeatherReading};
use millionx_dataflow::watermark::{WatermarkReport, Watermarks};
use millionx_dataflow::Epoch;
use millionx_embed::{Embed, EmbedConfig, EmbedPool, EmbedStats};
use millionx_operators::anonymise::Anonymiser;
use millionx_operators::calendar::LocalCalendar;
use millionx_operators::categorise::Categoriser;
use millionx_operators::weather_join::WeatherJoin;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::Stream;

/// A validated record kind that becomes an enriched record: posts and orders differ only in how they are
/// anonymised and where their category comes from.
pub trait Enrich: Sized + 'static {
    /// The enriched record.
    type Enriched: millionx_dataflow::record::Enriched
        + millionx_embed::EmbeddingText
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + 'static;

    /// Anonymises the record and sets its category and confidence.
    fn enrich(self, anonymiser: &Anonymiser, categoriser: &Categoriser) -> Self::Enriched;
}

impl Enrich for SocialPost {
    type Enriched = EnrichedPost;

    fn enrich(self, anonymiser: &Anonymiser, categoriser: &Categoriser) -> EnrichedPost {
        let mut p = anonymiser.post(self);
        (p.enrichment.category, p.enrichment.category_confidence) = categoriser.from_text(&p.content);
        p
    }
}

impl Enrich for MarketOrder {
    type Enriched = EnrichedOrder;

    fn enrich(self, anonymiser: &Anonymiser, categoriser: &Categoriser) -> EnrichedOrder {
        let mut o = anonymiser.order(self);
        (o.enrichment.category, o.enrichment.category_confidence) = categoriser.from_product_id(&o.product_id);
        o
    }
}

/// What every enrichment chain of a worker shares.
#[derive(Clone)]
pub struct Enricher<'scope> {
    /// HMAC key holder and redactor.
    pub anonymiser: Anonymiser,
    /// Category rules.
    pub categoriser: Categoriser,
    /// Asia/Dhaka calendar.
    pub calendar: LocalCalendar,
    /// Every weather reading, broadcast to every worker.
    pub weather: Stream<'scope, Epoch, Vec<WeatherReading>>,
    /// The broadcast watermark reports.
    pub reports: Stream<'scope, Epoch, Vec<WatermarkReport>>,
    /// A fresh tracker with the configured lateness.
    pub tracker: Watermarks,
    /// `join.max_weather_age_ms`.
    pub max_weather_age_ms: i64,
    /// The embedding pool, `None` when embeddings are off.
    pub embed: Option<EmbedPool>,
    /// Embedding batch and deadline settings.
    pub embed_config: EmbedConfig,
    /// Embedding counters shared by the process's workers.
    pub embed_stats: Arc<EmbedStats>,
    /// The worker's checkpoint registry (the weather join's state).
    pub checkpoints: SharedCheckpoints,
}

impl<'scope> Enricher<'scope> {
    /// Enriches de-duplicated records of kind `T`, in order of the stages above; records leave as `Arc`s,
    /// since each feeds several sinks and the observations.
    pub fn enrich<T: Enrich>(
        &self,
        records: Stream<'scope, Epoch, Vec<T>>,
    ) -> Stream<'scope, Epoch, Vec<Arc<T::Enriched>>> {
        let (anonymiser, categoriser, calendar) =
            (self.anonymiser.clone(), self.categoriser.clone(), self.calendar.clone());
        records
            .map(move |r| r.enrich(&anonymiser, &categoriser))
            .weather_join(
                self.weather.clone(),
                self.reports.clone(),
                self.tracker.clone(),
                self.max_weather_age_ms,
                &self.checkpoints,
            )
            .map_in_place(move |r: &mut T::Enriched| {
                use millionx_dataflow::record::Enriched;
                let at = calendar.at(r.meta().event_time);
                r.enrichment_mut().calendar = at;
            })
            .embed(self.embed.as_ref(), self.embed_config.clone(), Arc::clone(&self.embed_stats))
            .map(Arc::new)
    }
}
