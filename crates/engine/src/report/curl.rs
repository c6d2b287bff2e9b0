//! Curl lines that reproduce a recorded request.
//!
//! The record shows each key as a shell variable (`$API_KEY`, `$SECOND_API_KEY`,
//! `$BROKE_API_KEY`). A curl line keeps it one: words holding a variable are double-quoted so
//! the shell expands it, everything else is single-quoted so nothing else expands. The line
//! therefore works once `API_KEY` is set, and never contains the key.
//!
//! Every request header is kept except the ones curl sets itself (`Host`, `Content-Length`,
//! `User-Agent`); `X-Apiconform-Run-Id` stays, so the provider can find the traffic in its logs.
//! A multipart request becomes one `-F name=@file` per part (with `;type=` when the part had
//! its own Content-Type), and its `Content-Type` header is left to curl, which writes a
//! boundary of its own: the file itself is to be found under that name.

use super::ExchangeEvidence;

/// The placeholders the client masks keys with (registered in `HttpClient::new`); secret
/// headers are masked as `$HEADER_<NAME>` ([`crate::secrets::header_placeholder`]).
const KEY_VARIABLES: [&str; 3] = ["$API_KEY", "$SECOND_API_KEY", "$BROKE_API_KEY"];

/// The placeholder variable `text` starts with, if any: a key's, or a secret header's.
fn variable_at(text: &str) -> Option<&str> {
    if let Some(key) = KEY_VARIABLES.iter().find(|v| text.starts_with(**v)) {
        return Some(key);
    }
    let name = text.strip_prefix('$')?;
    let rest = name.strip_prefix(crate::secrets::HEADER_VARIABLE_PREFIX)?;
    let len = rest
        .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        .unwrap_or(rest.len());
    (len > 0).then(|| &text[..1 + crate::secrets::HEADER_VARIABLE_PREFIX.len() + len])
}

/// True when `text` holds a placeholder variable anywhere.
fn holds_variable(text: &str) -> bool {
    text.char_indices()
        .any(|(i, c)| c == '$' && variable_at(&text[i..]).is_some())
}

/// Headers curl computes itself.
const OMITTED_HEADERS: [&str; 3] = ["host", "content-length", "user-agent"];

/// A one-line shell command that sends the request of `exchange` again and shows the reply.
pub fn command(exchange: &ExchangeEvidence) -> String {
    // The URL as the client sent it: the url crate normalizes it as reqwest did.
    let url = url::Url::parse(&exchange.url)
        .map(String::from)
        .unwrap_or_else(|_| exchange.url.clone());
    let mut words = vec!["curl".to_string(), "-sS".into(), "-i".into()];
    if url.contains(['[', ']', '{', '}']) {
        words.push("--globoff".into());
    }
    let method = exchange.method.to_ascii_uppercase();
    if method == "HEAD" {
        // `-X HEAD` makes curl wait for a body that never comes.
        words.push("--head".into());
    } else {
        words.push("-X".into());
        words.push(quote(&method));
    }
    words.push(quote(&url));
    let multipart = !exchange.request_parts.is_empty();
    for header in &exchange.request_headers {
        let name = header.name.to_ascii_lowercase();
        if OMITTED_HEADERS.contains(&name.as_str()) || (multipart && name == "content-type") {
            continue;
        }
        words.push("-H".into());
        words.push(quote(&format!("{}: {}", header.name, header.value)));
    }
    if let Some(body) = &exchange.request_body {
        words.push("--data-raw".into());
        words.push(quote(body));
    }
    for part in &exchange.request_parts {
        // `;type=` only for a part that had one: curl otherwise guesses from the name, as
        // the SDKs' servers do, but sends no header the harness did not.
        let media = part
            .content_type
            .as_ref()
            .map(|t| format!(";type={t}"))
            .unwrap_or_default();
        words.push("-F".into());
        words.push(quote(&format!("{}=@{}{media}", part.name, part.filename)));
    }
    words.join(" ")
}

/// `text` as one shell word: double-quoted if it holds a key variable, else single-quoted.
fn quote(text: &str) -> String {
    if holds_variable(text) {
        double_quote(text)
    } else if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@%+=,".contains(c))
    {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// Double quotes with the key variables left to expand (braced when a name character follows)
/// and every other `$`, `` ` ``, `"` and `\` escaped. `!` goes in single quotes, because
/// interactive bash expands history inside double quotes.
fn double_quote(text: &str) -> String {
    let mut out = String::from("\"");
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if let Some(variable) = variable_at(rest) {
            rest = &rest[variable.len()..];
            let name = &variable[1..];
            if rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
                out.push_str(&format!("${{{name}}}"));
            } else {
                out.push_str(variable);
            }
            continue;
        }
        match c {
            '$' | '`' | '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '!' => out.push_str("\"'!'\""),
            _ => out.push(c),
        }
        rest = &rest[c.len_utf8()..];
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Header;
    use std::time::Duration;

    fn exchange(
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> ExchangeEvidence {
        let headers = headers
            .iter()
            .map(|(n, v)| Header {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect();
        ExchangeEvidence {
            id: 0,
            sent_by: "auth::x".into(),
            method: method.into(),
            url: url.into(),
            request_headers: headers,
            request_body: body.map(String::from),
            request_parts: Vec::new(),
            status: Some(200),
            response_headers: vec![],
            body_excerpt: String::new(),
            body_truncated: false,
            error: None,
            started_at: chrono::DateTime::UNIX_EPOCH,
            elapsed: Duration::ZERO,
            request_id: None,
            job_id: None,
        }
    }

    #[test]
    fn keys_stay_shell_variables_and_nothing_else_expands() {
        let line = command(&exchange(
            "post",
            "http://127.0.0.1:8080/v1/jobs?note=it's",
            &[
                ("authorization", "Bearer $API_KEY"),
                ("x-odd", "a \"$HOME\" `id` \\ ! it's"),
                ("x-second", "$SECOND_API_KEY"),
                ("x-joined", "$API_KEYsuffix"),
                ("x-gateway", "$HEADER_X_GATEWAY"),
                ("content-length", "12"),
                ("x-apiconform-run-id", "00ff"),
            ],
            Some(r#"{"name":"$(rm -rf /)"}"#),
        ));
        assert_eq!(
            line,
            concat!(
                r#"curl -sS -i -X POST 'http://127.0.0.1:8080/v1/jobs?note=it%27s' "#,
                r#"-H "authorization: Bearer $API_KEY" -H 'x-odd: a "$HOME" `id` \ ! it'\''s' "#,
                r#"-H "x-second: $SECOND_API_KEY" -H "x-joined: ${API_KEY}suffix" "#,
                r#"-H "x-gateway: $HEADER_X_GATEWAY" "#,
                r#"-H 'x-apiconform-run-id: 00ff' --data-raw '{"name":"$(rm -rf /)"}'"#
            )
        );
    }

    #[test]
    fn double_quoting_escapes_what_the_shell_would_expand() {
        assert_eq!(
            double_quote("k=$API_KEY \"$x\" `y` \\ !"),
            r#""k=$API_KEY \"\$x\" \`y\` \\ "'!'"""#
        );
    }

    #[test]
    fn multipart_requests_become_form_fields() {
        let mut upload = exchange(
            "POST",
            "http://h/v1/uploads",
            &[
                ("content-type", "multipart/form-data; boundary=x"),
                ("x-api-key", "$API_KEY"),
            ],
            None,
        );
        upload.request_parts = vec![crate::record::PartSummary {
            name: "file".into(),
            filename: "clip.mp4".into(),
            content_type: Some("video/mp4".into()),
            size: 152,
        }];
        assert_eq!(
            command(&upload),
            r#"curl -sS -i -X POST http://h/v1/uploads -H "x-api-key: $API_KEY" -F 'file=@clip.mp4;type=video/mp4'"#
        );
        upload.request_parts[0].content_type = None;
        assert!(command(&upload).ends_with(" -F file=@clip.mp4"));
    }

    #[test]
    fn urls_are_sent_normalized_and_globbing_is_off_when_needed() {
        let line = command(&exchange("HEAD", "http://h/v1/jobs/a b[1]", &[], None));
        assert_eq!(
            line,
            "curl -sS -i --globoff --head 'http://h/v1/jobs/a%20b[1]'"
        );
    }
}
