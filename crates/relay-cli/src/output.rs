//! Tables for people: a list of resources as rows of a few chosen columns, one resource as
//! key/value rows (nested objects under dotted keys, arrays of objects as tables of their own).
//! The one home for how a value looks in a table: `-` for null, lists joined, control characters
//! neutralised (a response body must not drive the terminal), long values cut with `…`.
//! It never shapes what `--json` prints: that is the API's JSON as is.

use comfy_table::{Table, presets::NOTHING};
use serde_json::Value;

/// The widest a cell of a list gets; ids (36 characters) always fit whole.
const LIST_WIDTH: usize = 40;
/// The widest a value of a single object gets; secrets and tokens fit whole.
const DETAIL_WIDTH: usize = 600;
/// What an empty list prints.
pub const EMPTY_LIST: &str = "(none)";

/// One column of a list: its header and the dotted path of its value in each item.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub header: &'static str,
    pub path: &'static str,
}

pub const fn col(header: &'static str, path: &'static str) -> Column {
    Column { header, path }
}

/// An array of objects within one object that is shown as a table of its own (an event's
/// deliveries, a delivery's attempts).
#[derive(Debug, Clone, Copy)]
pub struct Section {
    pub key: &'static str,
    pub title: &'static str,
    pub columns: &'static [Column],
}

/// `items` as a table of `columns`, one row each.
pub fn list(columns: &[Column], items: &[Value]) -> String {
    if items.is_empty() {
        return EMPTY_LIST.to_owned();
    }
    let mut table = Table::new();
    table.set_header(columns.iter().map(|c| c.header));
    for item in items {
        table.add_row(columns.iter().map(|c| cell(lookup(item, c.path), LIST_WIDTH)));
    }
    render(table)
}

/// One object as key/value rows (its `id` first), then each of its `sections` as a table.
pub fn detail(value: &Value, sections: &[Section]) -> String {
    let mut rows = Vec::new();
    match value {
        Value::Object(map) => {
            let id_first =
                map.iter().filter(|(k, _)| *k == "id").chain(map.iter().filter(|(k, _)| *k != "id"));
            for (key, v) in id_first.filter(|(k, _)| !sections.iter().any(|s| s.key == *k)) {
                flatten(key.clone(), v, &mut rows);
            }
        }
        other => rows.push(("value".to_owned(), other)),
    }
    let mut table = Table::new();
    for (key, v) in rows {
        table.add_row([key, cell(v, DETAIL_WIDTH)]);
    }
    let mut out = render(table);
    for section in sections {
        if let Some(items) = value.get(section.key).and_then(Value::as_array) {
            out.push_str(&format!("\n\n{}:\n{}", section.title, list(section.columns, items)));
        }
    }
    out
}

/// The value at a dotted `path` (`verification.scheme`), null when there is none.
fn lookup<'a>(value: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(value, |v, key| v.get(key).unwrap_or(&Value::Null))
}

/// Nested objects become dotted keys (`limits.sources`); anything else is one row.
fn flatten<'a>(key: String, value: &'a Value, rows: &mut Vec<(String, &'a Value)>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                flatten(format!("{key}.{k}"), v, rows);
            }
        }
        _ => rows.push((key, value)),
    }
}

/// The text of a value in a cell, at most `width` characters.
fn cell(value: &Value, width: usize) -> String {
    let text = match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) if !items.is_empty() && items.iter().all(|v| !v.is_object() && !v.is_array()) => {
            items.iter().map(|v| cell(v, usize::MAX)).collect::<Vec<_>>().join(", ")
        }
        other => other.to_string(),
    };
    cut(&text, width)
}

/// `text` on one line, without control characters, cut to `width` characters.
fn cut(text: &str, width: usize) -> String {
    let clean = text.chars().map(|c| match c {
        '\n' | '\r' | '\t' => ' ',
        c if c.is_control() => '\u{FFFD}',
        c => c,
    });
    if text.chars().count() <= width {
        return clean.collect();
    }
    let mut short: String = clean.take(width.saturating_sub(1)).collect();
    short.push('…');
    short
}

/// A borderless table, two spaces between columns, no trailing spaces.
fn render(mut table: Table) -> String {
    table.load_style(NOTHING);
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    table.trim_fmt()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const COLUMNS: &[Column] =
        &[col("ID", "id"), col("SCHEME", "verification.scheme"), col("TYPES", "types")];

    #[test]
    fn a_list_shows_the_chosen_columns_of_each_item() {
        let items = [
            json!({"id": "src_1", "verification": {"scheme": "none"}, "types": ["a", "b"], "other": 1}),
            json!({"id": "src_2", "types": null}),
        ];
        let lines: Vec<String> = list(COLUMNS, &items).lines().map(str::to_owned).collect();
        assert_eq!(lines, ["ID     SCHEME  TYPES", "src_1  none    a, b", "src_2  -       -"]);
        assert_eq!(list(COLUMNS, &[]), EMPTY_LIST);
    }

    #[test]
    fn one_object_is_key_value_rows_with_its_sections_after() {
        let value = json!({"name": "n", "id": "evt_1", "limits": {"sources": 2}, "tags": [],
                           "deliveries": [{"id": "dlv_1"}]});
        let sections = [Section { key: "deliveries", title: "Deliveries", columns: &COLUMNS[..1] }];
        let text = detail(&value, &sections);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "id              evt_1");
        assert!(lines.contains(&"limits.sources  2"), "{text}");
        assert!(lines.contains(&"tags            []"), "{text}");
        assert!(text.ends_with("Deliveries:\nID\ndlv_1"), "{text}");
    }

    #[test]
    fn long_values_are_cut_and_control_characters_neutralised() {
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("abcd", 4), "abcd");
        assert_eq!(cut("a\nb\u{1b}[2J", 10), "a b\u{FFFD}[2J");
        assert_eq!(cell(&json!("x".repeat(100)), LIST_WIDTH).chars().count(), LIST_WIDTH);
    }
}
