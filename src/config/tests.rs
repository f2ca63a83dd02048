//! Whole-config tests: files as operators write them, through `Config`'s public interface.

use std::time::Duration;

use serde_json::json;

use super::*;
use crate::modules::Kind;

fn env(pairs: &[(&str, &str)]) -> Env {
    Env(pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

fn compile(text: &str) -> Result<Config, ConfigError> {
    Config::from_yaml(text, None, &Env::default())
}

/// The problems of an invalid config, as `path: message` lines.
fn problems(text: &str, env: &Env) -> Vec<ConfigProblem> {
    match Config::from_yaml(text, None, env) {
        Err(ConfigError::Invalid(problems)) => problems,
        Err(other) => panic!("expected config problems, got {other}"),
        Ok(_) => panic!("expected config problems, the config is valid"),
    }
}

fn paths(problems: &[ConfigProblem]) -> Vec<String> {
    problems.iter().map(|p| p.path.to_string()).collect()
}

/// config.md §12, verbatim.
const SPEC_EXAMPLE: &str = r#"
redis:
  url: ${REDIS_URL:-redis://127.0.0.1:6379}
  vcon_ttl: 3600
  dlq_ttl: 604800

api:
  bind: 0.0.0.0:8000
  prefix: /api
  token_file: /run/secrets/conserver_tokens

limits:
  default_workers: 8
  http_timeout: 60
  retry: {attempts: 5, initial_backoff: 1, max_backoff: 30}

ingress_auth:
  partner_calls: ${PARTNER_KEY}
  support_calls: ["${SUPPORT_KEY_1}", "${SUPPORT_KEY_2}"]

links:
  only_with_dialog:
    module: links.jq_link
    options:
      filter: '.dialog | length > 0'
      forward_matches: true
  sample:
    module: sampler
    options: {method: percentage, value: 25}
  transcribe:
    module: links.transcribe
    options:
      vendor: deepgram
      vendor_options:
        DEEPGRAM_KEY: ${DEEPGRAM_KEY}
        minimum_duration: 30
        api: {model: nova-2, smart_format: true, detect_language: true}
    retry: {attempts: 8, max_backoff: 120}
  summarize:
    module: links.analyze
    options:
      OPENAI_API_KEY: ${OPENAI_API_KEY}
      base_url: ${OPENAI_BASE_URL:-https://api.openai.com/v1}
      model: gpt-4o-mini
      analysis_type: summary
      prompt: "Summarize this call in three sentences."
  tag:
    module: links.tag
    options: {tags: [processed]}
  route:
    module: links.tag_router
    options:
      tag_routes: {urgent: urgent_calls}
      forward_original: true
  enrich:
    module: http_link
    options:
      url: http://enricher.internal:9000/enrich
      halt_status: 422
  keep_a_day:
    module: links.expire_vcon
    options: {seconds: 86400}
  notify:
    module: links.webhook
    options:
      webhook-urls: ["https://hooks.example.com/vcon"]
      headers: {Authorization: "Bearer ${HOOK_TOKEN}"}

storages:
  pg:
    module: storage.postgres
    options:
      host: ${PG_HOST:-localhost}
      port: 5432
      database: vcon_db
      user: postgres
      password: ${PG_PASSWORD}
      table_name: vcons
  s3:
    module: s3
    options:
      aws_access_key_id: ${AWS_ACCESS_KEY_ID}
      aws_secret_access_key: ${AWS_SECRET_ACCESS_KEY}
      aws_bucket: vcons-archive
      aws_region: us-east-1
      s3_path: prod
  files:
    module: storage.file
    options:
      path: /data/vcons
      compression: true

chains:
  main:
    links: [only_with_dialog, sample, transcribe, summarize, enrich, tag, route, keep_a_day]
    storages: [pg, s3]
    ingress_lists: [default_ingress, partner_calls, support_calls]
    egress_lists: [processed]
    timeout: 900
    workers: 8
  urgent:
    links: [notify]
    storages: [files]
    ingress_lists: [urgent_calls]
    enabled: yes

followers:
  upstream:
    url: https://upstream.example.com/api
    egress_list: shared_out
    follower_ingress_list: default_ingress
    auth_token: ${UPSTREAM_TOKEN}
    fetch_vcon_limit: 50
    pulling_interval: 5
"#;

fn spec_example_env(token_file: &std::path::Path) -> Env {
    let mut env = env(&[
        ("PARTNER_KEY", "partner-secret"),
        ("SUPPORT_KEY_1", "support-1"),
        ("SUPPORT_KEY_2", "support-2"),
        ("DEEPGRAM_KEY", "dg"),
        ("OPENAI_API_KEY", "sk-test"),
        ("HOOK_TOKEN", "hook"),
        ("PG_PASSWORD", "pg-pass"),
        ("AWS_ACCESS_KEY_ID", "AKIA"),
        ("AWS_SECRET_ACCESS_KEY", "aws-secret"),
        ("UPSTREAM_TOKEN", "up"),
    ]);
    env.0.insert(
        "CONSERVER_API_TOKEN_FILE".into(),
        token_file.display().to_string(),
    );
    env
}

#[test]
fn the_complete_example_of_the_spec_names_what_this_build_does_not_provide() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("tokens");
    std::fs::write(&token_file, "file-token\n").unwrap();
    let found = problems(SPEC_EXAMPLE, &spec_example_env(&token_file));
    assert_eq!(
        paths(&found),
        ["links.summarize.module", "followers.upstream",]
    );
    assert!(found[0]
        .message
        .starts_with("module \"analyze\" is not available in this build yet. Links available in this build: tag, "));
    assert!(found[1]
        .message
        .starts_with("followers are not available in this build yet"));
}

/// The spec's example with only what this build provides: the transcription and LLM links,
/// the PostgreSQL and S3 storages and the follower taken out; `enrich` given the retry keys
/// of `transcribe`.
fn spec_example_of_this_build() -> String {
    let mut document: serde_json::Value = serde_norway::from_str(SPEC_EXAMPLE).unwrap();
    let links = document["links"].as_object_mut().unwrap();
    links.shift_remove("transcribe");
    links.shift_remove("summarize");
    links["enrich"]["retry"] = json!({"attempts": 8, "max_backoff": 120});
    let storages = document["storages"].as_object_mut().unwrap();
    storages.shift_remove("pg");
    storages.shift_remove("s3");
    document.as_object_mut().unwrap().shift_remove("followers");
    document["chains"]["main"]["links"] = json!([
        "only_with_dialog",
        "sample",
        "enrich",
        "tag",
        "route",
        "keep_a_day"
    ]);
    document["chains"]["main"]["storages"] = json!(["files"]);
    super::yaml::write(&document)
}

#[test]
fn the_complete_example_of_the_spec_compiles_with_what_this_build_provides() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("tokens");
    std::fs::write(&token_file, "# tokens\nfile-token\n\n  second  \n").unwrap();
    let config = Config::from_yaml(
        &spec_example_of_this_build(),
        None,
        &spec_example_env(&token_file),
    )
    .unwrap();

    assert_eq!(config.redis.url.as_deref(), Some("redis://127.0.0.1:6379"));
    assert_eq!(config.api.bind, "0.0.0.0:8000");
    assert_eq!(config.api.tokens, ["file-token", "second"]);
    assert_eq!(config.api.token_file.as_deref(), Some(token_file.as_path()));
    assert_eq!(config.limits.default_workers, 8);
    assert_eq!(config.limits.http_timeout, Duration::from_secs(60));
    let limits_retry = Retry {
        attempts: 5,
        initial_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(30),
        multiplier: 2.0,
    };
    assert_eq!(config.limits.retry, limits_retry);

    let modules: Vec<(&str, &str)> = config
        .links
        .iter()
        .map(|l| (l.name.as_str(), l.kind.name()))
        .collect();
    assert_eq!(modules[0], ("only_with_dialog", "jq_link"));
    assert_eq!(modules[4], ("enrich", "http_link"));
    assert_eq!(modules.len(), 7);
    let enrich = &config.links[4];
    // A module's own retry keys win; the others come from limits.retry.
    assert_eq!(
        enrich.retry,
        Retry {
            attempts: 8,
            max_backoff: Duration::from_secs(120),
            ..limits_retry.clone()
        }
    );
    assert_eq!(
        enrich.options["url"],
        "http://enricher.internal:9000/enrich"
    );
    assert_eq!(
        config.links[6].options["headers"]["Authorization"],
        "Bearer hook"
    );
    assert_eq!(config.links[5].retry, limits_retry);

    let storages: Vec<&str> = config.storages.iter().map(|s| s.kind.name()).collect();
    assert_eq!(storages, ["file"]);
    assert_eq!(config.storages[0].options["path"], "/data/vcons");

    let main = &config.chains[0];
    assert_eq!(main.links.len(), 6);
    assert_eq!(main.timeout, Some(Duration::from_secs(900)));
    assert_eq!(main.workers, 8);
    let urgent = &config.chains[1];
    assert!(urgent.enabled);
    assert_eq!(
        urgent.workers, 8,
        "chains without workers use limits.default_workers"
    );
    assert_eq!(
        config
            .chain_reading("support_calls")
            .map(|c| c.name.as_str()),
        Some("main")
    );

    assert_eq!(
        config.ingress_auth,
        vec![
            (
                "partner_calls".to_owned(),
                vec!["partner-secret".to_owned()]
            ),
            (
                "support_calls".to_owned(),
                vec!["support-1".to_owned(), "support-2".to_owned()]
            ),
        ]
    );

    // The document is the file as written, uninterpolated, in file order.
    assert_eq!(
        config.document["ingress_auth"]["partner_calls"],
        "${PARTNER_KEY}"
    );
    let sections: Vec<&String> = config.document.as_object().unwrap().keys().collect();
    assert_eq!(
        sections,
        [
            "redis",
            "api",
            "limits",
            "ingress_auth",
            "links",
            "storages",
            "chains"
        ]
    );
}

/// A Python server's `config.yml` as its documentation shows it.
const PYTHON_FILE: &str = r#"
links:
  tag:
    module: conserver.links.tag
    ingress-lists: [a]
    egress-lists: [b]
    options:
      tags: [x]
  transcribe:
    module: links.deepgram_link
    options: {DEEPGRAM_KEY: k}
storages:
  mongo:
    module: common.storage.mongo
    options: {url: "mongodb://root:example@mongo:27017/"}
tracers:
  jlinc:
    module: conserver.tracers.jlinc
followers: null
imports: {}
ingress_auth: ~
chains:
  chain_1:
    links:
      - tag
      - transcribe
    storages:
      - mongo
    ingress_lists:
      - default_ingress
    egress_lists:
      - default_egress
    enabled: 1
"#;

#[test]
fn python_config_files_load_unchanged() {
    // Every name form resolves; what this build lacks is named as such, and nothing else.
    let found = problems(PYTHON_FILE, &Env::default());
    assert_eq!(paths(&found), ["tracers.jlinc.module"]);
    assert!(found
        .iter()
        .all(|p| p.message.contains("is not available in this build yet")));

    let this_build = PYTHON_FILE
        .replace("links.deepgram_link", "links.expire_vcon")
        .replace("options: {DEEPGRAM_KEY: k}", "options: {seconds: 60}")
        .replace("common.storage.mongo", "common.storage.file")
        .replace(
            "{url: \"mongodb://root:example@mongo:27017/\"}",
            "{path: /tmp/x}",
        )
        .replace(
            "tracers:\n  jlinc:\n    module: conserver.tracers.jlinc\n",
            "",
        );
    let config = compile(&this_build).unwrap();
    assert_eq!(config.links[0].kind, LinkKind::Tag);
    assert_eq!(config.links[1].kind, LinkKind::ExpireVcon);
    assert_eq!(config.storages[0].kind, StorageKind::File);
    assert!(config.chains[0].enabled);
    assert!(config.redis.url.is_none(), "no URL: the embedded store");
    let warnings = config.warnings.join("\n");
    assert!(
        warnings.contains("links.tag.ingress-lists: ignored"),
        "{warnings}"
    );
    assert!(
        warnings.contains("links.tag.egress-lists: ignored"),
        "{warnings}"
    );
}

#[test]
fn empty_and_null_files_are_the_empty_configuration() {
    for text in [
        "",
        "# just a comment\n",
        "null\n",
        "links:\nchains:\nredis:\n",
    ] {
        let config = compile(text).unwrap();
        assert!(
            config.chains.is_empty() && config.links.is_empty(),
            "{text:?}"
        );
        assert_eq!(config.api.prefix, "/api");
        assert_eq!(config.api.bind, "127.0.0.1:8000");
        assert_eq!(config.api.header_name, "x-conserver-api-token");
        assert_eq!(config.redis.sorted_set, "vcons");
        assert_eq!(
            (
                config.redis.vcon_ttl,
                config.redis.dlq_ttl,
                config.redis.index_ttl
            ),
            (3600, 604_800, 86_400)
        );
        assert_eq!(config.redis.heartbeat_ttl, 30);
        assert!(
            config.redis.storage_fallback
                && config.limits.parallel_storage
                && config.api.accept_signed
        );
        assert_eq!(config.limits.default_workers, 4);
        assert_eq!(config.limits.retry, Retry::default());
        assert_eq!(config.api.cors_allow_origins, ["*"]);
        assert!(config.document.as_object().is_some());
    }
}

#[test]
fn the_repository_config_is_valid() {
    let text = include_str!("../../config.yaml");
    let config = Config::from_yaml(text, None, &Env::default()).unwrap();
    assert!(config.redis.url.is_none());
    assert_eq!(config.api.bind, "127.0.0.1:8000");
    let main = config.chain_reading("default_ingress").unwrap();
    assert_eq!(main.name, "main");
    assert_eq!(main.links, ["tag", "expire_vcon"]);
    assert_eq!(main.storages, ["files"]);
    assert_eq!(main.egress_lists, ["processed"]);
    assert_eq!(
        config.links[0].options,
        json!({"tags": ["demo"]}).as_object().unwrap().clone()
    );
    assert_eq!(config.storages[0].kind, StorageKind::File);
    assert_eq!(config.storages[0].options["path"], "./data/vcons");
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

const BROKEN: &str = "\
storage:
  files: {module: file}
redis:
  cluster: true
api:
  prefix: /vcon
  bind: 0.0.0.0
links:
  custom:
    module: links.custom_link_module
    pip_name: my-package
  tag:
    module: tag
    retry: {attempts: 3}
  hook:
    module: webhook
    retry: {attempts: 0, multipler: 2}
chains:
  main:
    links: [tag, missing, {analyze: {model: x}}]
    ingress_lists: [in, 'DLQ:x']
    egress_lists: [in]
    workers: 0
    enabled: maybe
  other:
    links: []
    ingress_lists: [in]
ingress_auth:
  in: ''
";

#[test]
fn every_problem_is_reported_at_once_with_its_path() {
    let found = problems(BROKEN, &Env::default());
    let expected = [
        ("storage", "did you mean \"storages\"?"),
        ("redis.cluster", "not available in this build yet"),
        ("api.bind", "has no port"),
        ("api.prefix", "begins with /vcon"),
        (
            "links.custom.module",
            "module \"custom_link_module\" is not a built-in link",
        ),
        ("links.custom.pip_name", "cannot be installed"),
        ("links.tag.retry", "makes no network call"),
        ("links.hook.retry.multipler", "did you mean \"multiplier\"?"),
        (
            "links.hook.retry.attempts",
            "must be an integer >= 1, found 0",
        ),
        ("chains.main.links[1]", "no link named \"missing\""),
        ("chains.main.links[2]", "inline form"),
        ("chains.main.ingress_lists[1]", "reserved"),
        ("chains.main.workers", "must be an integer >= 1"),
        ("chains.main.enabled", "must be a boolean"),
        ("chains.main.egress_lists[0]", "loop forever"),
        (
            "chains.other.ingress_lists[0]",
            "already read by the enabled chain \"main\"",
        ),
        ("ingress_auth.in", "must not be empty"),
    ];
    for (path, words) in expected {
        assert!(
            found
                .iter()
                .any(|p| p.path == path && p.message.contains(words)),
            "no problem at {path} containing {words:?} in:\n{}",
            found
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    assert_eq!(found.len(), expected.len(), "{found:#?}");
}

#[test]
fn problems_carry_their_file_line() {
    let found = problems(BROKEN, &Env::default());
    let line = |path: &str| found.iter().find(|p| p.path == path).and_then(|p| p.line);
    assert_eq!(line("storage"), Some(1));
    assert_eq!(line("links.custom.module"), Some(10));
    assert_eq!(line("chains.main.workers"), Some(23));
    // Flow lists point at their key's line.
    assert_eq!(line("chains.main.links[2]"), Some(20));
}

#[test]
fn problems_become_422_items() {
    let problem = ConfigProblem {
        path: YamlPath::root()
            .key("chains")
            .key("main")
            .key("links")
            .index(2),
        line: Some(4),
        message: "bad".into(),
    };
    assert_eq!(
        serde_json::to_value(problem.to_problem()).unwrap(),
        json!({"type": "config", "loc": ["body", "chains", "main", "links", 2], "path": "$.chains.main.links[2]", "msg": "bad"})
    );
    let odd = ConfigProblem {
        path: YamlPath::root().key("links").key("my.link").key("module"),
        line: None,
        message: "m".into(),
    };
    let item = serde_json::to_value(odd.to_problem()).unwrap();
    assert_eq!(item["loc"], json!(["body", "links", "my.link", "module"]));
    assert_eq!(
        item["path"],
        "$['my.link'].module".replace("$[", "$.links[")
    );
    let root = ConfigProblem::whole("m");
    assert_eq!(
        serde_json::to_value(root.to_problem()).unwrap()["loc"],
        json!(["body"])
    );
    assert_eq!(root.to_string(), "(top level): m");
}

#[test]
fn yaml_syntax_errors_stop_early_with_their_line() {
    match compile("links:\n  a: {module: tag\nchains: {}\n") {
        Err(ConfigError::Syntax(message)) => assert!(message.contains("line"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_keys_are_reported_at_every_level() {
    let text = "\
links:
  a: {module: tag, option: {}}
storages:
  s: {module: file, opts: {}}
tracers:
  t: {module: jlinc, retry: {attempts: 2}}
chains:
  c: {links: [a], ingress_list: [x], ingress_lists: [y]}
followers:
  f: {url: 'http://h', egress_list: e, follower_ingress_list: y, intervall: 3}
redis: {ttl: 1}
api: {tokenz: []}
limits: {retry: {tries: 3}, workers: 2}
";
    let found = problems(text, &Env::default());
    assert_eq!(
        paths(&found),
        [
            "links.a.option",
            "storages.s.opts",
            "tracers.t.retry",
            "tracers.t.module",
            "chains.c.ingress_list",
            "followers.f",
            "redis.ttl",
            "api.tokenz",
            "limits.retry.tries",
            "limits.workers",
        ]
    );
    assert!(found[0].message.contains("did you mean \"options\"?"));
    assert!(found[4].message.contains("did you mean \"ingress_lists\"?"));
    assert_eq!(
        found[7].message,
        "unknown key \"tokenz\" (did you mean \"tokens\"?)"
    );
}

#[test]
fn types_are_coerced_as_the_python_server_read_them() {
    let text = "\
redis: {vcon_ttl: '120', storage_fallback: 'off', heartbeat_ttl: 10}
api: {max_body_bytes: '2048', accept_signed: n, tokens: [12345]}
limits: {http_timeout: '2.5', parallel_storage: 0, retry: {multiplier: '1.5'}}
links: {t: {module: tag}}
chains:
  c: {links: [t], ingress_lists: [in], enabled: 'Yes', timeout: '1.5', workers: '3'}
";
    let config = compile(text).unwrap();
    assert_eq!(config.redis.vcon_ttl, 120);
    assert!(!config.redis.storage_fallback);
    assert_eq!(config.api.max_body_bytes, 2048);
    assert!(!config.api.accept_signed);
    assert_eq!(config.api.tokens, ["12345"]);
    assert_eq!(config.limits.http_timeout, Duration::from_millis(2500));
    assert!(!config.limits.parallel_storage);
    assert_eq!(config.limits.retry.multiplier, 1.5);
    let chain = &config.chains[0];
    assert!(chain.enabled);
    assert_eq!(chain.timeout, Some(Duration::from_millis(1500)));
    assert_eq!(chain.workers, 3);

    let found = problems(
        "redis: {vcon_ttl: 1.5, cluster: maybe, url: [x]}\napi: {tokens: x}\n",
        &Env::default(),
    );
    let messages: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        [
            "redis.vcon_ttl (line 1): must be an integer >= 0, found 1.5",
            "redis.cluster (line 1): must be a boolean (true/false, yes/no, on/off, 1/0), found \"maybe\"",
            "redis.url (line 1): must be a string, found a list",
            "api.tokens (line 2): must be a list, found \"x\"",
        ]
    );
}

#[test]
fn interpolation_is_applied_and_undefined_variables_are_named_with_their_path() {
    let text = "\
redis: {url: '${REDIS:-redis://localhost:6379}', vcon_ttl: '${TTL:-60}'}
links:
  hook:
    module: http_link
    options: {url: 'https://${HOST}/x', headers: {X-Literal: 'cost $${PRICE}', X-Token: '${TOKEN}'}}
";
    let config = Config::from_yaml(
        text,
        None,
        &env(&[("HOST", "h"), ("TOKEN", "t"), ("TTL", "90")]),
    )
    .unwrap();
    assert_eq!(config.redis.url.as_deref(), Some("redis://localhost:6379"));
    assert_eq!(config.redis.vcon_ttl, 90);
    let options = &config.links[0].options;
    assert_eq!(options["url"], "https://h/x");
    assert_eq!(options["headers"]["X-Literal"], "cost ${PRICE}");
    assert_eq!(
        config.document["links"]["hook"]["options"]["headers"]["X-Token"],
        "${TOKEN}"
    );

    let found = problems(text, &env(&[("HOST", "h"), ("TTL", "abc")]));
    let messages: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        [
            "redis.vcon_ttl (line 1): must be an integer >= 0, found \"abc\"",
            "links.hook.options.headers.X-Token (line 5): environment variable TOKEN is not set (referenced as ${TOKEN})",
        ]
    );

    // An unset variable where a number is expected is one problem, not two.
    let found = problems("redis: {vcon_ttl: '${NOPE}'}\n", &Env::default());
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].message.contains("NOPE"));
}

#[test]
fn the_environment_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("tokens");
    std::fs::write(&token_file, "from-file\nshared\n").unwrap();
    let text = "\
redis: {url: 'redis://file:6379', vcon_ttl: 10, dlq_ttl: 20, index_ttl: 30, sorted_set: s, storage_fallback: true,
        instance_id: file-id}
api: {bind: '127.0.0.1:1', prefix: /file, tokens: [shared, config], header_name: X-File}
limits: {default_workers: 2, parallel_storage: true}
";
    let from_file = compile(text).unwrap();
    assert_eq!(from_file.redis.url.as_deref(), Some("redis://file:6379"));
    assert_eq!(from_file.api.tokens, ["shared", "config"]);
    assert_eq!(from_file.api.header_name, "x-file");
    assert_eq!(from_file.redis.instance_id, "file-id");

    let overrides = env(&[
        ("REDIS_URL", "redis://env:6379"),
        ("VCON_REDIS_EXPIRY", "0"),
        ("VCON_DLQ_EXPIRY", "5"),
        ("VCON_INDEX_EXPIRY", "6"),
        ("VCON_SORTED_SET_NAME", "env_set"),
        ("VCON_STORAGE_FALLBACK_ENABLED", "no"),
        ("CONSERVER_INSTANCE_ID", "env-id"),
        ("CONSERVER_BIND", "[::]:9000"),
        ("API_ROOT_PATH", "/"),
        ("CONSERVER_API_TOKEN", "from-env"),
        ("CONSERVER_API_TOKEN_FILE", token_file.to_str().unwrap()),
        ("CONSERVER_HEADER_NAME", "X-Env-Token"),
        ("CONSERVER_WORKERS", "3"),
        ("CONSERVER_VCON_CONCURRENCY", "2"),
        ("CONSERVER_PARALLEL_STORAGE", "false"),
        ("LOG_LEVEL", ""),
    ]);
    let config = Config::from_yaml(text, None, &overrides).unwrap();
    assert_eq!(config.redis.url.as_deref(), Some("redis://env:6379"));
    assert_eq!(
        (
            config.redis.vcon_ttl,
            config.redis.dlq_ttl,
            config.redis.index_ttl
        ),
        (0, 5, 6)
    );
    assert_eq!(config.redis.sorted_set, "env_set");
    assert!(!config.redis.storage_fallback);
    assert_eq!(config.redis.instance_id, "env-id");
    assert_eq!(config.api.bind, "[::]:9000");
    assert_eq!(config.api.prefix, "");
    assert_eq!(
        config.api.tokens,
        ["from-env", "from-file", "shared", "config"]
    );
    assert_eq!(config.api.token_file.as_deref(), Some(token_file.as_path()));
    assert_eq!(config.api.header_name, "x-env-token");
    assert_eq!(config.limits.default_workers, 6);
    assert!(!config.limits.parallel_storage);
    // Environment overrides are not merged into the document.
    assert_eq!(config.document["redis"]["url"], "redis://file:6379");

    // An empty variable counts as unset.
    let config = Config::from_yaml(
        text,
        None,
        &env(&[("REDIS_URL", ""), ("API_ROOT_PATH", "")]),
    )
    .unwrap();
    assert_eq!(config.redis.url.as_deref(), Some("redis://file:6379"));
    assert_eq!(config.api.prefix, "/file");

    // A bad environment value is a problem naming the variable, without a file line.
    let found = problems(
        text,
        &env(&[("VCON_INDEX_EXPIRY", "0"), ("CONSERVER_BIND", "nowhere")]),
    );
    assert_eq!(paths(&found), ["redis.index_ttl", "api.bind"]);
    assert!(found.iter().all(|p| p.line.is_none()));
    assert!(found[0].message.contains("VCON_INDEX_EXPIRY"));
}

#[test]
fn an_empty_redis_url_means_the_embedded_store() {
    let config = compile("redis: {url: '${REDIS_URL:-}'}\n").unwrap();
    assert!(config.redis.url.is_none());
    let found = problems(
        "redis: {url: '${REDIS_URL:-}', cluster: true}\n",
        &Env::default(),
    );
    assert_eq!(paths(&found), ["redis.cluster"]);
}

#[test]
fn default_instance_id_is_used_without_a_setting() {
    let config = compile("").unwrap();
    assert!(config.redis.instance_id.ends_with(&format!(
        "-{}-{}",
        std::process::id(),
        &config.redis.instance_id[config.redis.instance_id.len() - 4..]
    )));
    let bad = problems("redis: {instance_id: 'a b'}\n", &Env::default());
    assert_eq!(paths(&bad), ["redis.instance_id"]);
}

#[test]
fn settings_checks() {
    let found = problems(
        "\
redis: {url: 'http://x', heartbeat_ttl: 4, json_module: true, key_prefix: 'a{b}'}
api: {max_body_bytes: 10, token_file: /nonexistent/tokens, header_name: 'bad header', tokens: ['']}
limits: {http_timeout: 0, shutdown_grace: -1, retry: {attempts: 101, initial_backoff: 10, max_backoff: 5, multiplier: 0.5}}
",
        &Env::default(),
    );
    assert_eq!(
        paths(&found),
        [
            "redis.heartbeat_ttl",
            "redis.url",
            "redis.key_prefix",
            "api.max_body_bytes",
            "api.header_name",
            "api.token_file",
            "api.tokens[0]",
            "limits.http_timeout",
            "limits.shutdown_grace",
            "limits.retry.attempts",
            "limits.retry.multiplier",
            "limits.retry.max_backoff",
        ]
    );
    // json_module is allowed with a URL; the bad one still counts as configured.
    assert!(!found.iter().any(|p| p.path == "redis.json_module"));
    let found = problems("redis: {json_module: yes}\n", &Env::default());
    assert_eq!(paths(&found), ["redis.json_module"]);
}

#[test]
fn module_rules() {
    let found = problems(
        "\
links:
  a: {module: storage.file}
  b: {options: {}}
  c: {module: tag, options: [x]}
  'bad name': {module: tag}
storages:
  s: {module: links.tag}
  r: {module: redis_storage, retry: {attempts: 2}}
  w: {module: webhook, retry: {attempts: 2}}
tracers:
  t: {module: tracers.other}
imports:
  custom_utility: {module: utils.custom, pip_name: x}
",
        &Env::default(),
    );
    assert_eq!(
        paths(&found),
        [
            "links.a.module",
            "links.b.module",
            "links.c.options",
            "links[\"bad name\"]",
            "storages.s.module",
            "storages.r.retry",
            "tracers.t.module",
            "imports.custom_utility",
        ]
    );
    assert!(found[0]
        .message
        .contains("\"storage.file\" is not a built-in link"));
    assert!(found[4]
        .message
        .contains("Built-in storages: chatgpt_files"));
    assert!(found[6].message.contains("Built-in tracers: jlinc."));
    assert!(found[7]
        .message
        .contains("\"utils.custom\" cannot be imported"));
    assert_eq!(
        paths(&problems("imports: [x]\n", &Env::default())),
        ["imports"]
    );
}

#[test]
fn list_and_reference_rules() {
    let found = problems(
        "\
links: {t: {module: tag}}
storages: {r: {module: redis_storage, options: {prefix: archive}}}
tracers: {j: {module: jlinc}}
chains:
  a:
    links: [t]
    storages: [r, nope]
    tracers: [j, jj]
    ingress_lists: ['archive:x', 'has space', 'a{b}', in, in]
  b:
    links: [t]
    ingress_lists: [in]
    enabled: false
  c:
    storages: [r]
    ingress_lists: [other]
followers:
  f1: {url: 'http://up', egress_list: out, follower_ingress_list: nobody}
  f2: {url: 'ftp://up', egress_list: '', follower_ingress_list: in}
  f3: {}
ingress_auth:
  in: [k1, 5, '']
  unread: k
",
        &Env::default(),
    );
    assert_eq!(
        paths(&found),
        [
            "tracers.j.module",
            "chains.a.storages[1]",
            "chains.a.tracers[1]",
            "chains.a.ingress_lists[0]",
            "chains.a.ingress_lists[1]",
            "chains.a.ingress_lists[2]",
            "chains.a.ingress_lists[4]",
            "chains.c.links",
            "followers.f1",
            "followers.f2",
            "followers.f3",
            "ingress_auth.in[2]",
        ]
    );
    assert!(
        found[2].message.contains("did you mean \"j\"?"),
        "{}",
        found[2]
    );
    assert!(found[3].message.contains("\"archive:\""), "{}", found[3]);
    // A disabled chain may share an ingress list; no problem for chains.b.
}

#[test]
fn warnings_are_collected() {
    let config = compile(
        "\
links: {t: {module: tag}}
chains: {idle: {links: [t]}}
ingress_auth: {nobody_reads: k}
",
    )
    .unwrap();
    let warnings = config.warnings.join("\n");
    assert!(
        warnings.contains("chains.idle: no ingress_lists"),
        "{warnings}"
    );
    assert!(
        warnings.contains("ingress_auth.nobody_reads: no enabled chain reads"),
        "{warnings}"
    );
}

#[test]
fn redaction_of_a_loaded_config() {
    let text = "\
redis: {url: 'redis://user:hunter2@redis:6379/0', key_prefix: 'p:'}
api: {tokens: [a, b]}
ingress_auth: {in: '${KEY}'}
links:
  hook:
    module: webhook
    options:
      webhook-urls: ['https://u:pw@hooks.example.com/x']
      headers: {Authorization: 'Bearer ${TOKEN}'}
  llm:
    module: http_link
    options: {url: 'http://llm.internal', headers: {X-Api-Key: '${OPENAI_API_KEY}'}}
chains: {c: {links: [hook, llm], ingress_lists: [in]}}
";
    let config = Config::from_yaml(
        text,
        None,
        &env(&[("KEY", "k"), ("TOKEN", "t"), ("OPENAI_API_KEY", "sk")]),
    )
    .unwrap();
    let shown = config.redacted();
    assert_eq!(
        shown["redis"],
        json!({"url": "redis://user:***@redis:6379/0", "key_prefix": "p:"})
    );
    assert_eq!(shown["api"]["tokens"], json!(["***", "***"]));
    assert_eq!(shown["ingress_auth"]["in"], "***");
    assert_eq!(
        shown["links"]["hook"]["options"]["webhook-urls"],
        json!(["https://u:***@hooks.example.com/x"])
    );
    assert_eq!(
        shown["links"]["hook"]["options"]["headers"]["Authorization"],
        "***"
    );
    assert_eq!(
        shown["links"]["llm"]["options"],
        json!({"url": "http://llm.internal", "headers": {"X-Api-Key": "${OPENAI_API_KEY}"}})
    );
}

#[test]
fn posting_back_the_redacted_document_keeps_every_secret() {
    let text = "\
redis: {url: 'redis://user:hunter2@redis:6379/0'}
api: {tokens: [a, b]}
ingress_auth: {in: secret-key}
links: {hook: {module: webhook, options: {headers: {Authorization: Bearer xyz}}}}
chains: {c: {links: [hook], ingress_lists: [in]}}
";
    let path = std::path::PathBuf::from("/etc/conserver/config.yml");
    let current = Config::from_yaml(text, Some(path.clone()), &Env::default()).unwrap();
    let mut posted = current.redacted();
    posted["chains"]["c"]["workers"] = json!(2);

    let updated = Config::from_posted(posted, &current, &Env::default()).unwrap();
    assert_eq!(updated.path, Some(path));
    assert_eq!(updated.redis.url, current.redis.url);
    assert_eq!(updated.api.tokens, ["a", "b"]);
    assert_eq!(
        updated.ingress_auth,
        vec![("in".to_owned(), vec!["secret-key".to_owned()])]
    );
    assert_eq!(
        updated.links[0].options["headers"]["Authorization"],
        "Bearer xyz"
    );
    assert_eq!(updated.chains[0].workers, 2);
    let mut expected = current.document.clone();
    expected["chains"]["c"]["workers"] = json!(2);
    assert_eq!(updated.document, expected);
    // The YAML written for it reads back as the same document.
    let reread = Config::from_yaml(&updated.to_yaml(), None, &Env::default()).unwrap();
    assert_eq!(reread.document, updated.document);
}

#[test]
fn a_posted_mask_without_a_current_value_is_a_problem_among_the_others() {
    let current = compile("chains: {}\n").unwrap();
    let posted = json!({
        "links": {"hook": {"module": "http_link", "options": {"url": "http://h", "headers": {"X-Key": "***"}}}},
        "chains": {"c": {"links": ["nope"]}},
        "bogus": 1
    });
    match Config::from_posted(posted, &current, &Env::default()) {
        Err(ConfigError::Invalid(found)) => {
            assert_eq!(
                paths(&found),
                [
                    "links.hook.options.headers.X-Key",
                    "bogus",
                    "chains.c.links[0]"
                ]
            );
            assert!(found[0].message.contains("\"***\" keeps the current value"));
            assert!(found.iter().all(|p| p.line.is_none()));
            let item = serde_json::to_value(found[0].to_problem()).unwrap();
            assert_eq!(
                item["loc"],
                json!(["body", "links", "hook", "options", "headers", "X-Key"])
            );
        }
        other => panic!("{other:?}"),
    }
    match Config::from_posted(json!(["not", "a", "mapping"]), &current, &Env::default()) {
        Err(ConfigError::Invalid(found)) => assert_eq!(paths(&found), [""]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn summary_names_the_store_and_every_chain() {
    let config = Config::from_yaml(
        include_str!("../../config.yaml"),
        Some("config.yaml".into()),
        &Env::default(),
    )
    .unwrap();
    let summary = config.summary();
    assert!(summary.contains("configuration: config.yaml"), "{summary}");
    assert!(summary.contains("embedded in-memory store"), "{summary}");
    assert!(summary.contains("2 link(s), 1 storage(s)"), "{summary}");
    assert!(
        summary.contains("chain main (enabled, 4 worker(s))"),
        "{summary}"
    );
    assert!(summary.contains("ingress:  default_ingress"), "{summary}");
    assert!(summary.contains("links:    tag → expire_vcon"), "{summary}");
    assert!(summary.contains("egress:   processed"), "{summary}");
    let redis = Config::from_yaml(
        "redis: {url: 'redis://u:pw@h', json_module: true}\n",
        None,
        &Env::default(),
    )
    .unwrap();
    assert!(
        redis
            .summary()
            .contains("store: Redis at redis://u:***@h (RedisJSON)"),
        "{}",
        redis.summary()
    );
}

#[test]
fn python_module_loading_is_refused_with_the_message_of_the_spec() {
    let text = "\
imports:
  custom_utility: {module: custom_utils, pip_name: custom-utils-package}
  legacy_module: some.legacy.module
links:
  custom_pypi_link:
    module: custom_link_module
    pip_name: custom-link-package
    options: {api_key: your_api_key_here}
";
    let found = problems(text, &Env::default());
    assert_eq!(
        paths(&found),
        [
            "imports.custom_utility",
            "imports.legacy_module",
            "links.custom_pypi_link.module",
            "links.custom_pypi_link.pip_name",
        ]
    );
    let spec_example = "links.custom_pypi_link.module: module \"custom_link_module\" is not a built-in link. \
        conserver does not load code at run time. Built-in links: analyze, analyze_and_label, analyze_vcon, \
        check_and_tag, datatrails, deepgram_link, delay, detect_engagement, diet, expire_vcon, groq_whisper, \
        http_link, hugging_face_whisper, hugging_llm_link, jq_link, openai_transcribe, post_analysis_to_slack, \
        sampler, scitt, tag, tag_router, transcribe, webhook, wtf_transcribe. Custom processing in any language \
        can run behind http_link.";
    let shown = ConfigProblem {
        line: None,
        ..found[2].clone()
    }
    .to_string();
    assert_eq!(shown, spec_example);
    assert_eq!(found[2].line, Some(6));
    assert!(found[1]
        .message
        .contains("\"some.legacy.module\" cannot be imported"));
}
