//! Secrets that must never be shown: the API keys given on the command line, and the values
//! of headers the user marked secret (`--secret-header`).
//!
//! Every piece of text that leaves the harness (failure messages, recorded exchanges, logs)
//! passes through [`Secrets::mask`], which replaces each key with a shell variable name, so a
//! copied curl line still works once the variable is set.

/// The registered secrets and the placeholder each is shown as.
#[derive(Clone, Debug, Default)]
pub struct Secrets {
    entries: Vec<(String, String)>,
}

impl Secrets {
    /// Register `secret` to be shown as `placeholder` (for example `$API_KEY`).
    /// Empty secrets are ignored: masking "" would mangle every string.
    pub fn register(&mut self, secret: &str, placeholder: impl Into<String>) {
        if secret.is_empty() || self.entries.iter().any(|(s, _)| s == secret) {
            return;
        }
        self.entries.push((secret.to_string(), placeholder.into()));
        // Longest first, so a key that contains another key is masked whole.
        self.entries
            .sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
    }

    /// `text` with every registered secret replaced by its placeholder.
    pub fn mask(&self, text: &str) -> String {
        let mut masked = text.to_string();
        for (secret, placeholder) in &self.entries {
            if masked.contains(secret.as_str()) {
                masked = masked.replace(secret.as_str(), placeholder.as_str());
            }
        }
        masked
    }

    /// True when `bytes` contain any registered secret.
    pub fn found_in(&self, bytes: &[u8]) -> bool {
        self.entries
            .iter()
            .any(|(secret, _)| contains_bytes(bytes, secret.as_bytes()))
    }
}

/// The placeholder a secret header's value is shown as: `$HEADER_` and the header's name in
/// upper snake case (`X-Gateway-Token` is `$HEADER_X_GATEWAY_TOKEN`), a shell variable a copied
/// curl line expands.
pub fn header_placeholder(name: &str) -> String {
    let snake: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("${HEADER_VARIABLE_PREFIX}{snake}")
}

/// What every secret header's placeholder starts with, after the `$`.
pub const HEADER_VARIABLE_PREFIX: &str = "HEADER_";

/// True when `needle` occurs in `haystack`.
pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_occurrence_and_longest_first() {
        let mut secrets = Secrets::default();
        secrets.register("abc", "$SECOND_API_KEY");
        secrets.register("abcdef", "$API_KEY");
        secrets.register("", "$EMPTY");
        assert_eq!(
            secrets.mask("k=abcdef, k2=abc, abcdef"),
            "k=$API_KEY, k2=$SECOND_API_KEY, $API_KEY"
        );
        assert!(secrets.found_in(b"xxabcxx"));
        assert_eq!(
            header_placeholder("X-Gateway.Token"),
            "$HEADER_X_GATEWAY_TOKEN"
        );
        assert!(!secrets.found_in(b"xxabxx"));
    }
}
