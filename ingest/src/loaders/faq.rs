//! FAQ loaders: question-answer pairs from CSV, JSON, JSON Lines and YAML files.

use serde_json::{Map, Value};
use supportbot_core::document::{Body, Document, FaqEntry};

use super::{LoadError, Slugger, collapse_ws, file_stem};

/// An entry before anchors are assigned.
struct Raw {
    question: String,
    answer: String,
    url: Option<String>,
    tags: Vec<String>,
}

fn malformed(msg: impl Into<String>) -> LoadError {
    LoadError::Malformed(msg.into())
}

/// Assigns anchors (question slugs, de-duplicated) and builds the document.
fn build(source: &str, raws: Vec<Raw>) -> Result<Document, LoadError> {
    if raws.is_empty() {
        return Err(LoadError::Empty);
    }
    let mut slugger = Slugger::default();
    let entries = raws
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let anchor = slugger.slug(&r.question).unwrap_or_else(|| slugger.unique(format!("entry-{}", i + 1)));
            FaqEntry { question: r.question, answer: r.answer, url: r.url, tags: r.tags, anchor }
        })
        .collect();
    Ok(Document {
        source: source.to_owned(),
        title: file_stem(source),
        keywords: Vec::new(),
        language: None,
        body: Body::Faq(entries),
    })
}

/// Tags from a `;`- or `,`-separated string: trimmed, empties dropped.
fn split_tags(s: &str) -> Vec<String> {
    s.split([';', ',']).map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect()
}

/// Checks and tidies one entry's fields; `loc` names the entry in error messages.
fn finish(loc: &str, question: &str, answer: &str, url: Option<&str>, tags: Vec<String>) -> Result<Raw, LoadError> {
    let question = collapse_ws(question);
    if question.is_empty() {
        return Err(malformed(format!("{loc}: empty `question`")));
    }
    let answer = answer.trim();
    if answer.is_empty() {
        return Err(malformed(format!("{loc}: empty `answer`")));
    }
    Ok(Raw {
        question,
        answer: answer.to_owned(),
        url: url.map(str::trim).filter(|u| !u.is_empty()).map(str::to_owned),
        tags,
    })
}

// ---------------------------------------------------------------- CSV

pub(super) fn load_csv(source: &str, text: &str) -> Result<Document, LoadError> {
    let delimiter = sniff_delimiter(text);
    if let Some((record, line)) = unterminated_quote(text, delimiter) {
        return Err(malformed(format!(
            "{}: unterminated quoted field (the `\"` opened there is never closed)",
            csv_where(record, line)
        )));
    }
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .trim(csv::Trim::All)
        .delimiter(delimiter)
        .from_reader(text.as_bytes());
    let headers = rdr.headers().map_err(|e| csv_error(text, &e))?.clone();
    let header_line = headers.position().map_or(1, |p| line_of(text, p));
    let column = |names: &[&str]| headers.iter().position(|h| names.iter().any(|n| h.eq_ignore_ascii_case(n)));
    let found = || headers.iter().map(|h| format!("`{h}`")).collect::<Vec<_>>().join(", ");
    let q = column(&["question", "q"]).ok_or_else(|| {
        malformed(format!("CSV header (line {header_line}) has no `question` column (found: {})", found()))
    })?;
    let a = column(&["answer", "a"]).ok_or_else(|| {
        malformed(format!("CSV header (line {header_line}) has no `answer` column (found: {})", found()))
    })?;
    let url = column(&["url"]);
    let tags = column(&["tags"]);

    let mut raws = Vec::new();
    for result in rdr.records() {
        let rec = result.map_err(|e| csv_error(text, &e))?;
        if rec.iter().all(str::is_empty) {
            continue; // a row of empty cells, as spreadsheets export after the data
        }
        let loc = rec.position().map_or_else(|| "CSV record".to_owned(), |p| csv_where(p.record(), line_of(text, p)));
        let field = |i: usize| rec.get(i).unwrap_or("");
        raws.push(finish(
            &loc,
            field(q),
            field(a),
            url.map(field),
            tags.map(|i| split_tags(field(i))).unwrap_or_default(),
        )?);
    }
    build(source, raws)
}

/// `,` unless the header line has none and uses `;` (spreadsheets in many locales) or tabs.
fn sniff_delimiter(text: &str) -> u8 {
    let header = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    if header.contains(',') {
        b','
    } else if header.contains(';') {
        b';'
    } else if header.contains('\t') {
        b'\t'
    } else {
        b','
    }
}

/// "CSV header (line 1)" or "CSV record 4 (line 7)"; records count data rows from 1.
fn csv_where(record: u64, line: u64) -> String {
    if record == 0 { format!("CSV header (line {line})") } else { format!("CSV record {record} (line {line})") }
}

/// The 1-based line a record starts on. csv's own line counter does not count the blank
/// lines it skips, so the line is recomputed from the byte offset.
fn line_of(text: &str, pos: &csv::Position) -> u64 {
    let bytes = text.as_bytes();
    let mut at = usize::try_from(pos.byte()).unwrap_or(usize::MAX).min(bytes.len());
    while bytes.get(at) == Some(&b'\n') {
        at += 1;
    }
    1 + bytes[..at].iter().filter(|&&b| b == b'\n').count() as u64
}

fn csv_error(text: &str, e: &csv::Error) -> LoadError {
    match e.kind() {
        csv::ErrorKind::UnequalLengths { pos, expected_len, len } => {
            let loc = pos.as_ref().map_or_else(|| "CSV".to_owned(), |p| csv_where(p.record(), line_of(text, p)));
            let hint = if len > expected_len { " (quote fields that contain commas)" } else { "" };
            let fields = |n: u64| {
                if n == 1 { "1 field".to_owned() } else { format!("{n} fields") }
            };
            malformed(format!("{loc}: has {} but the header has {}{hint}", fields(*len), fields(*expected_len)))
        }
        _ => match e.position() {
            Some(p) => malformed(format!("{}: {e}", csv_where(p.record(), line_of(text, p)))),
            None => malformed(format!("CSV: {e}")),
        },
    }
}

/// Finds a quoted field that never closes (the csv crate silently runs it to the end of
/// the file). Follows csv-core's rules: a quote opens a quoted field only at the start of a
/// field, `""` inside is an escaped quote, blank lines are not records. Returns the record
/// (0 = header) and line where the quote opened.
fn unterminated_quote(text: &str, delimiter: u8) -> Option<(u64, u64)> {
    let bytes = text.as_bytes();
    let mut line = 1u64;
    let mut record = 0u64;
    let mut record_started = false;
    let mut field_start = true;
    let mut open: Option<(u64, u64)> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if open.is_some() {
            match b {
                b'"' if bytes.get(i + 1) == Some(&b'"') => i += 1,
                b'"' => {
                    open = None;
                    field_start = false;
                }
                b'\n' => line += 1,
                _ => {}
            }
        } else {
            match b {
                b'"' if field_start => {
                    open = Some((record, line));
                    record_started = true;
                    field_start = false;
                }
                b if b == delimiter => {
                    field_start = true;
                    record_started = true;
                }
                b'\n' => {
                    line += 1;
                    if record_started {
                        record += 1;
                    }
                    record_started = false;
                    field_start = true;
                }
                _ => {
                    record_started = true;
                    field_start = false;
                }
            }
        }
        i += 1;
    }
    open
}

// ---------------------------------------------------------------- JSON, JSONL, YAML

pub(super) fn load_json(source: &str, text: &str) -> Result<Document, LoadError> {
    let value: Value = serde_json::from_str(text).map_err(|e| malformed(format!("JSON: {e}")))?;
    load_value(source, &value, "JSON")
}

pub(super) fn load_jsonl(source: &str, text: &str) -> Result<Document, LoadError> {
    let mut raws = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let loc = format!("JSONL line {}", i + 1);
        let value: Value = serde_json::from_str(line).map_err(|e| {
            let msg = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            let bare = msg.strip_suffix(&suffix).unwrap_or(&msg);
            malformed(format!("{loc}: {bare} at column {}", e.column()))
        })?;
        raws.push(entry(&value, &loc)?);
    }
    build(source, raws)
}

pub(super) fn load_yaml(source: &str, text: &str) -> Result<Document, LoadError> {
    let value: serde_norway::Value = serde_norway::from_str(text).map_err(|e| {
        let msg = e.to_string();
        match e.location() {
            Some(loc) if !msg.contains(" at line ") => {
                malformed(format!("YAML: {msg} at line {} column {}", loc.line(), loc.column()))
            }
            _ => malformed(format!("YAML: {msg}")),
        }
    })?;
    load_value(source, &yaml_to_json(value), "YAML")
}

/// An array of entries, or an object holding one under `faq` or `entries`.
fn load_value(source: &str, value: &Value, fmt: &str) -> Result<Document, LoadError> {
    let items = match value {
        Value::Null => return Err(LoadError::Empty),
        Value::Array(items) => items,
        Value::Object(map) => {
            let key = map.keys().find(|k| k.eq_ignore_ascii_case("faq") || k.eq_ignore_ascii_case("entries"));
            match key.and_then(|k| map.get(k).map(|v| (k, v))) {
                Some((_, Value::Array(items))) => items,
                Some((_, Value::Null)) => return Err(LoadError::Empty),
                Some((k, other)) => {
                    return Err(malformed(format!("{fmt}: `{k}` must be a list of entries, found {}", kind(other))));
                }
                None => {
                    let keys: Vec<String> = map.keys().map(|k| format!("`{k}`")).collect();
                    return Err(malformed(format!(
                        "{fmt}: expected a list of entries, or an object with a `faq` or \
                         `entries` list; found an object with keys {}",
                        if keys.is_empty() { "(none)".to_owned() } else { keys.join(", ") }
                    )));
                }
            }
        }
        other => {
            return Err(malformed(format!(
                "{fmt}: expected a list of entries, or an object with a `faq` or `entries` \
                 list; found {}",
                kind(other)
            )));
        }
    };
    let raws = items
        .iter()
        .enumerate()
        .map(|(i, v)| entry(v, &format!("{fmt} entry {} (index {i})", i + 1)))
        .collect::<Result<Vec<_>, _>>()?;
    build(source, raws)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A field by name or alias, keys compared case-insensitively.
fn field<'v>(obj: &'v Map<String, Value>, names: &[&str]) -> Option<&'v Value> {
    names
        .iter()
        .find_map(|n| obj.get(*n).or_else(|| obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| v)))
}

/// A scalar field as text: strings as they are, numbers and booleans spelled out; `None`
/// when absent or null.
fn text_field(obj: &Map<String, Value>, names: &[&str], loc: &str) -> Result<Option<String>, LoadError> {
    match field(obj, names) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => Ok(Some(v.to_string())),
        Some(other) => Err(malformed(format!("{loc}: `{}` must be a string, found {}", names[0], kind(other)))),
    }
}

fn entry(v: &Value, loc: &str) -> Result<Raw, LoadError> {
    let Value::Object(obj) = v else {
        return Err(malformed(format!("{loc}: expected an object with `question` and `answer`, found {}", kind(v))));
    };
    let question = text_field(obj, &["question", "q"], loc)?
        .ok_or_else(|| malformed(format!("{loc}: missing field `question`")))?;
    let answer =
        text_field(obj, &["answer", "a"], loc)?.ok_or_else(|| malformed(format!("{loc}: missing field `answer`")))?;
    let url = text_field(obj, &["url"], loc)?;
    let tags = match field(obj, &["tags"]) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => split_tags(s),
        Some(Value::Array(items)) => {
            let mut tags = Vec::new();
            for (i, t) in items.iter().enumerate() {
                match t {
                    Value::String(s) => tags.extend(split_tags(s)),
                    Value::Number(_) | Value::Bool(_) => tags.push(t.to_string()),
                    other => {
                        return Err(malformed(format!("{loc}: `tags[{i}]` must be a string, found {}", kind(other))));
                    }
                }
            }
            tags
        }
        Some(other) => {
            return Err(malformed(format!(
                "{loc}: `tags` must be a list of strings or a `;`-separated string, found {}",
                kind(other)
            )));
        }
    };
    finish(loc, &question, &answer, url.as_deref(), tags)
}

fn yaml_to_json(v: serde_norway::Value) -> Value {
    use serde_norway::Value as Y;
    match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map_or_else(|| Value::String(n.to_string()), Value::Number)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(map) => Value::Object(map.into_iter().map(|(k, v)| (yaml_key(k), yaml_to_json(v))).collect()),
        Y::Tagged(tagged) => yaml_to_json(tagged.value),
    }
}

fn yaml_key(k: serde_norway::Value) -> String {
    use serde_norway::Value as Y;
    match k {
        Y::String(s) => s,
        Y::Number(n) => n.to_string(),
        Y::Bool(b) => b.to_string(),
        Y::Null => "null".to_owned(),
        other => serde_norway::to_string(&other).map(|s| s.trim().to_owned()).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loaders::{Format, load};

    fn entries(doc: Document) -> Vec<FaqEntry> {
        match doc.body {
            Body::Faq(e) => e,
            Body::Sections(_) => panic!("not an FAQ"),
        }
    }

    fn err(r: Result<Document, LoadError>) -> String {
        match r {
            Err(LoadError::Malformed(m)) => m,
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn csv_with_quoting_tags_and_url() {
        let csv = "\u{FEFF}Question , ANSWER,url,Tags\r\n\
                   How do I reset my password?,\"Go to Settings, then \"\"Security\"\".\",https://x/reset,account; security\r\n\
                   \"Multi-line\nanswer?\",\"Line one.\nLine two.\",,\r\n\
                   \r\n\
                   How do I reset my password?,  Duplicate question.  ,, a ; ;b\r\n";
        let doc = load("faq/general.csv", Format::FaqCsv, csv.as_bytes()).unwrap();
        assert_eq!(doc.title, "general");
        assert_eq!(doc.source, "faq/general.csv");
        let e = entries(doc);
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].question, "How do I reset my password?");
        assert_eq!(e[0].answer, "Go to Settings, then \"Security\".");
        assert_eq!(e[0].url.as_deref(), Some("https://x/reset"));
        assert_eq!(e[0].tags, vec!["account", "security"]);
        assert_eq!(e[0].anchor, "how-do-i-reset-my-password");
        assert_eq!(e[1].question, "Multi-line answer?");
        assert_eq!(e[1].answer, "Line one.\nLine two.");
        assert_eq!(e[1].url, None);
        assert!(e[1].tags.is_empty());
        assert_eq!(e[2].answer, "Duplicate question.");
        assert_eq!(e[2].anchor, "how-do-i-reset-my-password-1");
        assert_eq!(e[2].tags, vec!["a", "b"]);
    }

    #[test]
    fn csv_aliases() {
        let e = entries(load_csv("f.csv", "Q,A\nWhy?,Because.\n").unwrap());
        assert_eq!((e[0].question.as_str(), e[0].answer.as_str()), ("Why?", "Because."));
    }

    #[test]
    fn csv_semicolon_and_tab_delimiters() {
        let e = entries(load_csv("f.csv", "question;answer;tags\nWhy?;Because, that's why.;a,b\n").unwrap());
        assert_eq!(e[0].answer, "Because, that's why.");
        assert_eq!(e[0].tags, vec!["a", "b"]);
        let e = entries(load_csv("f.csv", "question\tanswer\nWhy?\tBecause.\n").unwrap());
        assert_eq!(e[0].answer, "Because.");
    }

    #[test]
    fn csv_unterminated_quote_names_record_and_line() {
        let csv = "question,answer\nA?,fine\n\"B?\nstill B\",answer\nC?,\"never closed\nD?,x\n";
        assert_eq!(
            err(load_csv("f.csv", csv)),
            "CSV record 3 (line 5): unterminated quoted field (the `\"` opened there is never closed)"
        );
    }

    #[test]
    fn csv_wrong_field_count() {
        let csv = "question,answer\nA?,a\n\nB?,b,extra\n";
        assert_eq!(
            err(load_csv("f.csv", csv)),
            "CSV record 2 (line 4): has 3 fields but the header has 2 fields (quote fields that contain commas)"
        );
        let short = "question,answer\nA?\n";
        assert_eq!(err(load_csv("f.csv", short)), "CSV record 1 (line 2): has 1 field but the header has 2 fields");
    }

    #[test]
    fn csv_missing_columns_name_the_header() {
        assert_eq!(
            err(load_csv("f.csv", "id,text,reply\n1,a,b\n")),
            "CSV header (line 1) has no `question` column (found: `id`, `text`, `reply`)"
        );
        assert_eq!(
            err(load_csv("f.csv", "question,reply\nA?,b\n")),
            "CSV header (line 1) has no `answer` column (found: `question`, `reply`)"
        );
    }

    #[test]
    fn csv_empty_fields_name_the_row() {
        assert_eq!(err(load_csv("f.csv", "question,answer\nA?,a\n  ,b\n")), "CSV record 2 (line 3): empty `question`");
        assert_eq!(err(load_csv("f.csv", "question,answer\nA?,\"\"\n")), "CSV record 1 (line 2): empty `answer`");
    }

    #[test]
    fn csv_blank_rows_and_header_only() {
        let e = entries(load_csv("f.csv", "question,answer\nA?,a\n,\n ,  \n").unwrap());
        assert_eq!(e.len(), 1);
        assert_eq!(load_csv("f.csv", "question,answer\n"), Err(LoadError::Empty));
    }

    #[test]
    fn json_shapes() {
        let arr = r#"[{"question": "Q1?", "answer": "A1", "tags": ["x", "y"], "extra": 1},
                      {"Question": "Q2?", "Answer": "A2", "url": "https://x", "tags": "a; b,c"}]"#;
        let e = entries(load_json("faq.json", arr).unwrap());
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].tags, vec!["x", "y"]);
        assert_eq!(e[1].question, "Q2?");
        assert_eq!(e[1].url.as_deref(), Some("https://x"));
        assert_eq!(e[1].tags, vec!["a", "b", "c"]);
        assert_eq!(e[1].anchor, "q2");

        for key in ["faq", "entries"] {
            let obj = format!(r#"{{"title": "x", "{key}": [{{"q": "Why?", "a": "Because", "url": null}}]}}"#);
            let e = entries(load_json("faq.json", &obj).unwrap());
            assert_eq!(e[0].answer, "Because");
            assert_eq!(e[0].url, None);
        }
    }

    #[test]
    fn json_errors() {
        let bad = "[\n  {\"question\": \"a\", \"answer\": \"b\"}\n  {\"question\": \"c\"}\n]";
        assert_eq!(err(load_json("f.json", bad)), "JSON: expected `,` or `]` at line 3 column 3");
        let missing = r#"[{"question": "a", "answer": "b"}, {"question": "c"}]"#;
        assert_eq!(err(load_json("f.json", missing)), "JSON entry 2 (index 1): missing field `answer`");
        assert_eq!(
            err(load_json("f.json", r#"{"items": []}"#)),
            "JSON: expected a list of entries, or an object with a `faq` or `entries` list; found an object with keys `items`"
        );
        assert_eq!(
            err(load_json("f.json", r#"{"faq": {"question": "a"}}"#)),
            "JSON: `faq` must be a list of entries, found an object"
        );
        assert_eq!(
            err(load_json("f.json", r#"["just a string"]"#)),
            "JSON entry 1 (index 0): expected an object with `question` and `answer`, found a string"
        );
        assert_eq!(
            err(load_json("f.json", r#"[{"question": ["a"], "answer": "b"}]"#)),
            "JSON entry 1 (index 0): `question` must be a string, found a list"
        );
        assert_eq!(
            err(load_json("f.json", r#"[{"question": "a", "answer": "b", "tags": [{}]}]"#)),
            "JSON entry 1 (index 0): `tags[0]` must be a string, found an object"
        );
        assert_eq!(
            err(load_json("f.json", r#"[{"question": " ", "answer": "b"}]"#)),
            "JSON entry 1 (index 0): empty `question`"
        );
        assert_eq!(load_json("f.json", "[]"), Err(LoadError::Empty));
        assert_eq!(load_json("f.json", r#"{"faq": []}"#), Err(LoadError::Empty));
    }

    #[test]
    fn jsonl() {
        let text = "{\"question\": \"A?\", \"answer\": \"a\"}\n\n  \n{\"question\": \"B?\", \"answer\": \"b\", \"tags\": \"t1;t2\"}\n";
        let e = entries(load_jsonl("faq.jsonl", text).unwrap());
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].tags, vec!["t1", "t2"]);

        let bad = "{\"question\": \"A?\", \"answer\": \"a\"}\n\n{\"question\": \"B?\" \"answer\": \"b\"}\n";
        assert_eq!(err(load_jsonl("faq.jsonl", bad)), "JSONL line 3: expected `,` or `}` at column 19");
        let missing = "{\"question\": \"A?\"}\n";
        assert_eq!(err(load_jsonl("faq.jsonl", missing)), "JSONL line 1: missing field `answer`");
    }

    #[test]
    fn yaml_shapes_and_errors() {
        let list = "- question: How do I log in?\n  answer: |\n    Use your email.\n    Then your password.\n  tags: [account]\n- question: 42\n  answer: yes\n";
        let e = entries(load_yaml("faq.yaml", list).unwrap());
        assert_eq!(e[0].answer, "Use your email.\nThen your password.");
        assert_eq!(e[0].tags, vec!["account"]);
        assert_eq!(e[1].question, "42");
        assert_eq!(e[1].answer, "yes");

        let obj = "title: Billing\nentries:\n  - q: Refunds?\n    a: Within 30 days.\n    url: https://x/refunds\n";
        let e = entries(load_yaml("billing.yml", obj).unwrap());
        assert_eq!(e[0].url.as_deref(), Some("https://x/refunds"));

        let bad = "- question: a\n  answer: b\n - question: c\n";
        let m = err(load_yaml("f.yaml", bad));
        assert!(m.starts_with("YAML: "), "{m}");
        assert!(m.contains("line 3 column 2"), "{m}");

        let missing = "faq:\n  - question: a\n    answer: b\n  - answer: c\n";
        assert_eq!(err(load_yaml("f.yaml", missing)), "YAML entry 2 (index 1): missing field `question`");
        assert_eq!(load_yaml("f.yaml", "---\n"), Err(LoadError::Empty));
        assert_eq!(load_yaml("f.yaml", "faq:\n"), Err(LoadError::Empty));
    }

    #[test]
    fn anchors_dedupe_and_fallback() {
        let e = entries(
            load_json(
                "f.json",
                r#"[{"question": "Reset?", "answer": "a"}, {"question": "Reset", "answer": "b"},
                    {"question": "???", "answer": "c"}]"#,
            )
            .unwrap(),
        );
        let anchors: Vec<_> = e.iter().map(|e| e.anchor.as_str()).collect();
        assert_eq!(anchors, vec!["reset", "reset-1", "entry-3"]);
    }

    #[test]
    fn unterminated_quote_scanner() {
        let scan = |t: &str| unterminated_quote(t, b',');
        assert_eq!(scan("a,b\n\"x\"\"y\",z\n"), None);
        assert_eq!(scan("a,b\nx\"y,z\n"), None); // a quote inside a field is literal
        assert_eq!(scan("\"a,b\n"), Some((0, 1)));
        assert_eq!(scan("a,b\n\n\nc,\"d\n"), Some((1, 4)));
        assert_eq!(unterminated_quote("a;b\nc;\"d\n", b';'), Some((1, 2)));
    }
}
