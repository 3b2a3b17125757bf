//! The allowlisted models: one canonical set, each under its Chutes and its OpenRouter name.
