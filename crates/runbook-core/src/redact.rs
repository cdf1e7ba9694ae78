//! Secrets out of the audit log. The timeline keeps what a call asked for, minus what would
//! leak a credential: URL passwords and the values of query parameters named like secrets.
//! (Header values and bodies are never recorded at all.)

use url::Url;

const MASK: &str = "***";

/// Query parameter names (lower case) whose values are credentials, by substring.
const SECRET_PARAMS: &[&str] = &[
    "token",
    "key",
    "secret",
    "password",
    "passwd",
    "pwd",
    "auth",
    "signature",
    "sig",
    "credential",
    "session",
];

/// `url` with its password and secret-looking query values replaced by `***`; text that is not
/// a URL is returned as it is (it is refused as `invalid` anyway).
pub fn url(raw: &str) -> String {
    let Ok(mut url) = Url::parse(raw) else {
        return raw.to_string();
    };
    if url.password().is_some() {
        let _ = url.set_password(Some(MASK));
    }
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let lower = k.to_ascii_lowercase();
                let secret = SECRET_PARAMS.iter().any(|s| lower.contains(s));
                let value = if secret {
                    MASK.to_string()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), value)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

/// A response header's value as a fixture keeps it: cookies and credentials masked.
pub fn header_value(name: &str, value: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let secret = lower.contains("cookie") || SECRET_PARAMS.iter().any(|s| lower.contains(s));
    if secret {
        MASK.to_string()
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_and_secret_params_are_masked() {
        assert_eq!(
            super::url("https://bot:hunter2@api.example.com/x?api_key=abc&page=2&Token=t"),
            "https://bot:***@api.example.com/x?api_key=***&page=2&Token=***"
        );
        assert_eq!(
            super::url("http://127.0.0.1:8080/health"),
            "http://127.0.0.1:8080/health"
        );
        assert_eq!(super::url("not a url"), "not a url");
    }
}
