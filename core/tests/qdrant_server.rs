//! The Qdrant-server backend against a real server. Runs only when `QDRANT_URL` (gRPC, e.g.
//! `http://localhost:6334`) is set; otherwise it says it was skipped.

use supportbot_core::document::{Chunk, DocKind, chunk_id};
use supportbot_core::store::{
    DocRecord, KnowledgeStore, QdrantOptions, QdrantStore, SearchFilter, StoredChunk, VectorLayout,
};

const WITH_ML: VectorLayout = VectorLayout { dimension: 4, multilingual: true };

fn server() -> Option<String> {
    match std::env::var("QDRANT_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("SKIPPED qdrant_server: QDRANT_URL is not set (no Qdrant server to test against)");
            None
        }
    }
}

fn chunk(source: &str, text: &str, dense: Vec<f32>, lang: &str) -> StoredChunk {
    StoredChunk {
        chunk: Chunk {
            id: chunk_id("docs", source, 0),
            root: "docs".into(),
            source: source.into(),
            chunk_index: 0,
            title: "T".into(),
            heading_path: vec![],
            anchor: Some("a".into()),
            kind: DocKind::Doc,
            language: lang.into(),
            tags: vec![],
            text: text.into(),
            embed_text: text.into(),
            tokens: 17,
            question: None,
            answer: None,
            url: None,
            content_hash: "h".into(),
            cites: None,
        },
        dense,
        multilingual: None,
        lexical_text: text.into(),
    }
}

/// A unit vector of the multilingual model's dimension.
fn e5_unit(axis: usize) -> Vec<f32> {
    let mut v = vec![0.0; supportbot_core::embed::e5::E5_DIMENSION];
    v[axis] = 1.0;
    v
}

#[tokio::test]
async fn same_schema_and_behaviour_as_the_embedded_store() {
    let Some(url) = server() else { return };
    let collection = format!("supportbot-test-{}", std::process::id());
    let opts = QdrantOptions {
        url,
        collection,
        api_key: std::env::var("QDRANT_API_KEY").ok(),
        timeout: std::time::Duration::from_secs(10),
    };
    let store = QdrantStore::connect(&opts, Some(WITH_ML)).await.expect("connect");
    store.clear(WITH_ML).await.expect("clear");
    store
        .upsert_chunks(vec![
            chunk("a.md", "reset your password in settings", vec![1.0, 0.0, 0.0, 0.0], "en"),
            StoredChunk {
                multilingual: Some(e5_unit(7)),
                ..chunk("b.md", "如何重置密码", vec![0.0, 1.0, 0.0, 0.0], "zh")
            },
        ])
        .await
        .expect("upsert");
    for source in ["a.md", "b.md"] {
        store
            .complete_document(&DocRecord {
                root: "docs".into(),
                source: source.into(),
                title: "T".into(),
                kind: DocKind::Doc,
                content_hash: "h".into(),
                chunks: 1,
                indexed_at: "now".into(),
            })
            .await
            .expect("record");
    }
    let dense = store.dense_search(&[1.0, 0.0, 0.0, 0.0], 5, &SearchFilter::default()).await.expect("dense");
    assert_eq!(dense[0].chunk.source, "a.md");
    assert_eq!(dense[0].chunk.tokens, 17, "the passage length survives the round trip");
    assert!((dense[0].score - 1.0).abs() < 1e-4);
    // Only the CJK passage carries the multilingual vector, so only it is found by it.
    let ml = store.multilingual_search(&e5_unit(7), 5, &SearchFilter::default()).await.expect("multilingual");
    assert_eq!(ml.iter().map(|h| h.chunk.source.as_str()).collect::<Vec<_>>(), ["b.md"]);
    assert!((ml[0].score - 1.0).abs() < 1e-4);
    let sparse = store.sparse_search("重置密码", 5, &SearchFilter::default()).await.expect("sparse");
    assert_eq!(sparse[0].chunk.source, "b.md");
    // Passages read by id, as fusion does for stores that rank without them.
    let read = store.chunks(&[sparse[0].chunk.id, uuid::Uuid::from_u128(7)]).await.expect("chunks");
    assert_eq!(read.iter().map(|c| c.source.as_str()).collect::<Vec<_>>(), ["b.md"]);
    let zh_only = SearchFilter { languages: vec!["zh".into()], ..Default::default() };
    let filtered = store.dense_search(&[1.0, 0.0, 0.0, 0.0], 5, &zh_only).await.expect("filtered");
    assert!(filtered.iter().all(|h| h.chunk.language == "zh"));
    store.remove_document("docs", "a.md").await.expect("remove");
    let docs = store.documents("docs").await.expect("documents");
    assert_eq!(docs.len(), 1);
    assert_eq!(store.stats().await.expect("stats").chunks, 1);
    let client_cleanup = store.clear(WITH_ML).await;
    assert!(client_cleanup.is_ok());
}

#[tokio::test]
async fn a_collection_without_the_multilingual_vector_asks_for_a_rebuild() {
    use qdrant_client::qdrant::{CreateCollectionBuilder, Distance, VectorParamsBuilder, VectorsConfigBuilder};
    let Some(url) = server() else { return };
    let collection = format!("supportbot-test-old-{}", std::process::id());
    let api_key = std::env::var("QDRANT_API_KEY").ok();
    // Built without the multilingual model (or by an earlier version): no multilingual vector.
    let client = qdrant_client::Qdrant::from_url(&url).api_key(api_key.clone()).build().expect("client");
    let mut vectors = VectorsConfigBuilder::default();
    vectors.add_named_vector_params("dense", VectorParamsBuilder::new(4, Distance::Cosine));
    client.create_collection(CreateCollectionBuilder::new(&collection).vectors_config(vectors)).await.expect("create");

    let opts =
        QdrantOptions { url, collection: collection.clone(), api_key, timeout: std::time::Duration::from_secs(10) };
    let store = QdrantStore::connect(&opts, None).await.expect("connect");
    let found = store.multilingual_search(&e5_unit(7), 5, &SearchFilter::default()).await.expect("no error");
    assert!(found.is_empty());
    let with_ml = StoredChunk {
        multilingual: Some(e5_unit(7)),
        ..chunk("b.md", "如何重置密码", vec![0.0, 1.0, 0.0, 0.0], "zh")
    };
    let err = store.upsert_chunks(vec![with_ml.clone()]).await.expect_err("old schema");
    assert!(err.to_string().contains("--rebuild"), "{err}");
    // A rebuild recreates the collection with the current schema.
    store.clear(WITH_ML).await.expect("clear");
    store.upsert_chunks(vec![with_ml]).await.expect("upsert after the rebuild");
    let found = store.multilingual_search(&e5_unit(7), 5, &SearchFilter::default()).await.expect("search");
    assert_eq!(found.len(), 1);
    client.delete_collection(&collection).await.expect("cleanup");
}
