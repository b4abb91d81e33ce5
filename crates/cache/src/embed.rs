//! The embedder: text to a unit vector, in-process. The default is a static model2vec model
//! (potion-base-8M: 256 dimensions, about a microsecond per short query on one core), loaded
//! from a local directory that `scripts/fetch-model` fills and verifies.

use std::path::Path;

/// Turns text into an L2-normalised vector.
pub trait Embedder: Send + Sync + std::fmt::Debug {
    fn embed(&self, text: &str) -> Vec<f32>;
    /// The vector of a question as the semantic tier compares it: of the text
    /// [`guard::embedded`](crate::guard::embedded) leaves (no greeting or thanks, names spelled
    /// out), which every place that embeds a question must use alike.
    fn embed_question(&self, question: &str) -> Vec<f32> {
        self.embed(&crate::guard::embedded(question))
    }
    fn dim(&self) -> usize;
    /// A short name of the model, recorded with calibration figures.
    fn name(&self) -> &str;
}

#[derive(Debug, thiserror::Error)]
#[error("cannot load the embedding model from {dir}: {reason}")]
pub struct LoadError {
    pub dir: String,
    pub reason: String,
}

/// A model2vec static embedding model.
pub struct Model2Vec {
    model: model2vec_rs::model::StaticModel,
    name: String,
}

impl std::fmt::Debug for Model2Vec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model2Vec")
            .field("name", &self.name)
            .finish()
    }
}

impl Model2Vec {
    /// Loads `config.json`, `tokenizer.json` and `model.safetensors` from `dir`. Never reaches
    /// the network.
    pub fn load(dir: &Path) -> Result<Self, LoadError> {
        let err = |reason: String| LoadError {
            dir: dir.display().to_string(),
            reason,
        };
        for file in ["config.json", "tokenizer.json", "model.safetensors"] {
            if !dir.join(file).is_file() {
                return Err(err(format!(
                    "{file} is missing (run scripts/fetch-model, or set cache.model_dir)"
                )));
            }
        }
        let model = model2vec_rs::model::StaticModel::from_pretrained(dir, None, Some(true), None)
            .map_err(|e| err(format!("{e:#}")))?;
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model2vec".to_owned());
        Ok(Self { model, name })
    }
}

impl Embedder for Model2Vec {
    fn embed(&self, text: &str) -> Vec<f32> {
        self.model.encode_single(text)
    }

    fn dim(&self) -> usize {
        self.model.dim()
    }

    fn name(&self) -> &str {
        &self.name
    }
}

/// Cosine similarity of two unit vectors; 0 when either is all zeros (model2vec gives zeros
/// for empty or emoji-only text, which must never look similar to anything).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na <= f32::EPSILON || nb <= f32::EPSILON {
        return 0.0;
    }
    dot / (na.sqrt() * nb.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default model, when `scripts/fetch-model` has fetched it (as `scripts/test` does).
    pub fn default_model() -> Model2Vec {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/potion-base-8M");
        Model2Vec::load(&dir).expect("run scripts/fetch-model first (scripts/test does)")
    }

    #[test]
    fn embeds_to_unit_vectors_and_guards_zero_vectors() {
        let m = default_model();
        assert_eq!(m.dim(), 256);
        let a = m.embed("How do I reverse a list in Python?");
        let b = m.embed("What is the way to reverse a Python list?");
        let c = m.embed("Best hiking trails near Lyon");
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "{norm}");
        assert!(cosine(&a, &b) > cosine(&a, &c));
        let empty = m.embed("");
        assert_eq!(cosine(&empty, &a), 0.0);
        assert_eq!(cosine(&empty, &empty), 0.0);
    }

    #[test]
    fn a_missing_model_is_a_clear_error() {
        let err = Model2Vec::load(Path::new("/nonexistent/model")).unwrap_err();
        assert!(err.to_string().contains("fetch-model"), "{err}");
    }
}
