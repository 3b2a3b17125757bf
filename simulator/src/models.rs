//! The canonical model table (CONTRACT.md section 1): Chutes name -> OpenRouter name.

pub use wire::models::CANONICAL_MODELS as MODELS;

/// Chutes model ids are matched exactly (as Chutes does).
pub fn chutes_model(name: &str) -> Option<&'static str> {
    MODELS.iter().find(|(c, _)| *c == name).map(|(c, _)| *c)
}

/// OpenRouter ids, plus the Chutes ids as aliases; answers the OpenRouter id.
pub fn openrouter_model(name: &str) -> Option<&'static str> {
    MODELS.iter().find(|(c, o)| *o == name || *c == name).map(|(_, o)| *o)
}
