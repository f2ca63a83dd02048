//! The S3 bucket `diet` offloads dialog bodies to: the body is uploaded as text to
//! `[s3_path/]<uuid>/<dialog id>_<random uuid>.txt` and replaced by a presigned GET URL. The
//! store is `object_store` (AWS S3 or any S3-compatible store through `endpoint_url`), on the
//! process's HTTP client, retrying with the link's retry policy.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::client::{HttpClient, HttpConnector};
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{
    Attribute, Attributes, BackoffConfig, ClientOptions, ObjectStore, PutOptions, PutPayload,
    RetryConfig,
};

use super::DietOptions;
use crate::config::Retry;
use crate::links::LinkError;

/// Where bodies are uploaded, and who signs the URLs that read them back.
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    signer: Arc<dyn Signer>,
    prefix: String,
    expiration: Duration,
    timeout: Duration,
    name: String,
}

/// `object_store` over the process's client.
#[derive(Debug)]
struct SharedClient(reqwest::Client);

impl HttpConnector for SharedClient {
    fn connect(&self, _options: &ClientOptions) -> object_store::Result<HttpClient> {
        Ok(HttpClient::new(self.0.clone()))
    }
}

impl Bucket {
    /// The bucket the options name.
    pub fn s3(
        options: &DietOptions,
        timeout: Duration,
        retry: &Retry,
        http: &reqwest::Client,
    ) -> Result<Bucket, String> {
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&options.s3_bucket)
            .with_region(&options.aws_region)
            .with_http_connector(SharedClient(http.clone()))
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: retry.initial_backoff,
                    max_backoff: retry.max_backoff,
                    base: retry.multiplier,
                },
                max_retries: retry.attempts.saturating_sub(1) as usize,
                retry_timeout: timeout.saturating_mul(retry.attempts.max(1)),
            });
        if !options.aws_access_key_id.is_empty() {
            builder = builder
                .with_access_key_id(&options.aws_access_key_id)
                .with_secret_access_key(&options.aws_secret_access_key);
        }
        if let Some(endpoint) = &options.endpoint_url {
            builder = builder
                .with_endpoint(endpoint.0.as_str().trim_end_matches('/'))
                .with_allow_http(endpoint.0.scheme() == "http")
                .with_virtual_hosted_style_request(false);
        }
        let store = Arc::new(
            builder
                .build()
                .map_err(|e| format!("the S3 bucket cannot be used: {e}"))?,
        );
        Ok(Bucket {
            store: store.clone(),
            signer: store,
            prefix: options.s3_path.trim_matches('/').to_owned(),
            expiration: options
                .presigned_url_expiration
                .unwrap_or(Duration::from_secs(3600)),
            timeout,
            name: options.s3_bucket.clone(),
        })
    }

    /// A bucket over any store and signer (tests, other stores).
    pub fn over(
        store: Arc<dyn ObjectStore>,
        signer: Arc<dyn Signer>,
        prefix: &str,
        expiration: Duration,
    ) -> Bucket {
        Bucket {
            store,
            signer,
            prefix: prefix.trim_matches('/').to_owned(),
            expiration,
            timeout: Duration::from_secs(30),
            name: "bucket".to_owned(),
        }
    }

    /// The key of a new upload of dialog `dialog_id` of vCon `uuid`.
    pub fn key(&self, uuid: &str, dialog_id: &str) -> String {
        let unique = uuid::Uuid::new_v4();
        let file = if dialog_id.is_empty() {
            format!("{unique}.txt")
        } else {
            format!("{dialog_id}_{unique}.txt")
        };
        if self.prefix.is_empty() {
            format!("{uuid}/{file}")
        } else {
            format!("{}/{uuid}/{file}", self.prefix)
        }
    }

    /// Upload `body` (as `text/plain`) and return a presigned GET URL of it.
    pub async fn upload(
        &self,
        uuid: &str,
        dialog_id: &str,
        body: String,
    ) -> Result<String, LinkError> {
        let key = self.key(uuid, dialog_id);
        let path = Path::from(key.as_str());
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            LinkError::Content(format!("diet: {what} s3://{}/{key} failed: {e}", self.name))
        };
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::ContentType, "text/plain".into());
        let put = self.store.put_opts(
            &path,
            PutPayload::from(body.into_bytes()),
            PutOptions {
                attributes,
                ..PutOptions::default()
            },
        );
        // The store retries within its own bound; this bounds the whole upload.
        match tokio::time::timeout(self.timeout.saturating_mul(8), put).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(failed("the upload to", &e)),
            Err(_) => return Err(failed("the upload to", &"no answer within the timeout")),
        }
        let url = self
            .signer
            .signed_url(object_store::signer::Method::GET, &path, self.expiration)
            .await
            .map_err(|e| failed("signing a URL for", &e))?;
        Ok(url.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use object_store::ObjectStoreExt;

    /// A real S3 signer (signing is local: nothing is sent) over an in-memory store.
    fn bucket() -> (Bucket, Arc<InMemory>) {
        let memory = Arc::new(InMemory::new());
        let signer = AmazonS3Builder::new()
            .with_bucket_name("media")
            .with_region("us-east-1")
            .with_access_key_id("AKIDEXAMPLE")
            .with_secret_access_key("secret")
            .with_endpoint("http://127.0.0.1:9")
            .with_allow_http(true)
            .build()
            .unwrap();
        (
            Bucket::over(
                memory.clone(),
                Arc::new(signer),
                "/bodies/",
                Duration::from_secs(600),
            ),
            memory,
        )
    }

    #[tokio::test]
    async fn a_body_is_uploaded_as_text_and_replaced_by_a_presigned_url() {
        let (bucket, memory) = bucket();
        let uuid = "0191a3f4-5b6c-7d8e-9f00-000000000001";
        let url = bucket
            .upload(uuid, "d1", "SGVsbG8=".to_owned())
            .await
            .unwrap();
        let listed: Vec<_> = {
            use futures_util::TryStreamExt;
            memory.list(None).try_collect::<Vec<_>>().await.unwrap()
        };
        assert_eq!(listed.len(), 1);
        let key = listed[0].location.to_string();
        assert!(
            key.starts_with(&format!("bodies/{uuid}/d1_")) && key.ends_with(".txt"),
            "{key}"
        );
        let stored = memory.get(&listed[0].location).await.unwrap();
        assert_eq!(
            stored
                .attributes
                .get(&Attribute::ContentType)
                .map(|v| v.as_ref()),
            Some("text/plain")
        );
        assert_eq!(stored.bytes().await.unwrap().as_ref(), b"SGVsbG8=");
        let url = reqwest::Url::parse(&url).unwrap();
        assert_eq!(url.path(), format!("/media/{key}"));
        let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(query["X-Amz-Expires"], "600");
        assert!(query["X-Amz-Credential"].starts_with("AKIDEXAMPLE/"));
        assert!(query.contains_key("X-Amz-Signature"));
        assert!(bucket.key(uuid, "").starts_with(&format!("bodies/{uuid}/")));
    }
}
