//! The browser bundle (the islands' JavaScript glue and WebAssembly, the stylesheet, the wallet
//! wrapper) under content-hashed names, read once at start, sent precompressed where the build
//! left `.br`/`.gz` siblings (`cargo leptos build --release --precompress`), and cached by
//! browsers for a year: a new build has new names, so nothing stale is ever served, and a
//! returning miner downloads nothing.

use std::collections::HashMap;
use std::path::Path;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// What the shell and the /docs page link to.
pub use app::AssetPaths;

/// One file, as it is on disk and as the build compressed it.
struct Asset {
    content_type: &'static str,
    identity: Bytes,
    gzip: Option<Bytes>,
    brotli: Option<Bytes>,
    etag: HeaderValue,
}

/// The site's hashed files, by URL path under `/pkg/`.
pub struct SiteAssets {
    files: HashMap<String, Asset>,
    /// The names the pages use; the unhashed ones when the site was not built.
    pub paths: AssetPaths,
    /// The bundle's name without extension (`oro.3f9a…`), which Leptos' island loader puts
    /// before `.js` and `.wasm`.
    pub bundle_name: Option<String>,
}

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

fn read(path: &Path) -> Option<Bytes> {
    std::fs::read(path).ok().map(Bytes::from)
}

/// A short content hash, safe in a file name.
fn digest(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hex::encode(&hasher.finalize()[..8])
}

impl SiteAssets {
    /// Reads the site under `site_root` (as `cargo leptos build` leaves it: `pkg/oro.js`,
    /// `pkg/oro.wasm` or `pkg/oro_bg.wasm`, `pkg/oro.css`, and our `oro.js` at the root). Any file
    /// missing (tests that never built the site) keeps its unhashed name, served from disk.
    pub fn load(site_root: &Path) -> Self {
        let pkg = site_root.join("pkg");
        let mut files = HashMap::new();
        let mut paths = AssetPaths::default();
        let mut add = |name: String, disk: &Path, content_type: &'static str, bytes: Bytes| {
            let with = |ext: &str| read(&disk.with_file_name(format!("{}.{ext}", disk.file_name().unwrap_or_default().to_string_lossy())));
            let etag = HeaderValue::from_str(&format!("\"{name}\"")).unwrap_or_else(|_| HeaderValue::from_static("\"oro\""));
            files.insert(name, Asset { content_type, gzip: with("gz"), brotli: with("br"), identity: bytes, etag });
        };

        let js = pkg.join("oro.js");
        let wasm = [pkg.join("oro.wasm"), pkg.join("oro_bg.wasm")].into_iter().find(|p| p.exists());
        let mut bundle_name = None;
        if let (Some(js_bytes), Some(wasm)) = (read(&js), wasm)
            && let Some(wasm_bytes) = read(&wasm)
        {
            let name = format!("oro.{}", digest(&[&js_bytes, &wasm_bytes]));
            add(format!("{name}.js"), &js, "text/javascript", js_bytes);
            // Leptos asks for `<name>_bg.wasm` from a server not built by cargo-leptos.
            add(format!("{name}_bg.wasm"), &wasm, "application/wasm", wasm_bytes.clone());
            add(format!("{name}.wasm"), &wasm, "application/wasm", wasm_bytes);
            bundle_name = Some(name);
        }
        let css = pkg.join("oro.css");
        if let Some(bytes) = read(&css) {
            let name = format!("oro.{}.css", digest(&[&bytes]));
            paths.stylesheet = format!("/pkg/{name}");
            add(name, &css, "text/css; charset=utf-8", bytes);
        }
        let wallet = site_root.join("oro.js");
        if let Some(bytes) = read(&wallet) {
            let name = format!("wallet.{}.js", digest(&[&bytes]));
            paths.wallet_script = format!("/pkg/{name}");
            add(name, &wallet, "text/javascript", bytes);
        }
        SiteAssets { files, paths, bundle_name }
    }

    /// The file at `/pkg/{name}`, in the best encoding the browser accepts.
    fn answer(&self, name: &str, request: &HeaderMap) -> Option<Response> {
        let asset = self.files.get(name)?;
        if request.get(header::IF_NONE_MATCH).is_some_and(|tag| tag == asset.etag) {
            return Some((StatusCode::NOT_MODIFIED, [(header::ETAG, asset.etag.clone())]).into_response());
        }
        let accepted = request.get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("");
        // `br;q=0` means "not br".
        let accepts = |coding: &str| {
            accepted.split(',').any(|part| {
                let mut fields = part.split(';').map(str::trim);
                fields.next().is_some_and(|c| c.eq_ignore_ascii_case(coding))
                    && fields.all(|p| p.strip_prefix("q=").is_none_or(|q| q.parse::<f32>().is_ok_and(|q| q > 0.0)))
            })
        };
        let (body, encoding) = match (&asset.brotli, &asset.gzip) {
            (Some(br), _) if accepts("br") => (br.clone(), Some("br")),
            (_, Some(gz)) if accepts("gzip") => (gz.clone(), Some("gzip")),
            _ => (asset.identity.clone(), None),
        };
        let mut response = (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type)),
                (header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE)),
                (header::VARY, HeaderValue::from_static("accept-encoding")),
                (header::ETAG, asset.etag.clone()),
            ],
            body,
        )
            .into_response();
        if let Some(encoding) = encoding {
            response.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
        }
        Some(response)
    }
}

/// `GET /pkg/{name}`: a hashed file from memory, or anything else under `pkg/` from disk
/// (unhashed names, for tools and old builds), revalidated on every use.
pub async fn serve(
    State(state): State<crate::startup::AppState>,
    UrlPath(name): UrlPath<String>,
    request: axum::extract::Request,
) -> Response {
    if let Some(answer) = state.assets.answer(&name, request.headers()) {
        return answer;
    }
    let site = std::path::PathBuf::from(state.leptos_options.site_root.as_ref());
    let mut response = match tower::ServiceExt::oneshot(tower_http::services::ServeDir::new(site.join("pkg")), request).await {
        Ok(response) => response.map(axum::body::Body::new),
        Err(never) => match never {},
    };
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system's temporary one.
    struct Dir(std::path::PathBuf);

    impl Dir {
        fn new() -> Self {
            let path = std::env::temp_dir().join(format!("oro-assets-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&path).unwrap();
            Dir(path)
        }

        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn site() -> Dir {
        let dir = Dir::new();
        std::fs::create_dir_all(dir.path().join("pkg")).unwrap();
        std::fs::write(dir.path().join("pkg/oro.js"), "export function hydrate() {}").unwrap();
        std::fs::write(dir.path().join("pkg/oro.wasm"), b"\0asm-identity").unwrap();
        std::fs::write(dir.path().join("pkg/oro.wasm.br"), b"brotli-bytes").unwrap();
        std::fs::write(dir.path().join("pkg/oro.wasm.gz"), b"gzip-bytes").unwrap();
        std::fs::write(dir.path().join("pkg/oro.css"), "body{}").unwrap();
        std::fs::write(dir.path().join("oro.js"), "window.oroWallet = {};").unwrap();
        dir
    }

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (k.clone(), HeaderValue::from_str(v).unwrap())).collect()
    }

    async fn body(response: Response) -> Vec<u8> {
        axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap().to_vec()
    }

    #[tokio::test]
    async fn hashed_files_go_out_compressed_and_cached_for_good() {
        let dir = site();
        let assets = SiteAssets::load(dir.path());
        let name = assets.bundle_name.clone().expect("the bundle is found");
        assert!(name.starts_with("oro.") && name.len() == "oro.".len() + 16, "{name}");
        assert!(assets.paths.stylesheet.starts_with("/pkg/oro.") && assets.paths.stylesheet.ends_with(".css"));
        assert!(assets.paths.wallet_script.starts_with("/pkg/wallet."));

        let wasm = format!("{name}.wasm");
        let br = assets.answer(&wasm, &headers(&[(header::ACCEPT_ENCODING, "gzip, deflate, br, zstd")])).unwrap();
        assert_eq!(br.headers()[header::CONTENT_ENCODING], "br");
        assert_eq!(br.headers()[header::CONTENT_TYPE], "application/wasm");
        assert_eq!(br.headers()[header::CACHE_CONTROL], IMMUTABLE);
        assert_eq!(br.headers()[header::VARY], "accept-encoding");
        let etag = br.headers()[header::ETAG].clone();
        assert_eq!(body(br).await, b"brotli-bytes");

        let gz = assets.answer(&wasm, &headers(&[(header::ACCEPT_ENCODING, "gzip, br;q=0")])).unwrap();
        assert_eq!(gz.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(body(gz).await, b"gzip-bytes");

        let plain = assets.answer(&wasm, &HeaderMap::new()).unwrap();
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        assert_eq!(body(plain).await, b"\0asm-identity");

        // Nothing compressed next to the glue: sent as it is, whatever the browser accepts.
        let js = assets.answer(&format!("{name}.js"), &headers(&[(header::ACCEPT_ENCODING, "br")])).unwrap();
        assert!(js.headers().get(header::CONTENT_ENCODING).is_none());
        assert_eq!(js.headers()[header::CONTENT_TYPE], "text/javascript");

        let again = assets.answer(&wasm, &headers(&[(header::IF_NONE_MATCH, etag.to_str().unwrap())])).unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert!(assets.answer("oro.wasm", &HeaderMap::new()).is_none(), "unhashed names are not the cached ones");
    }

    #[test]
    fn a_new_build_gets_new_names() {
        let dir = site();
        let before = SiteAssets::load(dir.path());
        std::fs::write(dir.path().join("pkg/oro.wasm"), b"\0asm-changed").unwrap();
        let after = SiteAssets::load(dir.path());
        assert_ne!(before.bundle_name, after.bundle_name);
        assert_eq!(before.paths.stylesheet, after.paths.stylesheet, "the stylesheet did not change");
    }

    #[test]
    fn without_a_built_site_the_plain_names_stay() {
        let dir = Dir::new();
        let assets = SiteAssets::load(dir.path());
        assert_eq!(assets.bundle_name, None);
        assert_eq!(assets.paths, AssetPaths::default());
    }
}
