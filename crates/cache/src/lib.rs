//! The cache engine: what makes two requests the same question, which requests may be answered
//! from the cache at all, how a streamed answer is assembled into one stored completion, and how
//! a stored completion is served again (as JSON or as a stream).
//!
//! It owns canonical request keys ([`keys`]), the cacheability policy and request directives
//! ([`policy`]), stream assembly and the never-store rules ([`assemble`]), replay of a stored
//! answer ([`replay`]) and the in-memory index of entries ([`index`]), each answer held as compact
//! text ([`stored`]); the Responses API's keys,
//! never-store rules and replay as events ([`responses`]); embeddings inputs' keys
//! ([`embeddings`]). It knows nothing of HTTP
//! or of the database: the gateway's pipeline calls it, and `reprise-storage` keeps the entries.

pub mod assemble;
pub mod embed;
pub mod embeddings;
pub mod guard;
pub mod index;
pub mod keys;
pub mod policy;
pub mod replay;
pub mod responses;
pub mod semantic;
pub mod stored;

pub use assemble::{Assembler, Storable, storable};
pub use index::{Bounds, Entry, ExactIndex};
pub use keys::{CacheKeys, Key};
pub use policy::{CacheControl, Cacheability, Policy};
pub use stored::Stored;
