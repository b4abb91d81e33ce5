//! The semantic tier's decision: a candidate entry answers a new question when the final user
//! messages are similar enough by meaning *and* the structural guard finds nothing that changes
//! the answer.

use crate::embed::cosine;
use crate::guard::{self, Veto};

/// The similarity at or above which a guarded candidate is served, for the default model
/// (potion-base-8M). Calibrated with `reprise eval` (README); each model needs its own.
pub const DEFAULT_THRESHOLD: f32 = 0.80;

/// What the semantic tier concluded about one candidate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub similarity: f32,
    pub veto: Option<Veto>,
    pub serve: bool,
}

/// Decides whether the answer cached for `cached` may answer `asked`.
pub fn decide(
    asked: &str,
    asked_embedding: &[f32],
    cached: &str,
    cached_embedding: &[f32],
    threshold: f32,
) -> Decision {
    let similarity = cosine(asked_embedding, cached_embedding);
    if similarity < threshold {
        return Decision {
            similarity,
            veto: None,
            serve: false,
        };
    }
    let veto = guard::check(asked, cached).err();
    Decision {
        similarity,
        veto,
        serve: veto.is_none(),
    }
}
