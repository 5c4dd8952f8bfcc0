//! supportbot-ingest: turns files into documents (loaders), documents into chunks (chunker),
//! and keeps the knowledge index in sync with the source roots (sync planner, pipeline).

pub mod chunker;
pub mod cli;
pub mod loaders;
pub mod memory;
pub mod pipeline;
pub mod sync;
