//! The config file as written: one struct per YAML mapping, one field per key
//! (config.md §2–§7). These structs are the list of valid keys — a key that is not a field
//! here is reported as unknown — and their comments are the reference of each key.
//!
//! Every field is lenient ([`Field`], [`Object`]): a wrong value is kept and reported by the
//! compiler with its path, together with every other problem. A key set to `null` counts as
//! absent (its default applies).

use serde::Deserialize;
use serde_json::Value;

use super::coerce::{Coerce, Field, List, Named, Object, Options};

/// The top level of the file (config.md §2).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Link instances (a module plus options) that chains name.
    pub links: Option<Field<Named<Object<RawLink>>>>,
    /// Storage instances; their order is the order of storage fallback reads.
    pub storages: Option<Field<Named<Object<RawStorage>>>>,
    /// Processing pipelines.
    pub chains: Option<Field<Named<Object<RawChain>>>>,
    /// Audit hooks run around every link.
    pub tracers: Option<Field<Named<Object<RawTracer>>>>,
    /// Pollers of another server's egress list.
    pub followers: Option<Field<Named<Object<RawFollower>>>>,
    /// Ingress list → key or keys accepted by `POST /vcon/external-ingress`.
    pub ingress_auth: Option<Field<Named<KeyOrKeys>>>,
    /// Python module imports: not supported; must be absent, `null` or `{}`.
    pub imports: Option<Value>,
    /// Store connection and key lifetimes (§7.1).
    pub redis: Option<Field<Object<RawRedis>>>,
    /// The HTTP server (§7.2).
    pub api: Option<Field<Object<RawApi>>>,
    /// Concurrency, timeouts, retries and sizes (§7.3).
    pub limits: Option<Field<Object<RawLimits>>>,
}

/// A link instance (config.md §4).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLink {
    /// The built-in module: `links.<name>`, `conserver.links.<name>` or `<name>`. Required.
    pub module: Option<Field<String>>,
    /// Module options, merged over the module's defaults.
    pub options: Option<Field<Options>>,
    /// Retry policy of a module that calls a network service; keys not given come from
    /// `limits.retry`.
    pub retry: Option<Field<Object<RawRetry>>>,
    /// The Python server's `pip install` source: not supported (an error).
    pub pip_name: Option<Value>,
    /// Appears in the Python example file and never had an effect: ignored with a warning.
    #[serde(rename = "ingress-lists")]
    pub ingress_lists: Option<Value>,
    /// Appears in the Python example file and never had an effect: ignored with a warning.
    #[serde(rename = "egress-lists")]
    pub egress_lists: Option<Value>,
}

/// A storage instance (config.md §4).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    /// The built-in module: `storage.<name>`, `common.storage.<name>` or `<name>`. Required.
    pub module: Option<Field<String>>,
    /// Module options, merged over the module's defaults.
    pub options: Option<Field<Options>>,
    /// Retry policy of a storage that calls a network service; keys not given come from
    /// `limits.retry`.
    pub retry: Option<Field<Object<RawRetry>>>,
    /// The Python server's `pip install` source: not supported (an error).
    pub pip_name: Option<Value>,
}

/// A tracer instance (config.md §4, §6).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTracer {
    /// The built-in module: `tracers.<name>`, `conserver.tracers.<name>` or `<name>`. Required.
    pub module: Option<Field<String>>,
    /// Module options, merged over the module's defaults.
    pub options: Option<Field<Options>>,
    /// The Python server's `pip install` source: not supported (an error).
    pub pip_name: Option<Value>,
}

/// A chain (config.md §5).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChain {
    /// Names of links (keys of `links`), run in this order. Required; may be empty.
    pub links: Option<Field<List<String>>>,
    /// Names of storages written after the links. Default `[]`.
    pub storages: Option<Field<List<String>>>,
    /// Lists this chain consumes. Default `[]` (the chain then never runs).
    pub ingress_lists: Option<Field<List<String>>>,
    /// Lists the uuid is appended to once the storages succeeded. Default `[]`.
    pub egress_lists: Option<Field<List<String>>>,
    /// A disabled chain consumes nothing. Default `true`.
    pub enabled: Option<Field<bool>>,
    /// Seconds (> 0) the link phase of one vCon may take. Default: no limit.
    pub timeout: Option<Field<f64>>,
    /// vCons processed concurrently per instance (≥ 1). Default `limits.default_workers`.
    pub workers: Option<Field<i64>>,
    /// Names of the tracers run for this chain. Default: every tracer.
    pub tracers: Option<Field<List<String>>>,
}

/// A follower (config.md §6).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFollower {
    /// Base URL of the remote server, with or without its `/api` prefix. Required.
    pub url: Option<Field<String>>,
    /// Remote egress list to pop from. Required.
    pub egress_list: Option<Field<String>>,
    /// Local ingress list to push to; an enabled chain must read it. Required.
    pub follower_ingress_list: Option<Field<String>>,
    /// Token sent to the remote server. Default: none.
    pub auth_token: Option<Field<String>>,
    /// Header the token is sent in. Default `api.header_name`.
    pub header_name: Option<Field<String>>,
    /// `limit` of each `GET /vcon/egress` call (≥ 1). Default 10.
    pub fetch_vcon_limit: Option<Field<i64>>,
    /// Seconds (> 0) between polls. Default 10.
    pub pulling_interval: Option<Field<f64>>,
}

/// The `redis` section (config.md §7.1).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedis {
    /// `redis://…`, `rediss://…` or `unix:///path`; env `REDIS_URL`. None → the embedded store.
    pub url: Option<Field<String>>,
    /// Treat `url` as a seed node of a Redis Cluster. Default `false`.
    pub cluster: Option<Field<bool>>,
    /// Store vCons as RedisJSON documents (redis-stack, beside Python). Default `false`.
    pub json_module: Option<Field<bool>>,
    /// Prepended to every key. Default `""` (required to share Redis with Python servers).
    pub key_prefix: Option<Field<String>>,
    /// Name of the created-at index; env `VCON_SORTED_SET_NAME`. Default `vcons`.
    pub sorted_set: Option<Field<String>>,
    /// Seconds (≥ 0, 0 = never) a vCon lives once no chain holds it; env `VCON_REDIS_EXPIRY`.
    /// Default 3600.
    pub vcon_ttl: Option<Field<i64>>,
    /// Seconds (≥ 0, 0 = never) a vCon lives in a DLQ; env `VCON_DLQ_EXPIRY`. Default 604800.
    pub dlq_ttl: Option<Field<i64>>,
    /// Seconds (≥ 1) the party index sets live; env `VCON_INDEX_EXPIRY`. Default 86400.
    pub index_ttl: Option<Field<i64>>,
    /// Read missing vCons back from storages; env `VCON_STORAGE_FALLBACK_ENABLED`. Default `true`.
    pub storage_fallback: Option<Field<bool>>,
    /// This instance's name (letters, digits, `-`, `_`, `.`); env `CONSERVER_INSTANCE_ID`.
    /// Default `<hostname>-<pid>-<4 hex digits>`.
    pub instance_id: Option<Field<String>>,
    /// Seconds (≥ 5) the heartbeat lives. Default 30.
    pub heartbeat_ttl: Option<Field<i64>>,
}

/// The `api` section (config.md §7.2).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    /// Listen address `host:port` (`[::]:8000` for IPv6); env `CONSERVER_BIND`.
    /// Default `127.0.0.1:8000`.
    pub bind: Option<Field<String>>,
    /// Second base path: starts with `/`, or `""` (root only); env `API_ROOT_PATH`.
    /// Default `/api`.
    pub prefix: Option<Field<String>>,
    /// API tokens, added to `CONSERVER_API_TOKEN` and the token file's lines. Default `[]`.
    pub tokens: Option<Field<List<String>>>,
    /// File of tokens, one per line (`#` lines skipped); env `CONSERVER_API_TOKEN_FILE`.
    pub token_file: Option<Field<String>>,
    /// Auth header name; env `CONSERVER_HEADER_NAME`. Default `x-conserver-api-token`.
    pub header_name: Option<Field<String>>,
    /// Request body limit in bytes (≥ 1024). Default 67108864.
    pub max_body_bytes: Option<Field<i64>>,
    /// Serve without tokens on a non-loopback address. Default `false`.
    pub allow_unauthenticated: Option<Field<bool>>,
    /// Let `POST /config` remove or replace every API token, or change `api.bind` or
    /// `redis.url` (the running configuration's value decides). Default `false`.
    pub allow_auth_change_by_api: Option<Field<bool>>,
    /// Accept JWS/JWE vCons on POST. Default `true`.
    pub accept_signed: Option<Field<bool>>,
    /// CORS origins. Default `["*"]`.
    pub cors_allow_origins: Option<Field<List<String>>>,
}

/// The `limits` section (config.md §7.3).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// `workers` of chains that do not set it (≥ 1); env `CONSERVER_WORKERS` ×
    /// `CONSERVER_VCON_CONCURRENCY`. Default 4.
    pub default_workers: Option<Field<i64>>,
    /// Seconds (> 0) per outbound HTTP request of modules without a `timeout` option.
    /// Default 30.
    pub http_timeout: Option<Field<f64>>,
    /// Default retry policy of links and storages (§7.4).
    pub retry: Option<Field<Object<RawRetry>>>,
    /// Write a chain's storages concurrently; env `CONSERVER_PARALLEL_STORAGE`. Default `true`.
    pub parallel_storage: Option<Field<bool>>,
    /// Largest vCon a link may produce, in bytes (≥ 1). Default 67108864.
    pub max_vcon_bytes: Option<Field<i64>>,
    /// Largest recording a transcription link downloads, in bytes (≥ 1). Default 268435456.
    pub max_media_bytes: Option<Field<i64>>,
    /// Seconds (≥ 0) in-flight vCons get to finish on SIGTERM/SIGINT. Default 30.
    pub shutdown_grace: Option<Field<f64>>,
}

/// A retry object (config.md §7.4).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    /// Tries in total, including the first (1 … 100; 1 = no retry). Default 6.
    pub attempts: Option<Field<i64>>,
    /// Seconds (≥ 0) before the second try. Default 1.
    pub initial_backoff: Option<Field<f64>>,
    /// Upper bound of one wait in seconds (≥ `initial_backoff`). Default 65.
    pub max_backoff: Option<Field<f64>>,
    /// Growth of the wait between tries (≥ 1). Default 2.
    pub multiplier: Option<Field<f64>>,
}

/// An `ingress_auth` value: one key, or a list of keys.
#[derive(Debug, Clone)]
pub struct KeyOrKeys(pub Vec<Field<String>>);

impl Coerce for KeyOrKeys {
    const EXPECTED: &'static str = "a key or a list of keys";
    fn coerce(value: &Value) -> Option<Self> {
        match value {
            Value::Array(items) => Some(KeyOrKeys(
                items.iter().cloned().map(Field::from_value).collect(),
            )),
            Value::Null => None,
            scalar => String::coerce(scalar).map(|key| KeyOrKeys(vec![Field::Valid(key)])),
        }
    }
}
