//! The HTTP side: an unreachable server, and oro-sdk's retry rules (idempotent requests
//! retried on 503, others not), each try freshly signed.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_exits_1_with_a_clean_message() {
    let base = format!("http://127.0.0.1:{}", closed_port());
    let out = oro_against(&base, &["inference", "status"]).run().await;
    out.assert_code(1).assert_clean();
    assert!(out.stderr.starts_with(&format!("Error: cannot reach {base}: ")), "{}", out.stderr);
    assert!(out.stderr.to_lowercase().contains("refused"), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "one line, no trace: {}", out.stderr);
}

/// A server that answers every request `503 {"detail":"busy"}` and keeps each request head.
async fn busy_server() -> (String, Arc<Mutex<Vec<String>>>) {
    let body = r#"{"detail":"busy"}"#;
    canned_server(format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ))
    .await
}

/// A server that answers every request with `answer` and keeps each request head.
async fn canned_server(answer: String) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let (seen, answer) = (seen.clone(), answer.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    let Ok(n) = stream.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    head.extend_from_slice(&buf[..n]);
                }
                seen.lock().unwrap().push(String::from_utf8_lossy(&head).into_owned());
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    (base, heads)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gets_are_retried_on_503_and_patches_are_not() {
    let (base, heads) = busy_server().await;
    let out = oro_against(&base, &["inference", "status"]).run().await;
    out.assert_code(1).assert_clean();
    assert_eq!(out.stderr, "Error (HTTP 503): busy\n");
    let gets = heads.lock().unwrap().clone();
    assert_eq!(gets.len(), 4, "one try and three retries");
    let nonces: std::collections::HashSet<_> = gets.iter().map(|h| header(h, "x-nonce").unwrap().to_owned()).collect();
    assert_eq!(nonces.len(), 4, "every try is signed afresh");
    for head in &gets {
        assert!(head.starts_with("GET /v1/miner/inference-auth HTTP/1.1"), "{head}");
        assert_eq!(header(head, "x-hotkey"), Some(wallets().plain_ss58.as_str()));
        assert_eq!(header(head, "x-signature").unwrap().len(), 130);
        assert!(header(head, "x-timestamp").unwrap().parse::<u64>().is_ok());
    }

    heads.lock().unwrap().clear();
    let out = oro_against(&base, &["inference", "set-default", "chutes"]).run().await;
    out.assert_code(1);
    let patches = heads.lock().unwrap().clone();
    assert_eq!(patches.len(), 1, "PATCH is not retried after an answer");
    assert!(patches[0].starts_with("PATCH /v1/miner/inference-auth/default HTTP/1.1"));
}

/// A redirect is never followed: it would re-send the signature and the pasted key, perhaps
/// to another host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_not_followed() {
    let (elsewhere, reached) = busy_server().await;
    let (base, _) = canned_server(format!(
        "HTTP/1.1 307 Temporary Redirect\r\nlocation: {elsewhere}/v1/miner/inference-auth/openrouter\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    ))
    .await;
    let key = format!("sk-or-v1-{}", "0".repeat(64));
    let out = oro_against(&base, &["inference", "connect", "openrouter", "--api-key", &key]).run().await;
    assert_ne!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(!out.stdout.contains("Connected"), "{}", out.stdout);
    assert!(reached.lock().unwrap().is_empty(), "the redirect was followed: {:?}", reached.lock().unwrap());
}
