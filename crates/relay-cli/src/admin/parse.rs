//! The value parsers of the admin commands' arguments: times (`--since 2h` or RFC 3339), custom
//! headers (`NAME=VALUE`) and the relay's vocabularies (plans, statuses, listed in `--help`).
//! They run while clap parses the command line, so bad input is refused before any request.

use std::time::Duration;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use reqwest::header::{HeaderName, HeaderValue};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The forms of a time argument.
const TIME_FORMS: &str = "RFC 3339 (2026-04-03T12:00:00Z) or an age before now (30s, 15m, 2h, 7d)";

/// A time argument as the API takes it (RFC 3339): an RFC 3339 time, or an age before now.
pub(crate) fn time_arg(text: &str) -> Result<String, String> {
    let text = text.trim();
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return at.format(&Rfc3339).map_err(|e| e.to_string());
    }
    let age = parse_age(text).ok_or_else(|| format!("`{text}` is not a time: use {TIME_FORMS}"))?;
    let at = OffsetDateTime::now_utc()
        .checked_sub(time::Duration::try_from(age).map_err(|e| e.to_string())?)
        .ok_or_else(|| format!("`{text}` reaches too far back"))?;
    at.format(&Rfc3339).map_err(|e| e.to_string())
}

/// `30s`, `15m`, `2h` or `7d`.
fn parse_age(text: &str) -> Option<Duration> {
    let (last, _) = text.char_indices().last()?;
    let (number, unit) = text.split_at(last);
    let n: u64 = number.parse().ok()?;
    let unit_seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(unit_seconds).map(Duration::from_secs)
}

/// A custom header, `NAME=VALUE`, with a name and value HTTP allows.
pub(crate) fn header_arg(text: &str) -> Result<(String, String), String> {
    let Some((name, value)) = text.split_once('=') else {
        return Err(format!("`{text}` is not NAME=VALUE (e.g. --header X-Api-Key=abc123)"));
    };
    let name = name.trim();
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("`{name}` is not a valid header name"))?;
    HeaderValue::from_str(value).map_err(|_| format!("the value of header `{name}` is not valid in HTTP"))?;
    Ok((name.to_owned(), value.to_owned()))
}

/// A parser accepting exactly the text forms (`text`) of `all`, which `--help` lists.
pub(crate) fn one_of<T>(all: &'static [T], text: fn(T) -> &'static str) -> impl TypedValueParser<Value = T>
where
    T: Copy + Send + Sync + 'static,
{
    PossibleValuesParser::new(all.iter().map(|v| text(*v))).map(move |chosen: String| {
        *all.iter().find(|v| text(**v) == chosen).expect("clap only passes one of the possible values")
    })
}

/// The text of a [`clap::ValueEnum`] value, as the command line takes it and the API sends it.
pub(crate) fn value_text<T: clap::ValueEnum>(value: &T) -> String {
    value.to_possible_value().expect("no value is skipped").get_name().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_ages() {
        assert_eq!(time_arg("2026-04-03T12:00:00Z").unwrap(), "2026-04-03T12:00:00Z");
        assert_eq!(time_arg("2026-04-03T14:00:00+02:00").unwrap(), "2026-04-03T14:00:00+02:00");
        let two_hours_ago = OffsetDateTime::parse(&time_arg("2h").unwrap(), &Rfc3339).unwrap();
        let age = OffsetDateTime::now_utc() - two_hours_ago;
        assert!((age - time::Duration::hours(2)).abs() < time::Duration::seconds(5), "{age}");
        for bad in ["", "2", "2y", "h", "-1h", "2ü", "yesterday", "2026-04-03"] {
            assert!(time_arg(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn headers_are_name_equals_value() {
        assert_eq!(header_arg("X-Api-Key=a=b").unwrap(), ("X-Api-Key".into(), "a=b".into()));
        assert_eq!(header_arg("X-Empty=").unwrap(), ("X-Empty".into(), String::new()));
        assert!(header_arg("X-Api-Key").unwrap_err().contains("NAME=VALUE"));
        assert!(header_arg("Bad Name=1").unwrap_err().contains("not a valid header name"));
        assert!(header_arg("X-A=line\nbreak").is_err());
    }
}
