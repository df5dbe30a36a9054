//! Anonymisation: ids → HMAC-SHA256, personal fields dropped, phone numbers and e-mail addresses in
//! free text replaced (PIPELINE.md "Anonymisation").
//!
//! ```
//! use millionx_operators::anonymise::Anonymiser;
//! let a = Anonymiser::new(b"key");
//! let (text, found) = a.redact("Call +880 1712-345678 or mail a.b@example.com.bd");
//! assert_eq!(text, "Call [PHONE] or mail [EMAIL]");
//! assert!(found);
//! ```

use std::borrow::Cow;

use hmac::{Hmac, KeyInit, Mac};
use millionx_dataflow::record::{EnrichedOrder, EnrichedPost, Enrichment, MarketOrder, PiiReport, SocialPost};
use regex::Regex;
use sha2::Sha256;

/// The development key of the embedded default (never use it for real data).
pub const DEVELOPMENT_KEY: &[u8] = b"millionx-development-key-not-secret";

/// Bangladeshi mobile numbers: optional `+88`/`88`, then `01[3-9]` and 8 more digits, ASCII or Bengali
/// digits, optionally with a space or dash between any two digits (`+880 1712-345678`).
const PHONE: &str = r"(?:\+?[8৮][ -]?[8৮][ -]?)?[0০][ -]?[1১][ -]?[3-9৩-৯](?:[ -]?[0-9০-৯]){8}";
/// E-mail addresses (the practical subset of RFC 5322 that appears in free text).
const EMAIL: &str = r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}";

/// Holds the HMAC key and the compiled patterns; one per worker.
#[derive(Clone)]
pub struct Anonymiser {
    mac: Hmac<Sha256>,
    phone: Regex,
    email: Regex,
}

fn is_digit(c: char) -> bool {
    c.is_ascii_digit() || ('০'..='৯').contains(&c)
}

impl Anonymiser {
    /// An anonymiser with `key` (any length; RFC 2104 hashes keys longer than the block size).
    pub fn new(key: &[u8]) -> Anonymiser {
        #[allow(clippy::expect_used)]
        Anonymiser {
            mac: <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length"),
            phone: Regex::new(PHONE).expect("static pattern"),
            email: Regex::new(EMAIL).expect("static pattern"),
        }
    }

    /// Lowercase hex HMAC-SHA256(key, `id`): 64 characters.
    pub fn hash(&self, id: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(id.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Replaces phone numbers with `[PHONE]` and e-mail addresses with `[EMAIL]`; returns the text
    /// and whether anything was replaced. A digit run longer than a phone number is left alone.
    pub fn redact<'t>(&self, text: &'t str) -> (Cow<'t, str>, bool) {
        let mut out = Cow::Borrowed(text);
        let mut found = false;
        if memchr::memchr(b'@', text.as_bytes()).is_some() {
            if let Cow::Owned(s) = self.email.replace_all(&out, "[EMAIL]") {
                out = Cow::Owned(s);
                found = true;
            }
        }
        let has_digit = out.bytes().any(|b| b.is_ascii_digit()) || out.contains(['০', '১']);
        if has_digit {
            let src = out.as_ref();
            let mut result = String::new();
            let mut last = 0;
            for m in self.phone.find_iter(src) {
                let before = src[..m.start()].chars().next_back();
                let after = src[m.end()..].chars().next();
                if before.is_some_and(is_digit) || after.is_some_and(is_digit) {
                    continue;
                }
                result.push_str(&src[last..m.start()]);
                result.push_str("[PHONE]");
                last = m.end();
            }
            if last > 0 {
                result.push_str(&src[last..]);
                out = Cow::Owned(result);
                found = true;
            }
        }
        (out, found)
    }

    /// Anonymises a post: `authorId` → `authorHash`, `authorName` dropped, `content` redacted.
    pub fn post(&self, p: SocialPost) -> EnrichedPost {
        let mut pii = PiiReport::default();
        pii.mark(0);
        if p.author_name.is_some() {
            pii.mark(1);
        }
        let (content, found) = self.redact(&p.content);
        let content = if found {
            pii.mark(2);
            pii.detected = true;
            content.into_owned()
        } else {
            p.content
        };
        EnrichedPost {
            meta: p.meta,
            author_hash: self.hash(&p.author_id),
            post_id: p.post_id,
            platform: p.platform,
            content,
            likes_count: p.likes_count,
            comments_count: p.comments_count,
            shares_count: p.shares_count,
            hashtags: p.hashtags,
            city: p.city,
            language: p.language,
            posted_at: p.posted_at,
            extra: p.extra,
            enrichment: Enrichment { pii, ..Enrichment::default() },
        }
    }

    /// Anonymises an order: `customerId` → `customerIdHash`, phone and e-mail dropped.
    pub fn order(&self, o: MarketOrder) -> EnrichedOrder {
        let mut pii = PiiReport::default();
        pii.mark(3);
        if o.customer_phone.is_some() {
            pii.mark(4);
        }
        if o.customer_email.is_some() {
            pii.mark(5);
        }
        EnrichedOrder {
            meta: o.meta,
            customer_id_hash: self.hash(&o.customer_id),
            order_id: o.order_id,
            platform: o.platform,
            product_id: o.product_id,
            product_name: o.product_name,
            quantity: o.quantity,
            unit_price: o.unit_price,
            total_price: o.total_price,
            currency: o.currency,
            status: o.status,
            payment_method: o.payment_method,
            payment_status: o.payment_status,
            shipping_region: o.shipping_region,
            shipping_city: o.shipping_city,
            ordered_at: o.ordered_at,
            extra: o.extra,
            enrichment: Enrichment { pii, ..Enrichment::default() },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_test_case_2() {
        let a = Anonymiser::new(b"Jefe");
        assert_eq!(
            a.hash("what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn phone_numbers_in_every_form() {
        let a = Anonymiser::new(DEVELOPMENT_KEY);
        for (input, expected) in [
            ("call +8801712345678 now", "call [PHONE] now"),
            ("call 8801712345678", "call [PHONE]"),
            ("call 01712345678.", "call [PHONE]."),
            ("call +880 1712-345678", "call [PHONE]"),
            ("call 017-1234-5678", "call [PHONE]"),
            ("নম্বর ০১৭১২৩৪৫৬৭৮ তে", "নম্বর [PHONE] তে"),
            ("order 0171234567890123 id", "order 0171234567890123 id"),
            ("price 01212345678", "price 01212345678"),
            ("৫০০ টাকা", "৫০০ টাকা"),
        ] {
            assert_eq!(a.redact(input).0, expected, "{input}");
        }
    }

    #[test]
    fn emails_and_clean_text() {
        let a = Anonymiser::new(DEVELOPMENT_KEY);
        assert_eq!(a.redact("mail user123@yahoo.com or DM"), (Cow::Borrowed("mail [EMAIL] or DM"), true));
        let (t, found) = a.redact("আজ ঢাকা এ খুব গরম! 😍 @daraz");
        assert!(!found);
        assert!(matches!(t, Cow::Borrowed(_)));
    }
}
