//! supportbot-core: the domain of the support bot — documents and chunks, the embedders and the
//! knowledge index, hybrid retrieval, answering (the relevance gate, prompts, the language-model
//! chain, curated answers), the answer log and the review queue. It knows nothing of chat
//! platforms or HTTP servers.

pub mod answer;
pub mod curated;
pub mod document;
pub mod embed;
pub mod lang;
pub mod llm;
pub mod log;
pub mod program;
pub mod review;
pub mod search;
pub mod store;
pub mod wiring;
