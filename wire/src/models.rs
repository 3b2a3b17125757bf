//! The canonical model table (shared/CONTRACT.md section 1, from ORO's own proxy table):
//! each allowlisted model under its Chutes name and its OpenRouter name. The service seeds its
//! catalog from it; the provider simulator serves it as the providers' model lists.

/// Chutes name -> OpenRouter name. The first is the default model of a run's sandbox.
pub const CANONICAL_MODELS: [(&str, &str); 13] = [
    ("deepseek-ai/DeepSeek-V3.2-TEE", "deepseek/deepseek-v3.2"),
    ("deepseek-ai/DeepSeek-V3.1-TEE", "deepseek/deepseek-chat-v3.1"),
    ("deepseek-ai/DeepSeek-V3-0324-TEE", "deepseek/deepseek-chat-v3-0324"),
    ("deepseek-ai/DeepSeek-R1-0528-TEE", "deepseek/deepseek-r1-0528"),
    ("Qwen/Qwen3-32B-TEE", "qwen/qwen3-32b"),
    ("Qwen/Qwen3.5-397B-A17B-TEE", "qwen/qwen3.5-397b-a17b"),
    ("Qwen/Qwen3.6-27B-TEE", "qwen/qwen3.6-27b"),
    ("google/gemma-4-31B-turbo-TEE", "google/gemma-4-31b-it"),
    ("zai-org/GLM-5.1-TEE", "z-ai/glm-5.1"),
    ("zai-org/GLM-5.2-TEE", "z-ai/glm-5.2"),
    ("moonshotai/Kimi-K2.6-TEE", "moonshotai/kimi-k2.6"),
    ("XiaomiMiMo/MiMo-V2-Flash-TEE", "xiaomi/mimo-v2-flash"),
    ("openai/gpt-oss-120b-TEE", "openai/gpt-oss-120b"),
];
