//! The event overrides of `sign` and `send` (`--event-id`, `--timestamp`, `--set`, `--data`) and
//! the time syntax shared with `verify --at`.

use std::path::Path;

use kinde_core::testing::{kinde_timestamp, TestEvent};
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::input;

/// `T` of `--timestamp T` and `--at T`, read against the current time.
pub fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    parse_time_at(s, OffsetDateTime::now_utc())
}

/// `T` read against `now`: `now`, an RFC 3339 time (`2024-04-26T17:42:58.089353-07:00`), or a
/// signed offset from now made of one or more `<number><unit>` parts, unit `s`, `m`, `h` or `d`
/// (`-49h`, `+10m`, `-30s`, `-2d`, `-1h30m`).
pub fn parse_time_at(s: &str, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("now") {
        return Ok(now);
    }
    if let Some(rest) = s.strip_prefix('-') {
        return now
            .checked_sub(relative(rest, s)?)
            .ok_or_else(|| format!("`{s}` is out of range"));
    }
    if let Some(rest) = s.strip_prefix('+') {
        return now
            .checked_add(relative(rest, s)?)
            .ok_or_else(|| format!("`{s}` is out of range"));
    }
    OffsetDateTime::parse(s, &Rfc3339).map_err(|_| {
        format!(
            "`{s}` is neither an RFC 3339 time (2024-04-26T17:42:58Z) nor relative to now \
             (-49h, +10m, -30s, -2d)"
        )
    })
}

/// `49h`, `1h30m`: the parts of a relative time after its sign.
fn relative(rest: &str, whole: &str) -> Result<Duration, String> {
    let bad = || {
        format!("`{whole}`: a relative time is a sign then <number><unit> parts, unit s, m, h or d (e.g. -49h, +10m, -1h30m)")
    };
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    let mut digits = String::new();
    for c in rest.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: i64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: i64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        let secs = n
            .checked_mul(unit)
            .ok_or_else(|| format!("`{whole}` is out of range"))?;
        total = total
            .checked_add(Duration::seconds(secs))
            .ok_or_else(|| format!("`{whole}` is out of range"))?;
    }
    if !digits.is_empty() {
        return Err(bad());
    }
    Ok(total)
}

/// One `--set PATH=VALUE`: a dotted path into the claims and the value to put there.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    /// The path's segments (`data.user.email` → `["data", "user", "email"]`).
    pub path: Vec<String>,
    /// JSON when `VALUE` parses as JSON, else the string itself.
    pub value: Value,
}

/// Parses `PATH=VALUE` (split at the first `=`).
pub fn parse_set(s: &str) -> Result<Assignment, String> {
    let Some((path, value)) = s.split_once('=') else {
        return Err(format!(
            "`{s}` is not PATH=VALUE (e.g. data.user.email=ada@example.com)"
        ));
    };
    let path: Vec<String> = path.split('.').map(str::to_owned).collect();
    if path.iter().any(String::is_empty) {
        return Err(format!(
            "`{s}`: the path must be dot-separated names, none empty (e.g. data.user.email)"
        ));
    }
    Ok(Assignment {
        path,
        value: json_or_string(value),
    })
}

/// `VALUE` as JSON when it parses as JSON (`42`, `true`, `null`, `"42"`, `{"a":1}`), else as a
/// string.
pub fn json_or_string(value: &str) -> Value {
    serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()))
}

/// Puts `a.value` at `a.path` in `claims`, creating missing intermediate objects.
pub fn apply(claims: &mut Map<String, Value>, a: &Assignment) -> Result<(), String> {
    let (last, parents) = a
        .path
        .split_last()
        .ok_or_else(|| "an empty --set path".to_owned())?;
    let mut node = claims;
    for (i, name) in parents.iter().enumerate() {
        let child = node
            .entry(name.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        node = child.as_object_mut().ok_or_else(|| {
            format!(
                "--set {}: `{}` is not an object",
                a.path.join("."),
                a.path[..=i].join(".")
            )
        })?;
    }
    node.insert(last.clone(), a.value.clone());
    Ok(())
}

/// The overrides given on the command line.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Overrides {
    /// Sets `event_id` (default: a fresh `event_<32 hex>`).
    #[arg(long, value_name = "ID", allow_hyphen_values = true)]
    pub event_id: Option<String>,
    /// Sets `timestamp`: RFC 3339, or relative to now: -49h, +10m, -30s, -2d (default: now).
    #[arg(long, value_name = "T", value_parser = parse_time, allow_hyphen_values = true)]
    pub timestamp: Option<OffsetDateTime>,
    /// Sets a claim at a dotted path (repeatable), after every other override: VALUE is JSON when
    /// it parses as JSON, else a string; missing objects on the path are created
    /// (e.g. --set data.user.email=ada@example.com --set data.user.is_suspended=true).
    #[arg(long = "set", value_name = "PATH=VALUE", value_parser = parse_set, allow_hyphen_values = true)]
    pub set: Vec<Assignment>,
    /// The whole `data` object, as JSON, from FILE (`-`: standard input).
    #[arg(long, value_name = "FILE", allow_hyphen_values = true)]
    pub data: Option<std::path::PathBuf>,
}

/// The claims of an event of `event_type`: the type's sample data (or `{}`), then `--data`,
/// `--event-id`, `--timestamp`, and the `--set`s in order.
pub fn claims(event_type: &str, o: &Overrides) -> Result<Value, String> {
    let data = match &o.data {
        Some(path) => Some(read_data(path)?),
        None => None,
    };
    claims_with(event_type, o, data)
}

/// [`claims`] with `--data` already read.
pub fn claims_with(event_type: &str, o: &Overrides, data: Option<Value>) -> Result<Value, String> {
    let mut event = TestEvent::sample(event_type);
    if let Some(data) = data {
        event = event.claim("data", data);
    }
    if let Some(id) = &o.event_id {
        event = event.event_id(id.clone());
    }
    if let Some(t) = o.timestamp {
        event = event.claim("timestamp", Value::String(kinde_timestamp(t)));
    }
    let Value::Object(mut claims) = event.into_claims() else {
        return Err("the claims are not an object".into());
    };
    for a in &o.set {
        apply(&mut claims, a)?;
    }
    Ok(Value::Object(claims))
}

fn read_data(path: &Path) -> Result<Value, String> {
    let (what, bytes) = if path.as_os_str() == "-" {
        ("standard input".to_owned(), input::read_stdin()?)
    } else {
        let what = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| format!("--data {what}: {e}"))?;
        (what, bytes)
    };
    serde_json::from_slice(&bytes).map_err(|e| format!("--data {what}: not JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2024-04-26 12:00:00 UTC);

    #[test]
    fn relative_times_count_from_now() {
        let at = |s| parse_time_at(s, NOW).unwrap();
        assert_eq!(at("-49h"), datetime!(2024-04-24 11:00:00 UTC));
        assert_eq!(at("+10m"), datetime!(2024-04-26 12:10:00 UTC));
        assert_eq!(at("-30s"), datetime!(2024-04-26 11:59:30 UTC));
        assert_eq!(at("-2d"), datetime!(2024-04-24 12:00:00 UTC));
        assert_eq!(at("-1h30m"), datetime!(2024-04-26 10:30:00 UTC));
        assert_eq!(at("+0s"), NOW);
        assert_eq!(at("now"), NOW);
    }

    #[test]
    fn absolute_times_are_rfc3339_with_their_offset() {
        let t = parse_time_at("2024-04-26T17:42:58.089353-07:00", NOW).unwrap();
        assert_eq!(t, datetime!(2024-04-26 17:42:58.089353 -07:00));
        assert_eq!(t.offset().whole_hours(), -7);
        assert_eq!(
            parse_time_at("2024-04-26T17:42:58Z", NOW).unwrap(),
            datetime!(2024-04-26 17:42:58 UTC)
        );
    }

    #[test]
    fn bad_times_are_refused_with_the_syntax() {
        for bad in [
            "",
            "-",
            "+",
            "49h",
            "-49",
            "-h",
            "-49x",
            "-4 9h",
            "yesterday",
            "2024-04-26",
            "-1h30",
            "--49h",
        ] {
            let err = parse_time_at(bad, NOW).unwrap_err();
            assert!(err.contains("-49h"), "{bad:?}: {err}");
        }
        let err = parse_time_at("-99999999999999d", NOW).unwrap_err();
        assert!(err.contains("out of range"), "{err}");
        assert!(parse_time_at("+9999999999999999999s", NOW).is_err());
    }

    #[test]
    fn set_values_are_json_when_they_parse_else_strings() {
        let v = |s: &str| parse_set(s).unwrap().value;
        assert_eq!(v("a=42"), json!(42));
        assert_eq!(v("a=true"), json!(true));
        assert_eq!(v("a=null"), json!(null));
        assert_eq!(v("a=\"42\""), json!("42"));
        assert_eq!(v("a={\"b\":[1,2]}"), json!({"b": [1, 2]}));
        assert_eq!(v("a=ada@example.com"), json!("ada@example.com"));
        assert_eq!(v("a="), json!(""));
        assert_eq!(v("a=-49h"), json!("-49h"));
        assert_eq!(v("a=-5"), json!(-5));
        // Split at the first `=`: the value may hold more.
        assert_eq!(v("a=b=c"), json!("b=c"));
        assert_eq!(v("a={not json"), json!("{not json"));
    }

    #[test]
    fn set_paths_are_dotted_names() {
        let a = parse_set("data.user.email=a@b.c").unwrap();
        assert_eq!(a.path, ["data", "user", "email"]);
        for bad in ["data.user.email", "=x", ".a=1", "a.=1", "a..b=1"] {
            assert!(parse_set(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn set_creates_intermediate_objects_and_refuses_to_cross_a_non_object() {
        let mut claims = Map::new();
        claims.insert("data".into(), json!({"user": {"id": "kp_1"}, "list": [1]}));
        apply(&mut claims, &parse_set("data.user.email=a@b.c").unwrap()).unwrap();
        apply(&mut claims, &parse_set("data.org.code=org_2").unwrap()).unwrap();
        apply(&mut claims, &parse_set("ip_address=1.2.3.4").unwrap()).unwrap();
        assert_eq!(
            Value::Object(claims.clone()),
            json!({
                "data": {"user": {"id": "kp_1", "email": "a@b.c"}, "list": [1], "org": {"code": "org_2"}},
                "ip_address": "1.2.3.4"
            })
        );
        let err = apply(&mut claims, &parse_set("data.list.x=1").unwrap()).unwrap_err();
        assert!(err.contains("`data.list` is not an object"), "{err}");
        let err = apply(&mut claims, &parse_set("data.user.id.x=1").unwrap()).unwrap_err();
        assert!(err.contains("`data.user.id` is not an object"), "{err}");
    }

    #[test]
    fn overrides_apply_in_order_with_set_last() {
        let o = Overrides {
            event_id: Some("event_fixed".into()),
            timestamp: Some(datetime!(2024-04-26 17:42:58 UTC)),
            set: vec![
                parse_set("data.user.email=x@example.com").unwrap(),
                parse_set("event_id=event_from_set").unwrap(),
            ],
            data: None,
        };
        let c = claims_with("user.created", &o, None).unwrap();
        assert_eq!(c["event_id"], "event_from_set");
        assert_eq!(c["timestamp"], "2024-04-26T17:42:58Z");
        assert_eq!(c["type"], "user.created");
        assert_eq!(c["data"]["user"]["email"], "x@example.com");
        assert_eq!(c["data"]["user"]["id"], kinde_core::testing::SAMPLE_USER_ID);

        let c = claims_with("passkey.added", &Overrides::default(), None).unwrap();
        assert_eq!(c["data"], json!({}));
        assert!(c["event_id"].as_str().unwrap().starts_with("event_"));
        let c = claims_with(
            "user.created",
            &Overrides::default(),
            Some(json!({"user": {"id": "kp_given"}})),
        )
        .unwrap();
        assert_eq!(c["data"], json!({"user": {"id": "kp_given"}}));
    }
}
