//! `GET /docs`: the API reference, rendered on the server from the same OpenAPI document as
//! `/openapi.json`. Plain HTML and the site's stylesheet: no script, no CDN, nothing the
//! page's CSP has to allow beyond our own stylesheet, readable offline and by keyboard
//! (operations are `<details>`).

use std::fmt::Write;

use serde_json::Value;

/// The page's policy: our stylesheet and nothing else.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const TAG_ORDER: [&str; 5] = ["public", "auth", "miner", "validator", "gateway"];

pub fn render(doc: &Value, stylesheet: &str) -> String {
    let mut html = String::with_capacity(64 * 1024);
    let title = text(&doc["info"]["title"]);
    let version = text(&doc["info"]["version"]);
    let _ = write!(
        html,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><meta name=\"color-scheme\" content=\"light dark\">\
         <link rel=\"icon\" href=\"/favicon.svg\" type=\"image/svg+xml\"><link rel=\"stylesheet\" href=\"{css}\">\
         <title>API reference · {t}</title></head><body>\
         <a class=\"skip-link\" href=\"#main\">Skip to content</a>\
         <header class=\"site-header\"><nav aria-label=\"Main\"><a href=\"/\" class=\"brand\">ORO inference</a>\
         <a href=\"/dashboard\">Dashboard</a><a href=\"/models\">Models</a><a href=\"/docs\" aria-current=\"page\">API</a></nav></header>\
         <main id=\"main\" tabindex=\"-1\" class=\"api-docs\"><h1>API reference</h1>\
         <p>{t} {v}, OpenAPI {o}. The document itself: <a href=\"/openapi.json\"><code>/openapi.json</code></a> \
         (generate a client from it, e.g. with <code>openapi-python-client</code>).</p>",
        t = esc(&title),
        css = esc(stylesheet),
        v = esc(&version),
        o = esc(&text(&doc["openapi"])),
    );
    let _ = write!(html, "<div class=\"api-intro\">{}</div>", paragraphs(&text(&doc["info"]["description"])));
    servers(&mut html, doc);
    security(&mut html, doc);

    // Contents, then one section per tag, in the order a newcomer needs them.
    let tags = tags(doc);
    html.push_str("<nav aria-label=\"Sections\"><h2>Contents</h2><ul>");
    for (name, _) in &tags {
        let _ = write!(html, "<li><a href=\"#tag-{n}\">{n}</a></li>", n = esc(name));
    }
    html.push_str("<li><a href=\"#schemas\">Schemas</a></li></ul></nav>");
    for (tag, description) in &tags {
        let _ = write!(
            html,
            "<section aria-labelledby=\"tag-{t}\"><h2 id=\"tag-{t}\">{t}</h2><p>{d}</p>",
            t = esc(tag),
            d = inline(description)
        );
        for (path, method, op, path_item) in operations(doc, tag) {
            operation(&mut html, path, method, op, path_item);
        }
        html.push_str("</section>");
    }
    schemas(&mut html, doc);
    html.push_str("</main></body></html>");
    html
}

fn tags(doc: &Value) -> Vec<(String, String)> {
    let mut tags: Vec<(String, String)> =
        doc["tags"].as_array().into_iter().flatten().map(|t| (text(&t["name"]), text(&t["description"]))).collect();
    tags.sort_by_key(|(name, _)| TAG_ORDER.iter().position(|t| t == name).unwrap_or(TAG_ORDER.len()));
    tags
}

fn operations<'a>(doc: &'a Value, tag: &str) -> Vec<(&'a str, &'a str, &'a Value, &'a Value)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for method in ["get", "post", "put", "patch", "delete"] {
            let op = &item[method];
            if op.is_object() && op["tags"].as_array().is_some_and(|t| t.iter().any(|t| t == tag)) {
                found.push((path.as_str(), method, op, item));
            }
        }
    }
    found
}

fn servers(html: &mut String, doc: &Value) {
    html.push_str("<h2>Servers</h2><ul>");
    for server in doc["servers"].as_array().into_iter().flatten() {
        let _ = write!(html, "<li><code>{}</code>: the API and the pages</li>", esc(&text(&server["url"])));
    }
    let gateway = doc["paths"]["/v1/chat/completions"]["servers"][0]["url"].as_str();
    if let Some(url) = gateway {
        let _ = write!(html, "<li><code>{}</code>: the run gateway (its own listener)</li>", esc(url));
    }
    html.push_str("</ul>");
}

fn security(html: &mut String, doc: &Value) {
    html.push_str("<h2>Authentication</h2><dl>");
    for (name, scheme) in doc["components"]["securitySchemes"].as_object().into_iter().flatten() {
        let kind = match text(&scheme["type"]).as_str() {
            "apiKey" => format!("header <code>{}</code>", esc(&text(&scheme["name"]))),
            "http" => format!("<code>Authorization: {} …</code>", esc(&capitalize(&text(&scheme["scheme"])))),
            other => esc(other),
        };
        let _ = write!(html, "<dt><code>{}</code> ({kind})</dt><dd>{}</dd>", esc(name), inline(&text(&scheme["description"])));
    }
    html.push_str(
        "</dl><p>Miner and validator routes take either all four signed-request headers or a bearer session; \
         the gateway takes a run token.</p>",
    );
}

fn operation(html: &mut String, path: &str, method: &str, op: &Value, path_item: &Value) {
    let id = text(&op["operationId"]);
    let _ = write!(
        html,
        "<details class=\"api-op\" id=\"op-{id}\"><summary><span class=\"api-method api-{m}\">{M}</span> <code>{p}</code> \
         <span class=\"api-summary\">{s}</span></summary>",
        id = esc(&id),
        m = method,
        M = method.to_uppercase(),
        p = esc(path),
        s = esc(&text(&op["summary"])),
    );
    if let Some(description) = op["description"].as_str() {
        let _ = write!(html, "{}", paragraphs(description));
    }
    if let Some(url) = path_item["servers"][0]["url"].as_str() {
        let _ = write!(html, "<p>Server: <code>{}</code></p>", esc(url));
    }
    let _ = write!(html, "<p class=\"api-meta\">Operation <code>{}</code>. {}</p>", esc(&id), auth_line(op));

    let parameters = op["parameters"].as_array().map(Vec::as_slice).unwrap_or_default();
    if !parameters.is_empty() {
        html.push_str("<h4>Parameters</h4><table><thead><tr><th scope=\"col\">Name</th><th scope=\"col\">In</th><th scope=\"col\">Type</th><th scope=\"col\">Description</th></tr></thead><tbody>");
        for p in parameters {
            let required = if p["required"].as_bool() == Some(true) { " <small>(required)</small>" } else { "" };
            let _ = write!(
                html,
                "<tr><td><code>{}</code>{required}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&text(&p["name"])),
                esc(&text(&p["in"])),
                type_of(&p["schema"]),
                inline(&text(&p["description"])),
            );
        }
        html.push_str("</tbody></table>");
    }
    if let Some(content) = op["requestBody"]["content"].as_object() {
        let required = if op["requestBody"]["required"].as_bool() == Some(true) { "required" } else { "optional" };
        let _ = write!(html, "<h4>Body ({required})</h4><ul>");
        for (media, body) in content {
            let _ = write!(html, "<li><code>{}</code>: {}</li>", esc(media), type_of(&body["schema"]));
        }
        html.push_str("</ul>");
        if let Some(description) = op["requestBody"]["description"].as_str() {
            let _ = write!(html, "<p>{}</p>", inline(description));
        }
    }
    html.push_str("<h4>Answers</h4><table><thead><tr><th scope=\"col\">Status</th><th scope=\"col\">Body</th><th scope=\"col\">When</th></tr></thead><tbody>");
    let mut responses: Vec<_> = op["responses"].as_object().into_iter().flatten().collect();
    responses.sort_by(|a, b| a.0.cmp(b.0));
    for (status, response) in responses {
        let body = response["content"]
            .as_object()
            .map(|c| {
                c.iter()
                    .map(|(media, b)| format!("{} <small>{}</small>", type_of(&b["schema"]), esc(media)))
                    .collect::<Vec<_>>()
                    .join("<br>")
            })
            .unwrap_or_else(|| "none".to_owned());
        let _ = write!(html, "<tr><td>{}</td><td>{body}</td><td>{}</td></tr>", esc(status), inline(&text(&response["description"])));
    }
    html.push_str("</tbody></table></details>");
}

fn auth_line(op: &Value) -> String {
    let Some(requirements) = op["security"].as_array() else {
        return "No authentication.".to_owned();
    };
    let alternatives: Vec<String> = requirements
        .iter()
        .filter_map(Value::as_object)
        .map(|req| req.keys().map(|k| format!("<code>{}</code>", esc(k))).collect::<Vec<_>>().join(" + "))
        .collect();
    format!("Authentication: {}.", alternatives.join(" or "))
}

fn schemas(html: &mut String, doc: &Value) {
    html.push_str("<section aria-labelledby=\"schemas\"><h2 id=\"schemas\">Schemas</h2>");
    for (name, schema) in doc["components"]["schemas"].as_object().into_iter().flatten() {
        let _ = write!(html, "<section class=\"api-schema\" id=\"schema-{n}\"><h3>{n}</h3>", n = esc(name));
        if let Some(description) = schema["description"].as_str() {
            let _ = write!(html, "{}", paragraphs(description));
        }
        if let Some(properties) = schema["properties"].as_object() {
            let required: Vec<&str> = schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            html.push_str("<table><thead><tr><th scope=\"col\">Field</th><th scope=\"col\">Type</th><th scope=\"col\">Description</th></tr></thead><tbody>");
            for (field, property) in properties {
                let mut notes = Vec::new();
                if required.contains(&field.as_str()) {
                    notes.push("required");
                }
                if property["writeOnly"].as_bool() == Some(true) {
                    notes.push("secret, sent only");
                } else if property["format"] == "password" {
                    notes.push("secret");
                }
                let notes = if notes.is_empty() { String::new() } else { format!(" <small>({})</small>", notes.join(", ")) };
                let _ = write!(
                    html,
                    "<tr><td><code>{}</code>{notes}</td><td>{}</td><td>{}</td></tr>",
                    esc(field),
                    type_of(property),
                    inline(&text(&property["description"])),
                );
            }
            html.push_str("</tbody></table>");
        } else {
            let _ = write!(html, "<p>{}</p>", type_of(schema));
        }
        html.push_str("</section>");
    }
    html.push_str("</section>");
}

/// A schema in a few words, with links to the named schemas it uses.
fn type_of(schema: &Value) -> String {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap_or(reference);
        return format!("<a href=\"#schema-{n}\">{n}</a>", n = esc(name));
    }
    for combinator in ["oneOf", "anyOf", "allOf"] {
        if let Some(options) = schema[combinator].as_array() {
            return options.iter().map(type_of).collect::<Vec<_>>().join(" or ");
        }
    }
    if let Some(values) = schema["enum"].as_array() {
        return values.iter().map(|v| format!("<code>{}</code>", esc(&v.to_string()))).collect::<Vec<_>>().join(" | ");
    }
    let kinds: Vec<String> = match &schema["type"] {
        Value::String(kind) => vec![kind.clone()],
        Value::Array(kinds) => kinds.iter().map(text).collect(),
        _ => return if schema.is_object() && schema.as_object().is_some_and(|o| o.is_empty()) { "any".into() } else { "object".into() },
    };
    kinds
        .iter()
        .map(|kind| match kind.as_str() {
            "array" => format!("array of {}", type_of(&schema["items"])),
            "string" | "integer" | "number" => match schema["format"].as_str() {
                Some("password") => format!("{kind} (secret)"),
                Some(format) => format!("{kind} ({})", esc(format)),
                None => kind.clone(),
            },
            other => esc(other),
        })
        .collect::<Vec<_>>()
        .join(" or ")
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
}

fn esc(s: &str) -> String {
    // Quotes too: the text also lands in attribute values (ids, hrefs).
    html_escape::encode_quoted_attribute(s).into_owned()
}

/// Escaped text with `code` spans: the descriptions' only markup.
fn inline(s: &str) -> String {
    let mut out = String::new();
    for (i, part) in s.split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{}</code>", esc(part));
        } else {
            out.push_str(&esc(part));
        }
    }
    out
}

fn paragraphs(s: &str) -> String {
    s.split("\n\n").filter(|p| !p.trim().is_empty()).map(|p| format!("<p>{}</p>", inline(p.trim()))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_code_spans_kept() {
        assert_eq!(inline("a `<b>` & \"c\""), "a <code>&lt;b&gt;</code> &amp; &quot;c&quot;");
        assert_eq!(type_of(&serde_json::json!({"type": ["string", "null"], "format": "password"})), "string (secret) or null");
        assert_eq!(
            type_of(&serde_json::json!({"type": "array", "items": {"$ref": "#/components/schemas/X"}})),
            "array of <a href=\"#schema-X\">X</a>"
        );
    }
}
