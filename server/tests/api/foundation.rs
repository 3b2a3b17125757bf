use crate::both_engines;
use crate::helpers::*;

async fn health_and_readiness(backend: Backend) {
    let app = spawn_app(backend).await;
    let health = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    let ready = app.client.get(app.url("/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.json::<serde_json::Value>().await.unwrap()["database"], "ok");
    // Security headers ride on every answer.
    assert_eq!(health_headers(&app).await, ("nosniff".to_string(), "DENY".to_string()));
}

async fn health_headers(app: &TestApp) -> (String, String) {
    let r = app.client.get(app.url("/health")).send().await.unwrap();
    let h = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (h("x-content-type-options"), h("x-frame-options"))
}

async fn pages_render_on_the_server(backend: Backend) {
    let app = spawn_app(backend).await;
    for (path, expect) in [
        ("/", "Connect wallet"),
        ("/models", "deepseek-ai/DeepSeek-V3.2-TEE"),
        ("/dashboard", "Dashboard"),
        ("/oauth/chutes/callback", "Connecting Chutes"),
    ] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let html = response.text().await.unwrap();
        assert!(html.contains(expect), "{path} should contain {expect:?}");
        assert!(html.contains("/pkg/oro"), "{path} loads the hydration bundle");
    }
    // The models page lists the OpenRouter names side by side.
    let html = app.client.get(app.url("/models")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("z-ai/glm-5.1"));
    let missing = app.client.get(app.url("/no-such-page")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}

async fn public_model_list_matches_the_contract(backend: Backend) {
    let app = spawn_app(backend).await;
    let chutes: serde_json::Value = app.client.get(app.url("/v1/public/inference/models")).send().await.unwrap().json().await.unwrap();
    let names: Vec<&str> = chutes["models"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
    assert_eq!(names.len(), 13);
    assert_eq!(names[0], "deepseek-ai/DeepSeek-V3.2-TEE", "the SDK's default provider is chutes");
    assert!(names.contains(&"openai/gpt-oss-120b-TEE"));

    let response = app.client.get(app.url("/v1/public/inference/models?provider=openrouter&ranked=false")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    assert!(response.headers()["cache-control"].to_str().unwrap().contains("max-age"));
    let openrouter: serde_json::Value = response.json().await.unwrap();
    assert!(openrouter["models"].as_array().unwrap().iter().any(|m| m == "moonshotai/kimi-k2.6"));
    assert_eq!(openrouter["aliases"]["zai-org/GLM-5.1-TEE"], "z-ai/glm-5.1");
    assert_eq!(openrouter["aliases"].as_object().unwrap().len(), 13);

    let revalidated = app
        .client
        .get(app.url("/v1/public/inference/models?provider=openrouter&ranked=false"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), 304);

    let ranked: serde_json::Value =
        app.client.get(app.url("/v1/public/inference/models?provider=chutes&ranked=true")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ranked["models"][0]["id"], "deepseek-ai/DeepSeek-V3.2-TEE");
    assert_eq!(ranked["models"][0]["healthy"], true);
    assert!(ranked["as_of"].as_str().unwrap().ends_with("+00:00"));

    let bad = app.client.get(app.url("/v1/public/inference/models?provider=anthropic")).send().await.unwrap();
    assert_eq!(bad.status(), 422);
    let body: serde_json::Value = bad.json().await.unwrap();
    assert_eq!(body["detail"][0]["loc"][1], "provider");

    // An operator edit shows up in the list (and changes the ETag).
    app.services.catalog_add("acme/Model-X-TEE", "acme/model-x").await.unwrap();
    let after = app.client.get(app.url("/v1/public/inference/models?provider=openrouter")).send().await.unwrap();
    assert_ne!(after.headers()["etag"].to_str().unwrap(), etag);
    let after: serde_json::Value = after.json().await.unwrap();
    assert_eq!(after["models"].as_array().unwrap().len(), 14);
}

both_engines!(health_and_readiness, pages_render_on_the_server, public_model_list_matches_the_contract);

#[test]
fn bad_configuration_stops_with_one_line_naming_the_variable() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_server")).env("ORO_BIND", "not-an-address").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("ORO_BIND"));
}
