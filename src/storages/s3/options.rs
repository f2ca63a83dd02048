//! The options of the `s3` storage: the Python server's names, plus `force_path_style`.

use std::fmt;

use object_store::path::Path;
use serde::{Deserialize, Deserializer};

use crate::config::path::YamlPath;
use crate::config::read::Problems;
use crate::modules::values::{non_empty, HttpUrl};
use crate::modules::ModuleOptions;
use crate::storages::NAME_OPTION;

/// The options of the `s3` storage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Options {
    /// The bucket vCons are written to (it must exist).
    #[serde(deserialize_with = "non_empty")]
    pub aws_bucket: String,
    /// The access key id; with `aws_secret_access_key`. When both are absent (or empty), the
    /// standard AWS chain is used: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/
    /// `AWS_SESSION_TOKEN`, a web identity (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`), the
    /// container's or the instance's role.
    #[serde(default)]
    pub aws_access_key_id: Option<String>,
    /// The secret access key; with `aws_access_key_id`. Never shown in logs, errors or
    /// `GET /config`.
    #[serde(default)]
    pub aws_secret_access_key: Option<SecretKey>,
    /// The bucket's region. When absent: `AWS_REGION` or `AWS_DEFAULT_REGION`, else
    /// `us-east-1`.
    #[serde(default)]
    pub aws_region: Option<String>,
    /// The endpoint of an S3-compatible store (MinIO, SeaweedFS, DigitalOcean Spaces, Ceph…),
    /// `http://` or `https://`; absent: AWS S3 (or `AWS_ENDPOINT_URL_S3`/`AWS_ENDPOINT`).
    #[serde(default)]
    pub endpoint_url: Option<HttpUrl>,
    /// Address the bucket in the path (`https://host/bucket/key`) rather than in the host name
    /// (`https://bucket.host/key`). Default: `true` when `endpoint_url` is set, else `false`.
    #[serde(default)]
    pub force_path_style: Option<bool>,
    /// A key prefix for every object (`vcons` → `vcons/2024/05/01/{uuid}.vcon`); a trailing
    /// `/` is removed.
    #[serde(default)]
    pub s3_path: Option<String>,
}

/// A secret access key: shown as `***` by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(pub String);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(***)")
    }
}

impl<'de> Deserialize<'de> for SecretKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(SecretKey)
    }
}

impl ModuleOptions for S3Options {
    const IGNORED: &'static [(&'static str, &'static str)] = &[NAME_OPTION];

    fn check(&self, at: &YamlPath, problems: &mut Problems) {
        let key_id = given(self.aws_access_key_id.as_deref());
        let secret = given(self.aws_secret_access_key.as_ref().map(|s| s.0.as_str()));
        match (key_id, secret) {
            (Some(_), None) => problems.error(
                &at.key("aws_secret_access_key"),
                "is required with aws_access_key_id",
            ),
            (None, Some(_)) => problems.error(
                &at.key("aws_access_key_id"),
                "is required with aws_secret_access_key",
            ),
            _ => {}
        }
        if let Some(written) = &self.s3_path {
            let prefix = trimmed_prefix(written);
            if !prefix.is_empty() {
                if let Err(e) = Path::parse(prefix) {
                    problems.error(
                        &at.key("s3_path"),
                        format!("'{written}' is not a usable key prefix: {e}"),
                    );
                }
            }
        }
    }
}

/// A value that is set and not empty (`${VAR:-}` with no variable gives "").
fn given(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

/// `s3_path` without the `/` around it.
fn trimmed_prefix(written: &str) -> &str {
    written.trim().trim_matches('/')
}

impl S3Options {
    /// The static credentials the options give, if any.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        let key_id = given(self.aws_access_key_id.as_deref())?;
        let secret = given(self.aws_secret_access_key.as_ref().map(|s| s.0.as_str()))?;
        Some((key_id, secret))
    }

    /// The region the options give, if any.
    pub fn region(&self) -> Option<&str> {
        given(self.aws_region.as_deref())
    }

    /// Whether the bucket goes in the path.
    pub fn path_style(&self) -> bool {
        self.force_path_style.unwrap_or(self.endpoint_url.is_some())
    }

    /// The endpoint the client sends to for this bucket: the endpoint itself for path-style
    /// addressing (the client appends the bucket), else the endpoint with the bucket prepended
    /// to its host name, as the AWS SDKs address a custom endpoint.
    pub fn bucket_endpoint(&self, path_style: bool) -> String {
        let Some(endpoint) = &self.endpoint_url else {
            return String::new();
        };
        let mut url = endpoint.0.clone();
        if !path_style {
            if let Some(host) = url.host_str().map(str::to_owned) {
                // A host the URL type accepts with a label in front of it, or left as it is.
                let _ = url.set_host(Some(&format!("{}.{host}", self.aws_bucket)));
            }
        }
        url.as_str().trim_end_matches('/').to_owned()
    }

    /// `s3_path` as a key prefix, or none.
    pub fn prefix(&self) -> Option<Path> {
        let prefix = trimmed_prefix(self.s3_path.as_deref()?);
        if prefix.is_empty() {
            return None;
        }
        Path::parse(prefix).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::read_in_test;
    use serde_json::{json, Value};

    fn parse(options: Value) -> Result<S3Options, Vec<String>> {
        read_in_test(options)
    }

    #[test]
    fn the_python_options() {
        let options = parse(json!({
            "name": "s3",
            "aws_access_key_id": "AKIAEXAMPLE",
            "aws_secret_access_key": "wJalrXUtnFEMI",
            "aws_bucket": "vcons-archive",
            "aws_region": "eu-west-1",
            "s3_path": "prod/",
        }))
        .unwrap();
        assert_eq!(
            options.credentials(),
            Some(("AKIAEXAMPLE", "wJalrXUtnFEMI"))
        );
        assert_eq!(options.region(), Some("eu-west-1"));
        assert!(!options.path_style());
        assert_eq!(options.prefix().unwrap().as_ref(), "prod");
        assert!(!format!("{options:?}").contains("wJalrXUtnFEMI"));
    }

    #[test]
    fn an_endpoint_means_path_style_unless_told_otherwise() {
        let options = parse(json!({
            "aws_bucket": "b",
            "endpoint_url": "http://127.0.0.1:8333/",
            "aws_access_key_id": "",
            "aws_secret_access_key": "",
            "s3_path": "/",
        }))
        .unwrap();
        assert!(options.path_style());
        assert_eq!(options.credentials(), None, "empty means absent");
        assert_eq!(options.prefix(), None);
        assert_eq!(options.bucket_endpoint(true), "http://127.0.0.1:8333");
        let hosted = parse(json!({
            "aws_bucket": "b",
            "endpoint_url": "https://nyc3.digitaloceanspaces.com",
            "force_path_style": false,
        }))
        .unwrap();
        assert!(!hosted.path_style());
        assert_eq!(
            hosted.bucket_endpoint(false),
            "https://b.nyc3.digitaloceanspaces.com"
        );
    }

    #[test]
    fn bad_options() {
        let problems = parse(json!({
            "endpoint_url": "localhost:9000",
            "bucket": "x",
        }))
        .unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        let text = problems.join("\n");
        assert!(text.contains("options.aws_bucket:"), "{text}");
        assert!(text.contains("options.endpoint_url:"), "{text}");
        assert!(text.contains("unknown key \"bucket\""), "{text}");

        let problems = parse(json!({
            "aws_bucket": "b",
            "aws_access_key_id": "AKIA",
            "s3_path": "a//b",
        }))
        .unwrap_err();
        assert_eq!(
            problems,
            [
                "options.aws_secret_access_key: is required with aws_access_key_id",
                "options.s3_path: 'a//b' is not a usable key prefix: Path \"a//b\" contained empty path segment"
            ]
        );
    }

    #[test]
    fn get_config_masks_the_secret() {
        let shown = crate::config::redact::redact(&json!({"storages": {"archive": {
            "module": "s3",
            "options": {"aws_access_key_id": "AKIAEXAMPLE", "aws_secret_access_key": "wJalrXUtnFEMI", "aws_bucket": "b"}
        }}}));
        let options = &shown["storages"]["archive"]["options"];
        assert_eq!(options["aws_secret_access_key"], "***");
        assert_eq!(options["aws_access_key_id"], "***");
        assert_eq!(options["aws_bucket"], "b");
    }
}
