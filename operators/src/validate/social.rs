//! Social post schema (`validated.social`).

use millionx_dataflow::record::SocialPost;
use millionx_dataflow::{Meta, RawLine, Reason};

use super::fields::{self, Object};
use super::rules::{self, Rejection};

const NAMES: [&str; 12] = [
    "postId",
    "platform",
    "content",
    "authorId",
    "authorName",
    "likesCount",
    "commentsCount",
    "sharesCount",
    "hashtags",
    "city",
    "language",
    "postedAt",
];
const REQUIRED: [bool; 12] = [true, true, true, true, false, true, true, true, false, true, false, true];

/// Validates one social post line.
///
/// Errors: a [`Rejection`] with the PIPELINE.md reason of the first failing rule.
pub fn validate(line: &RawLine) -> Result<SocialPost, Rejection> {
    let obj = Object::parse(&line.payload).ok_or_else(Rejection::not_an_object)?;
    let (s, extra) = obj.slots(&NAMES);
    let event_time = rules::event_time_of(s[11]);
    let extra = extra.map_err(|e| Rejection::unreadable(e, event_time))?;
    check(line, &s, extra).map_err(|reason| Rejection::rule(reason, event_time))
}

fn check(line: &RawLine, s: &[Option<&serde_json::value::RawValue>; 12], extra: String) -> rules::Check<SocialPost> {
    rules::require(s, &NAMES, &REQUIRED)?;
    let post_id = rules::req_str(s[0], NAMES[0])?;
    let platform = rules::req_str(s[1], NAMES[1])?;
    let content = rules::req_str(s[2], NAMES[2])?;
    let author_id = rules::req_str(s[3], NAMES[3])?;
    let author_name = rules::opt_str(s[4], NAMES[4])?;
    let likes = rules::req_int(s[5], NAMES[5])?;
    let comments = rules::req_int(s[6], NAMES[6])?;
    let shares = rules::req_int(s[7], NAMES[7])?;
    let hashtags = s[8].map(|v| fields::strings(v).ok_or_else(|| Reason::field("wrong_type", NAMES[8]))).transpose()?;
    let city = rules::req_str(s[9], NAMES[9])?;
    let language = rules::opt_str(s[10], NAMES[10])?;
    let posted_at = rules::req_str(s[11], NAMES[11])?;

    let likes_count = rules::non_negative(likes, NAMES[5])?;
    let comments_count = rules::non_negative(comments, NAMES[6])?;
    let shares_count = rules::non_negative(shares, NAMES[7])?;
    let city = rules::city(&city, NAMES[9])?;
    let event_time = rules::timestamp(&posted_at, NAMES[11])?;
    rules::not_too_long(&content, NAMES[2])?;
    rules::no_control_chars(&content, NAMES[2])?;

    Ok(SocialPost {
        meta: Meta { origin: line.origin, event_time, ingest_ns: line.ingest_ns },
        post_id: post_id.into_owned(),
        platform: platform.into_owned(),
        content: content.into_owned(),
        author_id: author_id.into_owned(),
        author_name: author_name.map(|a| a.into_owned()),
        likes_count,
        comments_count,
        shares_count,
        hashtags,
        city,
        language: language.map(|l| l.into_owned()),
        posted_at: posted_at.into_owned(),
        extra,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use millionx_dataflow::{Origin, StreamKind};

    fn line(payload: &str) -> RawLine {
        RawLine {
            origin: Origin { stream: StreamKind::Social, partition: 0, offset: 7 },
            ingest_ns: 1,
            payload: payload.into(),
        }
    }

    const GOOD: &str = r##"{"postId":"S-1","platform":"facebook","content":"Hi from Dhaka","authorId":"a-1","authorName":"N","likesCount":3,"commentsCount":1,"sharesCount":0,"hashtags":["#deal"],"city":"Dhaka","language":"en","postedAt":"2024-12-15T10:00:00Z","future":{"x":1}}"##;

    fn reason(payload: &str) -> String {
        validate(&line(payload)).expect_err("must be rejected").reason.0
    }

    #[test]
    fn good_post_keeps_every_field_and_unknown_ones() {
        let p = validate(&line(GOOD)).expect("valid");
        assert_eq!(p.post_id, "S-1");
        assert_eq!((p.likes_count, p.comments_count, p.shares_count), (3, 1, 0));
        assert_eq!(p.meta.event_time, EventTime(1_734_256_800_000));
        assert_eq!(p.meta.origin.offset, 7);
        assert_eq!(p.extra, r#""future":{"x":1}"#);
        assert_eq!(p.hashtags, Some(vec!["#deal".to_owned()]));
    }

    use millionx_dataflow::EventTime;

    #[test]
    fn each_rule_in_order() {
        let with = |k: &str, v: &str| GOOD.replacen(&format!("\"{k}\":"), &format!("\"{k}\":{v},\"_{k}\":"), 1);
        assert_eq!(reason("{\"postId\""), "parse_error");
        assert_eq!(reason("[1,2]"), "parse_error");
        assert_eq!(reason(&GOOD.replace("\"postId\"", "\"_postId\"")), "missing_field:postId");
        assert_eq!(reason(&with("likesCount", "null")), "missing_field:likesCount");
        assert_eq!(reason(&with("likesCount", "\"many\"")), "wrong_type:likesCount");
        assert_eq!(reason(&with("likesCount", "2.5")), "wrong_type:likesCount");
        assert_eq!(reason(&with("hashtags", "\"#x\"")), "wrong_type:hashtags");
        assert_eq!(reason(&with("likesCount", "-5")), "out_of_range:likesCount");
        assert_eq!(reason(&with("city", "\"Atlantis\"")), "unknown_city:city");
        assert_eq!(reason(&with("postedAt", "\"yesterday\"")), "bad_timestamp:postedAt");
        assert_eq!(reason(&with("postedAt", "\"\"")), "bad_timestamp:postedAt");
        assert_eq!(reason(&with("content", &format!("\"{}\"", "x".repeat(70_000)))), "too_long:content");
        assert_eq!(reason(&with("content", "\"bad\\u0000text\\u0007here\"")), "control_chars:content");
        // missing beats wrong type even when the wrong-typed field comes first
        let both = with("postId", "5").replace("\"city\"", "\"_city\"");
        assert_eq!(reason(&both), "missing_field:city");
    }

    #[test]
    fn unknown_fields_are_kept_verbatim_unless_no_reader_could_read_them() {
        let p = validate(&line(&GOOD.replace("\"future\":{\"x\":1}", "\"future\":{\"x\":1e300}"))).expect("valid");
        assert_eq!(p.extra, r#""future":{"x":1e300}"#);
        let r = validate(&line(&GOOD.replace("\"future\":{\"x\":1}", "\"future\":{\"x\":1e400}"))).expect_err("1e400");
        assert_eq!(r.reason.as_str(), "parse_error");
        assert_eq!(
            r.detail.as_deref(),
            Some("an unknown field is not readable as JSON: number out of range at line 1 column 10")
        );
        assert_eq!(r.event_time, Some(EventTime(1_734_256_800_000)));
        // A huge number in a known field breaks that field's type rule instead: it is re-encoded, not kept.
        assert_eq!(reason(&GOOD.replace("\"likesCount\":3", "\"likesCount\":1e400")), "wrong_type:likesCount");
    }

    #[test]
    fn rejection_keeps_a_parseable_event_time() {
        let r =
            validate(&line(&GOOD.replace("\"Dhaka\",\"language\"", "\"Atlantis\",\"language\""))).expect_err("city");
        assert_eq!(r.event_time, Some(EventTime(1_734_256_800_000)));
    }
}
