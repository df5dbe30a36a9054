//! Market order schema (`validated.market`).

use millionx_dataflow::record::MarketOrder;
use millionx_dataflow::{Meta, RawLine, Reason};

use super::fields::Object;
use super::rules::{self, Rejection};

const NAMES: [&str; 17] = [
    "orderId",
    "platform",
    "customerId",
    "customerPhone",
    "customerEmail",
    "productId",
    "productName",
    "quantity",
    "unitPrice",
    "totalPrice",
    "currency",
    "status",
    "paymentMethod",
    "paymentStatus",
    "shippingRegion",
    "shippingCity",
    "orderedAt",
];
const REQUIRED: [bool; 17] =
    [true, true, true, false, false, true, true, true, true, true, true, true, true, false, false, true, true];

/// Largest allowed `|totalPrice − quantity × unitPrice|`, BDT (PIPELINE.md).
pub const PRICE_TOLERANCE_BDT: f64 = 0.01;

/// Validates one market order line.
///
/// Errors: a [`Rejection`] with the PIPELINE.md reason of the first failing rule.
pub fn validate(line: &RawLine) -> Result<MarketOrder, Rejection> {
    let obj = Object::parse(&line.payload).ok_or_else(Rejection::not_an_object)?;
    let (s, extra) = obj.slots(&NAMES);
    let event_time = rules::event_time_of(s[16]);
    let extra = extra.map_err(|e| Rejection::unreadable(e, event_time))?;
    check(line, &s, extra).map_err(|reason| Rejection::rule(reason, event_time))
}

fn check(line: &RawLine, s: &[Option<&serde_json::value::RawValue>; 17], extra: String) -> rules::Check<MarketOrder> {
    rules::require(s, &NAMES, &REQUIRED)?;
    let order_id = rules::req_str(s[0], NAMES[0])?;
    let platform = rules::req_str(s[1], NAMES[1])?;
    let customer_id = rules::req_str(s[2], NAMES[2])?;
    let customer_phone = rules::opt_str(s[3], NAMES[3])?;
    let customer_email = rules::opt_str(s[4], NAMES[4])?;
    let product_id = rules::req_str(s[5], NAMES[5])?;
    let product_name = rules::req_str(s[6], NAMES[6])?;
    let quantity = rules::req_int(s[7], NAMES[7])?;
    let unit_price = rules::req_num(s[8], NAMES[8])?;
    let total_price = rules::req_num(s[9], NAMES[9])?;
    let currency = rules::req_str(s[10], NAMES[10])?;
    let status = rules::req_str(s[11], NAMES[11])?;
    let payment_method = rules::req_str(s[12], NAMES[12])?;
    let payment_status = rules::opt_str(s[13], NAMES[13])?;
    let shipping_region = rules::opt_str(s[14], NAMES[14])?;
    let shipping_city = rules::req_str(s[15], NAMES[15])?;
    let ordered_at = rules::req_str(s[16], NAMES[16])?;

    let quantity = rules::non_negative(quantity, NAMES[7])?;
    let unit_price = rules::non_negative_f(unit_price, NAMES[8])?;
    let total_price = rules::non_negative_f(total_price, NAMES[9])?;
    let shipping_city = rules::city(&shipping_city, NAMES[15])?;
    let event_time = rules::timestamp(&ordered_at, NAMES[16])?;
    if (total_price - quantity as f64 * unit_price).abs() > PRICE_TOLERANCE_BDT {
        return Err(Reason::field("inconsistent", NAMES[9]));
    }
    rules::no_control_chars(&product_name, NAMES[6])?;

    Ok(MarketOrder {
        meta: Meta { origin: line.origin, event_time, ingest_ns: line.ingest_ns },
        order_id: order_id.into_owned(),
        platform: platform.into_owned(),
        customer_id: customer_id.into_owned(),
        customer_phone: customer_phone.map(|v| v.into_owned()),
        customer_email: customer_email.map(|v| v.into_owned()),
        product_id: product_id.into_owned(),
        product_name: product_name.into_owned(),
        quantity,
        unit_price,
        total_price,
        currency: currency.into_owned(),
        status: status.into_owned(),
        payment_method: payment_method.into_owned(),
        payment_status: payment_status.map(|v| v.into_owned()),
        shipping_region: shipping_region.map(|v| v.into_owned()),
        shipping_city,
        ordered_at: ordered_at.into_owned(),
        extra,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use millionx_dataflow::{City, Origin, StreamKind};

    const GOOD: &str = r#"{"orderId":"O-1","platform":"daraz","customerId":"cust-1","customerPhone":"+8801712345678","customerEmail":"a@b.com","productId":"P-1001","productName":"Cotton Panjabi","quantity":2,"unitPrice":1450.5,"totalPrice":2901.0,"currency":"BDT","status":"pending","paymentMethod":"cod","paymentStatus":"pending","shippingRegion":"Dhaka","shippingCity":"Dhaka","orderedAt":"2024-12-15T10:00:00+06:00"}"#;

    fn reason(payload: &str) -> String {
        let line = RawLine {
            origin: Origin { stream: StreamKind::Market, partition: 0, offset: 0 },
            ingest_ns: 0,
            payload: payload.into(),
        };
        validate(&line).expect_err("must be rejected").reason.0
    }

    #[test]
    fn good_order() {
        let line = RawLine {
            origin: Origin { stream: StreamKind::Market, partition: 0, offset: 0 },
            ingest_ns: 0,
            payload: GOOD.into(),
        };
        let o = validate(&line).expect("valid");
        assert_eq!((o.quantity, o.unit_price, o.total_price), (2, 1450.5, 2901.0));
        assert_eq!(o.shipping_city, City::Dhaka);
        assert_eq!(o.meta.event_time.0, 1_734_235_200_000);
    }

    #[test]
    fn each_rule() {
        assert_eq!(reason(&GOOD.replace("\"quantity\":2", "\"quantity\":\"two\"")), "wrong_type:quantity");
        assert_eq!(reason(&GOOD.replace("\"unitPrice\":1450.5", "\"unitPrice\":-1450.5")), "out_of_range:unitPrice");
        assert_eq!(
            reason(&GOOD.replace("\"shippingCity\":\"Dhaka\"", "\"shippingCity\":\"Atlantis\"")),
            "unknown_city:shippingCity"
        );
        assert_eq!(reason(&GOOD.replace("2901.0", "8704.0")), "inconsistent:totalPrice");
        let within = GOOD.replace("2901.0", "2901.009");
        let line = RawLine {
            origin: Origin { stream: StreamKind::Market, partition: 0, offset: 0 },
            ingest_ns: 0,
            payload: within,
        };
        assert!(validate(&line).is_ok(), "within 0.01 BDT is consistent");
    }
}
