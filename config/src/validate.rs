//! Semantic validation of deserialised settings: URLs, backend names, ranges, uniqueness.

use std::collections::HashMap;
use std::net::SocketAddr;

use url::Url;

use crate::error::{KeyError, Origin};
use crate::settings::{KNOWN_BACKENDS, Settings};

/// Checks what types alone cannot express. `origin` maps a dotted key
/// (`store.qdrant_url`, `sources`) to where its value came from.
pub(crate) fn validate(s: &Settings, origin: impl Fn(&str) -> Origin) -> Vec<KeyError> {
    let mut errors = Vec::new();
    let mut fail = |key: String, origin_key: &str, message: String| {
        errors.push(KeyError { key, origin: origin(origin_key), message });
    };

    // URLs.
    let urls: [(&str, Option<&str>); 6] = [
        ("store.qdrant_url", s.store.qdrant_url.as_deref()),
        ("gemini.base_url", Some(&s.gemini.base_url)),
        ("openai.base_url", s.openai.base_url.as_deref()),
        ("telegram.api_url", Some(&s.telegram.api_url)),
        ("telegram.webhook_url", s.telegram.webhook_url.as_deref()),
        ("discord.api_url", Some(&s.discord.api_url)),
    ];
    for (key, value) in urls {
        if let Some(Err(message)) = value.map(check_url) {
            fail(key.to_owned(), key, message);
        }
    }

    // LLM chain.
    if let Some(chain) = &s.llm.chain {
        for (i, backend) in chain.iter().enumerate() {
            if !KNOWN_BACKENDS.contains(&backend.as_str()) {
                fail(
                    format!("llm.chain[{i}]"),
                    "llm.chain",
                    format!(
                        "unknown backend `{backend}`, expected one of {}",
                        KNOWN_BACKENDS.map(|b| format!("`{b}`")).join(", ")
                    ),
                );
            }
        }
    }

    // Non-negative weights (and the RRF constant).
    let weights = [
        ("search.rrf_k", s.search.rrf_k),
        ("search.dense_weight", s.search.dense_weight),
        ("search.bm25_weight", s.search.bm25_weight),
        ("search.cjk_dense_weight", s.search.cjk_dense_weight),
        ("search.cjk_bm25_weight", s.search.cjk_bm25_weight),
        ("search.multilingual_weight", s.search.multilingual_weight),
        ("llm.temperature", s.llm.temperature),
    ];
    for (key, value) in weights {
        if !(value.is_finite() && value >= 0.0) {
            fail(key.to_owned(), key, format!("expected a finite number >= 0, found {value}"));
        }
    }

    // Similarity thresholds.
    let thresholds = [
        ("answer.min_relevance", s.answer.min_relevance),
        ("answer.min_cjk_overlap", s.answer.min_cjk_overlap),
        ("answer.curated_min_similarity", s.answer.curated_min_similarity),
        ("review.low_confidence", s.review.low_confidence),
        ("search.other_language_weight", s.search.other_language_weight),
        ("search.short_passage_weight", s.search.short_passage_weight),
    ];
    for (key, value) in thresholds {
        if !(value.is_finite() && (0.0..=1.0).contains(&value)) {
            fail(key.to_owned(), key, format!("expected a number between 0 and 1, found {value}"));
        }
    }

    // Positive limits.
    let limits: [(&str, u64); 19] = [
        ("embedding.batch_size", s.embedding.batch_size as u64),
        ("embedding.threads", s.embedding.threads as u64),
        ("embedding.query_sessions", s.embedding.query_sessions as u64),
        ("embedding.max_tokens", s.embedding.max_tokens as u64),
        ("ingest.chunk_tokens", s.ingest.chunk_tokens as u64),
        ("ingest.max_file_bytes", s.ingest.max_file_bytes),
        ("search.limit", s.search.limit as u64),
        ("search.candidates", s.search.candidates as u64),
        ("llm.timeout_secs", s.llm.timeout_secs),
        ("llm.max_output_tokens", u64::from(s.llm.max_output_tokens)),
        ("answer.max_passages", s.answer.max_passages as u64),
        ("answer.max_question_chars", s.answer.max_question_chars as u64),
        ("local.context_tokens", u64::from(s.local.context_tokens)),
        ("local.threads", u64::from(s.local.threads)),
        ("local.max_concurrency", s.local.max_concurrency as u64),
        ("answer.memory_ttl_secs", s.answer.memory_ttl_secs),
        ("limits.per_user_per_minute", u64::from(s.limits.per_user_per_minute)),
        ("limits.per_chat_per_minute", u64::from(s.limits.per_chat_per_minute)),
        ("limits.max_concurrent_answers", s.limits.max_concurrent_answers as u64),
    ];
    for (key, value) in limits {
        if value == 0 {
            fail(key.to_owned(), key, "expected a number > 0, found 0".into());
        }
    }

    // A limit at or above the chunk size would call every passage short.
    if s.search.short_passage_tokens as usize >= s.ingest.chunk_tokens {
        fail(
            "search.short_passage_tokens".into(),
            "search.short_passage_tokens",
            format!(
                "expected fewer tokens than ingest.chunk_tokens ({}), found {}: every passage would be demoted",
                s.ingest.chunk_tokens, s.search.short_passage_tokens
            ),
        );
    }

    // Sources: unique non-empty names, valid URLs.
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, source) in s.sources.iter().enumerate() {
        let name = source.name.trim();
        if name.is_empty() {
            fail(format!("sources[{i}].name"), "sources", "expected a non-empty source name".into());
        } else if let Some(first) = seen.insert(name, i) {
            fail(
                format!("sources[{i}].name"),
                "sources",
                format!("duplicate source name `{name}` (already used by sources[{first}])"),
            );
            // Keep reporting later duplicates against the first occurrence.
            seen.insert(name, first);
        }
        if let Some(Err(message)) = source.url.as_deref().map(check_url) {
            fail(format!("sources[{i}].url"), "sources", message);
        }
    }

    // Listen address.
    if let Err(e) = s.web.listen.parse::<SocketAddr>() {
        fail(
            "web.listen".into(),
            "web.listen",
            format!(
                "expected a socket address such as `127.0.0.1:8080` or `[::]:8080`, found {:?} ({e})",
                s.web.listen
            ),
        );
    }

    errors
}

/// An absolute `http`/`https` URL with a host. The value itself is not echoed
/// (URLs may carry credentials).
fn check_url(value: &str) -> Result<(), String> {
    let url = Url::parse(value).map_err(|e| {
        format!("expected an absolute http(s) URL such as `https://example.com`, but it does not parse: {e}")
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("expected an http or https URL, found scheme `{}`", url.scheme()));
    }
    if url.host().is_none() {
        return Err("expected an http(s) URL with a host".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::settings::SourceSettings;

    fn check(s: &Settings) -> Vec<String> {
        validate(s, |_| Origin::Default).into_iter().map(|e| format!("{}: {}", e.key, e.message)).collect()
    }

    fn defaults() -> Settings {
        Settings::defaults(Path::new("/w"), Path::new("/d"))
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(check(&defaults()), Vec::<String>::new());
    }

    #[test]
    fn each_rule_names_its_key() {
        let mut s = defaults();
        s.store.qdrant_url = Some("localhost:6333".into());
        s.gemini.base_url = "not a url".into();
        s.telegram.webhook_url = Some("https://".into());
        s.llm.chain = Some(vec!["gemini".into(), "gpt".into()]);
        s.search.bm25_weight = -0.5;
        s.search.dense_weight = f32::NAN;
        s.search.limit = 0;
        s.ingest.max_file_bytes = 0;
        s.search.short_passage_tokens = 200;
        s.web.listen = "localhost".into();
        let source = |name: &str, url: Option<&str>| SourceSettings {
            name: name.into(),
            path: "/docs".into(),
            url: url.map(Into::into),
            tags: vec![],
        };
        s.sources = vec![
            source("docs", Some("https://example.com/docs")),
            source(" ", None),
            source("docs", Some("ftp://example.com")),
        ];
        let errors = check(&s);
        let keys: Vec<&str> = errors.iter().map(|e| e.split(':').next().unwrap_or("")).collect();
        assert_eq!(
            keys,
            [
                "store.qdrant_url",
                "gemini.base_url",
                "telegram.webhook_url",
                "llm.chain[1]",
                "search.dense_weight",
                "search.bm25_weight",
                "ingest.max_file_bytes",
                "search.limit",
                "search.short_passage_tokens",
                "sources[1].name",
                "sources[2].name",
                "sources[2].url",
                "web.listen",
            ],
            "{errors:#?}"
        );
        assert!(errors[3].contains("`gpt`"), "{}", errors[3]);
        assert!(errors[8].contains("ingest.chunk_tokens (200)"), "{}", errors[8]);
        assert!(errors[10].contains("sources[0]"), "{}", errors[10]);
    }
}
