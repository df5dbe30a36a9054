//! Categorisation from the product catalog (PIPELINE.md "Category").
//!
//! Orders: the catalog entry of `productId`, confidence 1.0. Posts: the catalog product whose name
//! occurs first in `content` (leftmost, ASCII case-insensitive), confidence 0.8. Else `unknown`, 0.0.
//!
//! ```
//! use millionx_operators::categorise::Categoriser;
//! use millionx_dataflow::catalog::Category;
//! let c = Categoriser::new();
//! assert_eq!(c.from_text("my WALTON ceiling fan and a cricket bat"), (Category::Electronics, 0.8));
//! assert_eq!(c.from_product_id("P-3001"), (Category::Groceries, 1.0));
//! assert_eq!(c.from_text("nothing here"), (Category::Unknown, 0.0));
//! ```

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use millionx_dataflow::catalog::{self, Category, PRODUCTS};

/// Confidence of a category read from free text.
pub const TEXT_CONFIDENCE: f64 = 0.8;
/// Confidence of a category from the catalog id.
pub const CATALOG_CONFIDENCE: f64 = 1.0;

/// Matches catalog product names in text.
#[derive(Clone, Debug)]
pub struct Categoriser {
    names: AhoCorasick,
}

impl Default for Categoriser {
    fn default() -> Self {
        Categoriser::new()
    }
}

impl Categoriser {
    /// Builds the matcher over every catalog product name.
    pub fn new() -> Categoriser {
        #[allow(clippy::expect_used)]
        let names = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostFirst)
            .build(PRODUCTS.iter().map(|p| p.name))
            .expect("the catalog names build a matcher");
        Categoriser { names }
    }

    /// Category of a post's text: the leftmost catalog name found.
    pub fn from_text(&self, text: &str) -> (Category, f64) {
        match self.names.find(text) {
            Some(m) => (PRODUCTS[m.pattern().as_usize()].category, TEXT_CONFIDENCE),
            None => (Category::Unknown, 0.0),
        }
    }

    /// Category of an order's product id.
    pub fn from_product_id(&self, id: &str) -> (Category, f64) {
        match catalog::by_id(id) {
            Some(p) => (p.category, CATALOG_CONFIDENCE),
            None => (Category::Unknown, 0.0),
        }
    }
}
