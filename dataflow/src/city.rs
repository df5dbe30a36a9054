//! The eight cities MillionX covers, with the coordinates the weather fetcher checks against.

use serde::{Deserialize, Serialize};

/// One of the eight covered cities. Names are the spellings the upstream data uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum City {
    /// Dhaka (Dhaka division).
    Dhaka,
    /// Chittagong (Chattogram division).
    Chittagong,
    /// Sylhet.
    Sylhet,
    /// Khulna.
    Khulna,
    /// Rajshahi.
    Rajshahi,
    /// Barisal (Barishal division).
    Barisal,
    /// Rangpur.
    Rangpur,
    /// Mymensingh.
    Mymensingh,
}

impl City {
    /// All cities in a fixed order.
    pub const ALL: [City; 8] = [
        City::Dhaka,
        City::Chittagong,
        City::Sylhet,
        City::Khulna,
        City::Rajshahi,
        City::Barisal,
        City::Rangpur,
        City::Mymensingh,
    ];

    /// Looks a city up by its exact name (`"Dhaka"`); `None` for anything else.
    pub fn from_name(name: &str) -> Option<City> {
        City::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The city's name as it appears in records.
    pub fn name(self) -> &'static str {
        match self {
            City::Dhaka => "Dhaka",
            City::Chittagong => "Chittagong",
            City::Sylhet => "Sylhet",
            City::Khulna => "Khulna",
            City::Rajshahi => "Rajshahi",
            City::Barisal => "Barisal",
            City::Rangpur => "Rangpur",
            City::Mymensingh => "Mymensingh",
        }
    }

    /// City-centre coordinates `(latitude, longitude)` in degrees (WGS 84).
    pub fn coordinates(self) -> (f64, f64) {
        match self {
            City::Dhaka => (23.8103, 90.4125),
            City::Chittagong => (22.3569, 91.7832),
            City::Sylhet => (24.8949, 91.8687),
            City::Khulna => (22.8456, 89.5403),
            City::Rajshahi => (24.3745, 88.6042),
            City::Barisal => (22.7010, 90.3535),
            City::Rangpur => (25.7439, 89.2752),
            City::Mymensingh => (24.7471, 90.4203),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in City::ALL {
            assert_eq!(City::from_name(c.name()), Some(c));
        }
        assert_eq!(City::from_name("Atlantis"), None);
        assert_eq!(City::from_name("dhaka"), None);
    }
}
