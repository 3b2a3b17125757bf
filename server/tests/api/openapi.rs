//! The OpenAPI document (`/openapi.json`), the reference page (`/docs`), and a client generated
//! from the document by openapi-python-client, compared with oro-sdk's and driven against us.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use reqwest::Method;
use serde_json::Value;
use tokio::process::Command;

use crate::both_engines;
use crate::helpers::*;

const AGENT: &str = "def run(task):\n    return 'hello'\n";

async fn document(app: &TestApp) -> Value {
    let answer = app.client.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-type"], "application/json");
    answer.json().await.unwrap()
}

fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item[method].is_object() {
                found.push((method.to_uppercase(), path.clone(), item[method].clone()));
            }
        }
    }
    found
}

/// Every documented operation exists with its method, and is protected exactly when the
/// document says so: called without credentials, a secured one answers 401 and an open one
/// anything but 401, 404 or 405. A route renamed or moved in the code fails here.
async fn every_documented_operation_is_served_as_documented(backend: Backend) {
    let app = spawn_app(backend).await;
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let gateway_root = app.services.settings.gateway_base_url().trim_end_matches("/v1").to_owned();
    let operations = operations(&doc);
    assert!(operations.len() >= 30, "{} operations", operations.len());
    for (method, path, op) in &operations {
        let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
        let on_gateway = doc["paths"][path]["servers"][0]["url"].as_str().is_some();
        let root = if on_gateway { gateway_root.clone() } else { app.address.clone() };
        // Path parameters get a well-formed value, so that the route, not the id, is tested.
        let concrete = path
            .replace("{provider}", "openrouter")
            .replace("{eval_run_id}", &uuid::Uuid::new_v4().to_string())
            .replace("{agent_id}", &uuid::Uuid::new_v4().to_string())
            .replace("{agent_version_id}", &uuid::Uuid::new_v4().to_string());
        assert!(!concrete.contains('{'), "a path parameter this test does not know: {path}");
        let url = format!("{root}{concrete}");
        let mut request = app.client.request(Method::from_bytes(method.as_bytes()).unwrap(), &url);
        if method != "GET" && method != "DELETE" {
            request = request.header("content-type", "application/json").body("{}");
        }
        let status = request.send().await.unwrap().status().as_u16();
        if secured {
            assert_eq!(status, 401, "{method} {path} is documented as authenticated");
        } else {
            assert!(![401, 404, 405].contains(&status), "{method} {path} is documented as open, answered {status}");
        }
        assert!(op["operationId"].is_string() && op["tags"][0].is_string(), "{method} {path}: an operationId and a tag");
        for (code, response) in op["responses"].as_object().unwrap() {
            assert!(!response["description"].as_str().unwrap_or_default().is_empty(), "{method} {path} {code}: a description");
        }
    }
    // The gateway's routes carry their own server entry, the gateway listener's.
    assert_eq!(doc["paths"]["/v1/chat/completions"]["servers"][0]["url"], gateway_root.as_str());
    assert_eq!(doc["servers"][0]["url"], app.address.as_str());
}

/// Each route the code declares (`.route("...")` in the REST modules and the gateway) is in the
/// document, apart from ORO's backend's placeholders, the document's own routes and the
/// browser bundle's files (`/pkg/…`, not an API).
#[test]
fn every_declared_route_is_documented() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let settings = test_settings();
    let doc = serde_json::to_value(server::http::openapi::document(&settings)).unwrap();
    let documented: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    let undocumented = ["/metrics", "/openapi.json", "/docs", "/v1/{*rest}", "/pkg/{name}"];
    let mut checked = 0;
    for file in
        ["src/http/public.rs", "src/http/auth_routes.rs", "src/http/miner.rs", "src/http/validator.rs", "src/http/mod.rs", "src/gateway.rs"]
    {
        let source = std::fs::read_to_string(root.join(file)).unwrap();
        for declared in source.split(".route(\"").skip(1).filter_map(|rest| rest.split('"').next()) {
            if undocumented.contains(&declared) {
                continue;
            }
            assert!(documented.iter().any(|p| p.as_str() == declared), "{file} declares {declared}, which /openapi.json lacks");
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} routes found: has the router's shape changed?");
}

/// Secrets going in are write-only passwords, secrets coming out are marked as passwords, and
/// no example in the document looks like a credential.
#[test]
fn secrets_are_marked_and_never_exemplified() {
    let doc = serde_json::to_value(server::http::openapi::document(&test_settings())).unwrap();
    let schemas = &doc["components"]["schemas"];
    for (schema, field) in [
        ("StoreInferenceCredentialRequest", "credential"),
        ("StoreChutesTokenRequest", "refresh_token"),
        ("ExchangeChutesCodeRequest", "code_verifier"),
        ("ExchangeChutesCodeRequest", "code"),
    ] {
        let property = &schemas[schema]["properties"][field];
        assert_eq!(property["writeOnly"], true, "{schema}.{field}");
        assert_eq!(property["format"], "password", "{schema}.{field}");
    }
    for (schema, field) in [
        ("SessionAnswer", "session_token"),
        ("InferenceToken", "access_token"),
        ("ClaimWorkResponse", "chutes_access_token"),
        ("SandboxEnv", "INFERENCE_ACCESS_TOKEN"),
    ] {
        let property = &schemas[schema]["properties"][field];
        assert_eq!(property["format"], "password", "{schema}.{field}");
        assert_eq!(property["readOnly"], true, "{schema}.{field}");
    }
    // Every property named like a secret is marked, wherever it is.
    for (name, schema) in schemas.as_object().unwrap() {
        for (field, property) in schema["properties"].as_object().into_iter().flatten() {
            let lower = field.to_ascii_lowercase();
            if ["credential", "secret", "refresh_token", "access_token", "session_token", "verifier"].iter().any(|s| lower.contains(s)) {
                assert_eq!(property["format"], "password", "{name}.{field} looks secret but is not marked");
            }
        }
    }
    // No example is a credential, and no text holds anything shaped like a whole one (the
    // descriptions may name a key's prefix, `sk-or-v1-...`, to say what to paste).
    fn examples<'a>(value: &'a Value, found: &mut Vec<&'a Value>) {
        match value {
            Value::Object(map) => {
                for (key, inner) in map {
                    if key == "example" || key == "examples" {
                        found.push(inner);
                    }
                    examples(inner, found);
                }
            }
            Value::Array(items) => items.iter().for_each(|item| examples(item, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    examples(&doc, &mut found);
    for example in found {
        let text = example.to_string();
        for prefix in ["sk-or-", "oro-run-", "cpat_", "eyJ", "0x"] {
            assert!(!text.contains(prefix), "an example looks like a credential: {text}");
        }
    }
    let text = doc.to_string();
    for (i, _) in text.match_indices("sk-or-v1-") {
        let after: String = text[i + 9..].chars().take(8).collect();
        assert!(!after.chars().all(|c| c.is_ascii_hexdigit()), "the document holds a whole OpenRouter key: sk-or-v1-{after}...");
    }
    assert!(!text.contains("oro-run-0") && !text.contains("cpat_"), "the document holds a credential");
}

/// `/docs` renders the same document as plain HTML under a strict CSP, with every operation,
/// and with nothing loaded from elsewhere.
async fn reference_page_renders_every_operation(backend: Backend) {
    let app = spawn_app(backend).await;
    let doc = document(&app).await;
    let answer = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let csp = answer.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("default-src 'none'") && csp.contains("style-src 'self'") && !csp.contains("script-src"), "{csp}");
    assert!(answer.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let page = answer.text().await.unwrap();
    for (method, path, op) in operations(&doc) {
        let id = op["operationId"].as_str().unwrap();
        assert!(page.contains(&format!("id=\"op-{id}\"")), "/docs lacks {method} {path}");
        assert!(page.contains(&path.replace('&', "&amp;")), "/docs lacks the path {path}");
    }
    for name in doc["components"]["schemas"].as_object().unwrap().keys() {
        assert!(page.contains(&format!("id=\"schema-{name}\"")), "/docs lacks the schema {name}");
    }
    assert!(!page.contains("<script"), "the reference page runs no script");
    for attribute in ["src=\"http", "href=\"http", "url(http"] {
        assert!(!page.contains(attribute), "the reference page loads {attribute}...");
    }
    assert!(page.contains("href=\"/pkg/oro.css\""));
    // The site's header links to it (the page server-renders the same header).
    let home = app.client.get(app.url("/")).send().await.unwrap().text().await.unwrap();
    assert!(home.contains("href=\"/docs\""), "the site's header links the API reference");
}

/// The defaults, as a fresh deployment has them.
fn test_settings() -> service::Settings {
    service::Settings::from_vars(&std::collections::HashMap::new()).unwrap()
}

fn sdk_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv-oro")
}

fn newest_release() -> String {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oro_sdk/versions.txt")).unwrap();
    text.lines().map(str::trim).rfind(|l| !l.is_empty() && !l.starts_with('#')).unwrap().split_whitespace().next().unwrap().to_owned()
}

fn installed(path: PathBuf) -> PathBuf {
    assert!(path.exists(), "{} is missing: `./dev test` installs it (server/tests/oro_sdk/install.sh)", path.display());
    path
}

/// openapi-python-client generates a client from our document; its operations match the newest
/// oro-sdk's wherever oro-sdk has the route (and the rest is ORO's backend's, by name); then
/// the generated client connects, submits, opens a session and claims against the server.
async fn generated_client_matches_oro_sdk_and_works(backend: Backend) {
    let app = spawn_app(backend).await;
    let release = newest_release();
    let python = installed(sdk_root().join(&release).join("bin/python"));
    let generator = installed(sdk_root().join("openapi/bin/openapi-python-client"));
    let work = std::env::temp_dir().join(format!("oro-openapi-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&work).unwrap();

    // Wallets made by bittensor_wallet itself, the validator's put in the validator set.
    let hotkeys = bittensor_wallets(&python, &work, &["miner", "validator"]).await;
    app.add_validator(&hotkeys[1], "generated client").await;

    let key = app.sim.create_openrouter_account(50.0);
    let expect = serde_json::json!({"openrouter_key": key, "model_count": wire::models::CANONICAL_MODELS.len(), "agent_code": AGENT});
    let out = Command::new(&python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openapi/generated_client.py"))
        .arg(&app.address)
        .arg(app.services.settings.gateway_base_url().trim_end_matches("/v1"))
        .env("HOME", &work)
        .env("ORO_WORKDIR", &work)
        .env("ORO_GENERATOR", &generator)
        .env("ORO_EXPECT", expect.to_string())
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "generated_client.py with oro-sdk {release}:\n{stdout}\n{stderr}");
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap_or_else(|_| panic!("{stdout}"));
    eprintln!("generated client with oro-sdk {release}: {seen}");
    // Every inference route oro-sdk knows (connect, status, default, disconnect, Chutes, submit,
    // agents, auth, claim, heartbeat, progress, complete, health, models) is shared.
    assert!(seen["shared_operations"].as_u64().unwrap() >= 22, "{seen}");

    // The server agrees with what the generated client saw: the submitted run is the one claimed.
    let run = seen["eval_run_id"].as_str().unwrap();
    let (status, provider): (String, Option<String>) =
        sqlx::query_as("SELECT status, provider FROM eval_runs WHERE id = $1").bind(run).fetch_one(app.services.db.pool()).await.unwrap();
    assert_eq!((status.as_str(), provider.as_deref()), ("running", Some("openrouter")));
    let logs = captured_logs();
    assert!(!logs.contains(&key), "the OpenRouter key reached a log line");
    let _ = std::fs::remove_dir_all(&work);
}

/// schemathesis (PyPI) generates requests from the document for every REST operation, signed
/// by a real wallet, and checks each answer against it: a documented status, content type,
/// headers and body schema, and never a 5xx from our own code. A route whose answers drift
/// from its attributes fails here.
async fn every_answer_matches_the_document(backend: Backend) {
    let app = spawn_app_with(
        backend,
        AppOptions {
            // Refusals are the point of many cases: they must not be held back or banned.
            extra: vec![
                ("ORO_REFUSAL_HOLD_MS", "0".into()),
                ("ORO_RATE_LIMIT_FAILED_AUTH_PER_IP", "100000/min".into()),
                ("ORO_RATE_LIMIT_SIGNED_PER_IP", "100000/min".into()),
            ],
            ..Default::default()
        },
    )
    .await;
    let schemathesis = installed(sdk_root().join("schemathesis/bin/schemathesis"));
    let python = installed(sdk_root().join(newest_release()).join("bin/python"));
    let work = std::env::temp_dir().join(format!("oro-schemathesis-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&work).unwrap();
    let caller = bittensor_wallets(&python, &work, &["caller"]).await.remove(0);
    // A validator may call the miner routes too: one wallet reaches every operation.
    app.add_validator(&caller, "schemathesis").await;

    let checks =
        "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance";
    let out = Command::new(&schemathesis)
        .args(["run", &app.url("/openapi.json"), "--url", &app.address, "--max-examples", "10", "--seed", "1", "--checks", checks])
        // The gateway's operations live on their own server; gateway.rs tests them with real clients.
        .args(["--exclude-path-regex", "^/v1/(chat/completions|completions|models)$", "--phases", "coverage,fuzzing", "--no-color"])
        .current_dir(&work)
        .env("HOME", &work)
        .env("ORO_ST_WALLET", "caller")
        .env("PYTHONPATH", Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openapi"))
        .env("SCHEMATHESIS_HOOKS", "schemathesis_hooks")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found answers that differ from the document:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tested = stdout.lines().find(|l| l.trim_start().starts_with("Tested:")).unwrap_or_default().trim().to_owned();
    eprintln!("schemathesis: {tested}; {}", stdout.lines().find(|l| l.contains("generated")).unwrap_or_default().trim());
    assert_eq!(tested, "Tested: 31", "schemathesis tested another number of operations than the document's REST ones\n{stdout}");
    let _ = std::fs::remove_dir_all(&work);
}

both_engines!(
    every_documented_operation_is_served_as_documented,
    reference_page_renders_every_operation,
    generated_client_matches_oro_sdk_and_works,
    every_answer_matches_the_document
);
