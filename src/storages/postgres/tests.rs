use serde_json::{json, Value};

use super::*;
use crate::modules::read_in_test;

fn options(options: Value) -> Result<PostgresOptions, Vec<String>> {
    read_in_test(options)
}

#[test]
fn defaults_are_the_python_server_s() {
    let defaults = options(json!({})).unwrap();
    assert_eq!(defaults.host, "localhost");
    assert_eq!(defaults.port, 5432);
    assert_eq!(defaults.database, "vcon_db");
    assert_eq!(defaults.user, "postgres");
    assert_eq!(defaults.password, "");
    assert_eq!(defaults.table_name.quoted(), "\"vcons\"");
    assert_eq!(defaults.sslmode, SslMode::Prefer);
}

#[test]
fn given_values_lenient_forms_and_the_ignored_name() {
    let given = options(json!({
        "host": "db.internal", "port": "6432", "database": "calls", "user": "conserver",
        "password": "s3cret", "table_name": "archive.vcons", "sslmode": "verify-full",
        "name": "postgres",
    }))
    .unwrap();
    assert_eq!(given.port, 6432);
    assert_eq!(given.table_name.quoted(), "\"archive\".\"vcons\"");
    assert_eq!(given.sslmode, SslMode::VerifyFull);
    for mode in ["disable", "prefer", "require"] {
        assert!(options(json!({ "sslmode": mode })).is_ok(), "{mode}");
    }
}

#[test]
fn every_bad_option_is_reported_at_its_path() {
    let problems = options(json!({
        "table_name": "vcons; DROP TABLE vcons", "sslmode": "allow", "port": 70000,
        "host": "", "dbname": "x",
    }))
    .unwrap_err();
    let joined = problems.join("\n");
    for expected in [
        "options.table_name: \"vcons; DROP TABLE vcons\" is not a table name",
        "options.sslmode:",
        "options.port:",
        "options.host: must not be empty",
        "options.dbname: unknown key \"dbname\"",
    ] {
        assert!(joined.contains(expected), "{expected} in:\n{joined}");
    }
}

#[test]
fn the_password_never_shows_in_debug_output() {
    let given = options(json!({ "password": "s3cret" })).unwrap();
    let shown = format!("{given:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(shown.contains("password: \"***\""), "{shown}");
}

fn saved(text: &str) -> Saved {
    Saved::from_text(Uuid::nil(), text.to_owned()).unwrap()
}

#[test]
fn the_row_columns_as_the_spec_says() {
    let vcon = saved(
        r#"{"vcon":"0.4.0","uuid":"u","created_at":"2024-05-02T00:30:00+02:00","subject":"Billing"}"#,
    );
    let row = Row::of(&vcon);
    assert_eq!(row.version, "0.4.0");
    assert_eq!(row.subject, Some("Billing"));
    // Converted to UTC: 00:30 at +02:00 is 22:30 the day before.
    assert_eq!(row.created_at.to_string(), "2024-05-01 22:30:00");

    let bare = saved(r#"{"uuid":"u","subject":7,"created_at":"not a date"}"#);
    let mut bare_with_instant = bare.clone();
    bare_with_instant.index_instant = 1_714_564_800;
    let row = Row::of(&bare_with_instant);
    assert_eq!(row.version, "");
    assert_eq!(row.subject, None, "a subject that is not a string is NULL");
    assert_eq!(
        row.created_at.to_string(),
        "2024-05-01 12:00:00",
        "an unreadable created_at falls back to the index instant"
    );

    let fraction = saved(r#"{"created_at":"2024-05-01T12:00:00.250Z"}"#);
    assert_eq!(
        Row::of(&fraction).created_at.to_string(),
        "2024-05-01 12:00:00.250"
    );
}
