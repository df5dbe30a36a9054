//! The product catalog used for categorisation (the `PRODUCTS` table of the reference data generator).

use serde::{Deserialize, Serialize};

/// A catalog product: id, display name, category, list price in BDT.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Product {
    /// Catalog id, e.g. `P-1001`.
    pub id: &'static str,
    /// Display name as it appears in posts and orders.
    pub name: &'static str,
    /// The product's category.
    pub category: Category,
    /// List price, BDT.
    pub price_bdt: f64,
}

const fn p(id: &'static str, name: &'static str, category: Category, price_bdt: f64) -> Product {
    Product { id, name, category, price_bdt }
}

/// Every catalog product, in catalog order.
pub const PRODUCTS: [Product; 16] = [
    p("P-1001", "Cotton Panjabi", Category::Fashion, 1450.0),
    p("P-1002", "Jamdani Saree", Category::Fashion, 5200.0),
    p("P-1003", "Winter Hoodie", Category::Fashion, 1250.0),
    p("P-1004", "Rain Umbrella", Category::Fashion, 450.0),
    p("P-2001", "Xiaomi Redmi Note 13", Category::Electronics, 23999.0),
    p("P-2002", "Walton Ceiling Fan", Category::Electronics, 3850.0),
    p("P-2003", "Power Bank 20000mAh", Category::Electronics, 1990.0),
    p("P-2004", "Wireless Earbuds", Category::Electronics, 1499.0),
    p("P-3001", "Miniket Rice 5kg", Category::Groceries, 420.0),
    p("P-3002", "Hilsa Fish 1kg", Category::Groceries, 1600.0),
    p("P-3003", "Mustard Oil 1L", Category::Groceries, 310.0),
    p("P-4001", "Rice Cooker 1.8L", Category::Home, 2750.0),
    p("P-4002", "Mosquito Net", Category::Home, 650.0),
    p("P-5001", "Face Wash", Category::Beauty, 380.0),
    p("P-5002", "Sunscreen SPF50", Category::Beauty, 890.0),
    p("P-6001", "Cricket Bat", Category::Sports, 2100.0),
];

/// A product category; `Unknown` when no catalog entry matches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Category {
    /// `fashion`
    Fashion,
    /// `electronics`
    Electronics,
    /// `groceries`
    Groceries,
    /// `home`
    Home,
    /// `beauty`
    Beauty,
    /// `sports`
    Sports,
    /// `unknown`: nothing in the catalog matched.
    #[default]
    Unknown,
}

impl Category {
    /// Every category, `Unknown` last.
    pub const ALL: [Category; 7] = [
        Category::Fashion,
        Category::Electronics,
        Category::Groceries,
        Category::Home,
        Category::Beauty,
        Category::Sports,
        Category::Unknown,
    ];

    /// The lowercase name written to the sinks.
    pub fn name(self) -> &'static str {
        match self {
            Category::Fashion => "fashion",
            Category::Electronics => "electronics",
            Category::Groceries => "groceries",
            Category::Home => "home",
            Category::Beauty => "beauty",
            Category::Sports => "sports",
            Category::Unknown => "unknown",
        }
    }
}

/// Looks a product up by catalog id.
pub fn by_id(id: &str) -> Option<&'static Product> {
    PRODUCTS.iter().find(|p| p.id == id)
}
