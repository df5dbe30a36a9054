//! Which text of a record is embedded (PIPELINE.md, "Embedding").

use std::borrow::Cow;

use millionx_dataflow::record::{EnrichedOrder, EnrichedPost};

/// A record with a text to embed.
pub trait EmbeddingText {
    /// The text whose vector the record carries.
    fn embedding_text(&self) -> Cow<'_, str>;
}

/// Posts: the redacted `content` (phone numbers and e-mail addresses already replaced by `[PHONE]`/`[EMAIL]`).
impl EmbeddingText for EnrichedPost {
    fn embedding_text(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.content)
    }
}

/// Orders: `productName + " " + productCategory` (the category's lowercase name, e.g. `Hilsa Fish 1kg groceries`).
impl EmbeddingText for EnrichedOrder {
    fn embedding_text(&self) -> Cow<'_, str> {
        Cow::Owned(format!("{} {}", self.product_name, self.enrichment.category.name()))
    }
}
