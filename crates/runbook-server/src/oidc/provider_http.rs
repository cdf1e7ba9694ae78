//! The HTTP client of every call to the identity provider (discovery, its keys, the code's
//! exchange): reqwest, no redirects, a timeout, and a cap on the reply's size. A provider is
//! trusted for who signs in, not for how much it sends: a reply past [`MAX_REPLY`] is refused
//! while it streams, before it fills memory, with an error that names the URL and the cap.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use openidconnect::{AsyncHttpClient, HttpRequest, HttpResponse};

/// The most bytes of one reply of the provider. Real discovery documents and key sets are a
/// few KiB, token responses less.
pub(crate) const MAX_REPLY: usize = 1024 * 1024;

/// A URL as an error message shows it.
const MAX_URL_SHOWN: usize = 200;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ProviderHttpError {
    #[error(transparent)]
    Transport(#[from] reqwest::Error),
    #[error(
        "the identity provider's reply from {url} is larger than {cap} bytes (the cap on its \
         replies); refused"
    )]
    TooLarge { url: String, cap: usize },
    #[error("the identity provider's reply could not be read: {0}")]
    Malformed(String),
}

/// reqwest with the cap.
pub(crate) struct ProviderHttp {
    client: reqwest::Client,
    cap: usize,
}

impl ProviderHttp {
    pub(crate) fn new(timeout: Duration, cap: usize) -> reqwest::Result<ProviderHttp> {
        let client = reqwest::Client::builder()
            // A provider's answers are read where they are: a redirect could lead anywhere.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .user_agent(concat!("runbook-host/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(ProviderHttp { client, cap })
    }

    async fn fetch(&self, request: HttpRequest) -> Result<HttpResponse, ProviderHttpError> {
        let url = crate::text::truncate_owned(request.uri().to_string(), MAX_URL_SHOWN);
        let too_large = || ProviderHttpError::TooLarge {
            url: url.clone(),
            cap: self.cap,
        };
        let mut response = self.client.execute(request.try_into()?).await?;
        if response
            .content_length()
            .is_some_and(|n| n > self.cap as u64)
        {
            return Err(too_large());
        }
        let mut reply = openidconnect::http::Response::builder()
            .status(response.status())
            .version(response.version());
        for (name, value) in response.headers() {
            reply = reply.header(name, value);
        }
        // Counted as it arrives: a reply that lies about its length (or gives none) stops at
        // the cap too.
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > self.cap {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        reply
            .body(body)
            .map_err(|e| ProviderHttpError::Malformed(e.to_string()))
    }
}

impl<'c> AsyncHttpClient<'c> for ProviderHttp {
    type Error = ProviderHttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Self::Error>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.fetch(request))
    }
}

/// The cap's refusal somewhere in `e`'s chain, if that is why it failed.
pub(crate) fn too_large(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current = Some(e);
    while let Some(error) = current {
        if let Some(found @ ProviderHttpError::TooLarge { .. }) =
            error.downcast_ref::<ProviderHttpError>()
        {
            return Some(found.to_string());
        }
        current = error.source();
    }
    None
}
