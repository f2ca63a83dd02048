//! The `s3` storage (modules.md §4.2): each vCon is the object `[s3_path/]YYYY/MM/DD/{uuid}.vcon`
//! of a bucket, on AWS S3 or any S3-compatible store, with a pointer object
//! `[s3_path/]lookup/{uuid}.txt` holding its `YYYY/MM/DD`, through which it is read and deleted.
//! The same layout as the Python server's, so either server reads what the other wrote.
//!
//! One client per configured instance, made when the storage is built (connections are reused
//! across saves). Each call is one request: the storage sink retries a failed save with the
//! storage's retry policy, so the client does not retry on its own.

mod error;
mod options;

use async_trait::async_trait;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, ClientOptions, ObjectStore, ObjectStoreExt, PutOptions, PutPayload,
    RetryConfig,
};
use reqwest::header::HeaderValue;
use uuid::Uuid;

use super::{Saved, Storage, StorageError, StorageKind, StorageModule};
use crate::config::Module;
use crate::modules::{BuildError, ModuleContext};

use error::classified;
pub use options::S3Options;

/// How long a connection attempt may take (at most the request timeout).
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A configured `s3` storage.
pub struct S3Storage {
    store: AmazonS3,
    /// `s3_path` as a key prefix (no leading or trailing `/`), or none.
    prefix: Option<Path>,
    bucket: String,
}

impl StorageModule for S3Storage {
    type Options = S3Options;

    fn build(
        options: S3Options,
        module: &Module<StorageKind>,
        ctx: &ModuleContext,
    ) -> Result<S3Storage, BuildError> {
        let timeout = ctx.limits.http_timeout;
        let mut client = ClientOptions::new()
            .with_timeout(timeout)
            .with_connect_timeout(CONNECT_TIMEOUT.min(timeout));
        if let Ok(agent) = HeaderValue::from_str(&crate::http::user_agent()) {
            client = client.with_user_agent(agent);
        }
        // The standard AWS environment first (credentials, region, session token, web
        // identity, container and instance roles); what the options give wins over it.
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&options.aws_bucket)
            .with_retry(RetryConfig {
                max_retries: 0,
                ..RetryConfig::default()
            });
        if let Some(region) = options.region() {
            builder = builder.with_region(region);
        }
        if let Some((key_id, secret)) = options.credentials() {
            builder = builder
                .with_access_key_id(key_id)
                .with_secret_access_key(secret);
        }
        if let Some(endpoint) = &options.endpoint_url {
            client = client.with_allow_http(endpoint.0.scheme() == "http");
            let path_style = options.path_style();
            builder = builder
                .with_endpoint(options.bucket_endpoint(path_style))
                .with_virtual_hosted_style_request(!path_style);
        } else {
            builder = builder.with_virtual_hosted_style_request(!options.path_style());
        }
        let store = builder.with_client_options(client).build().map_err(|e| {
            BuildError::Options(vec![crate::config::ConfigProblem {
                path: crate::config::path::YamlPath::root()
                    .key("storages")
                    .key(&module.name)
                    .key("options"),
                line: None,
                message: format!("the S3 client cannot be made: {e}"),
            }])
        })?;
        Ok(S3Storage {
            store,
            prefix: options.prefix(),
            bucket: options.aws_bucket,
        })
    }
}

impl S3Storage {
    /// `[s3_path/]<parts…>`.
    fn key(&self, parts: &[&str]) -> Path {
        let start = self.prefix.clone().unwrap_or_default();
        parts.iter().fold(start, |path, part| path.join(*part))
    }

    /// `[s3_path/]YYYY/MM/DD/{uuid}.vcon`.
    fn object_key(&self, date_path: &str, uuid: Uuid) -> Path {
        let mut parts: Vec<&str> = date_path.split('/').filter(|p| !p.is_empty()).collect();
        let name = format!("{uuid}.vcon");
        parts.push(&name);
        self.key(&parts)
    }

    /// `[s3_path/]lookup/{uuid}.txt`.
    fn pointer_key(&self, uuid: Uuid) -> Path {
        self.key(&["lookup", &format!("{uuid}.txt")])
    }

    /// The `YYYY/MM/DD` the pointer of `uuid` holds, or `None` without a pointer.
    async fn date_path(&self, uuid: Uuid) -> Result<Option<String>, StorageError> {
        let key = self.pointer_key(uuid);
        let Some(bytes) = self.read(&key).await? else {
            return Ok(None);
        };
        let text = String::from_utf8(bytes.to_vec()).map_err(|e| {
            StorageError::permanent(
                format!(
                    "s3 storage: the pointer s3://{}/{key} is not text",
                    self.bucket
                ),
                e,
            )
        })?;
        Ok(Some(text.trim().to_owned()))
    }

    /// The object at `key`, or `None` when there is none.
    async fn read(&self, key: &Path) -> Result<Option<bytes::Bytes>, StorageError> {
        let what = || format!("s3 storage: reading s3://{}/{key} failed", self.bucket);
        match self.store.get(key).await {
            Ok(found) => found
                .bytes()
                .await
                .map(Some)
                .map_err(|e| classified(what(), e)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(classified(what(), e)),
        }
    }

    async fn put(
        &self,
        key: &Path,
        body: PutPayload,
        content_type: &'static str,
    ) -> Result<(), StorageError> {
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::ContentType, content_type.into());
        let options = PutOptions {
            attributes,
            ..PutOptions::default()
        };
        self.store
            .put_opts(key, body, options)
            .await
            .map(drop)
            .map_err(|e| {
                classified(
                    format!("s3 storage: writing s3://{}/{key} failed", self.bucket),
                    e,
                )
            })
    }
}

#[async_trait]
impl Storage for S3Storage {
    async fn save(&self, vcon: &Saved) -> Result<(), StorageError> {
        let date_path = vcon.date_path();
        let object = self.object_key(&date_path, vcon.uuid);
        self.put(
            &object,
            PutPayload::from(vcon.text.clone()),
            "application/json",
        )
        .await?;
        self.put(
            &self.pointer_key(vcon.uuid),
            PutPayload::from(date_path),
            "text/plain",
        )
        .await
    }

    async fn get(&self, uuid: Uuid) -> Result<Option<String>, StorageError> {
        let Some(date_path) = self.date_path(uuid).await? else {
            return Ok(None);
        };
        let key = self.object_key(&date_path, uuid);
        let Some(bytes) = self.read(&key).await? else {
            return Ok(None);
        };
        String::from_utf8(bytes.to_vec()).map(Some).map_err(|e| {
            StorageError::permanent(
                format!("s3 storage: s3://{}/{key} is not UTF-8 text", self.bucket),
                e,
            )
        })
    }

    async fn delete(&self, uuid: Uuid) -> Result<bool, StorageError> {
        let Some(date_path) = self.date_path(uuid).await? else {
            return Ok(false);
        };
        for key in [self.object_key(&date_path, uuid), self.pointer_key(uuid)] {
            match self.store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    return Err(classified(
                        format!("s3 storage: deleting s3://{}/{key} failed", self.bucket),
                        e,
                    ))
                }
            }
        }
        Ok(true)
    }
}
