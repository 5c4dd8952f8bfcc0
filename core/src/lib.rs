//! supportbot-core: the domain of the support bot — documents and chunks, the embedder and the
//! knowledge index, and hybrid retrieval. It knows nothing of chat platforms or HTTP servers.

pub mod answer;
pub mod curated;
pub mod document;
pub mod embed;
pub mod lang;
pub mod llm;
pub mod log;
pub mod review;
pub mod search;
pub mod store;
pub mod wiring;
