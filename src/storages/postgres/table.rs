//! The table of the `postgres` storage: its name, checked as an identifier where the option is
//! read (no SQL can come in through the configuration), and the statements on it — the Python
//! server's schema, so that its tables are used as they are.

use std::fmt;

use serde::de::{self, Deserializer};
use serde::Deserialize;

/// PostgreSQL cuts longer identifiers (NAMEDATALEN − 1); a longer name would silently be
/// another table.
const MAX_IDENTIFIER: usize = 63;

/// `table` or `schema.table`, each part `[A-Za-z_][A-Za-z0-9_]*`.
#[derive(Clone, PartialEq, Eq)]
pub struct TableName {
    schema: Option<String>,
    table: String,
}

impl Default for TableName {
    fn default() -> Self {
        TableName {
            schema: None,
            table: "vcons".to_owned(),
        }
    }
}

impl TableName {
    /// The name as SQL: each part double-quoted (the case is kept as written).
    pub fn quoted(&self) -> String {
        match &self.schema {
            Some(schema) => format!("\"{schema}\".\"{}\"", self.table),
            None => format!("\"{}\"", self.table),
        }
    }

    fn parse(text: &str) -> Result<TableName, String> {
        let parts: Vec<&str> = text.split('.').collect();
        let (schema, table) = match parts.as_slice() {
            [table] => (None, *table),
            [schema, table] => (Some(*schema), *table),
            _ => {
                return Err(format!(
                    "{text:?} has more than one '.'; write table or schema.table"
                ))
            }
        };
        for part in schema.iter().chain([&table]) {
            check_identifier(part).map_err(|why| format!("{text:?} is not a table name: {why}"))?;
        }
        Ok(TableName {
            schema: schema.map(str::to_owned),
            table: table.to_owned(),
        })
    }
}

fn check_identifier(part: &str) -> Result<(), String> {
    let mut chars = part.chars();
    match chars.next() {
        None => return Err("a part is empty".to_owned()),
        Some(first) if !(first.is_ascii_alphabetic() || first == '_') => {
            return Err(format!("{part:?} must start with a letter or '_'"))
        }
        Some(_) => {}
    }
    if let Some(bad) = chars.find(|c| !(c.is_ascii_alphanumeric() || *c == '_')) {
        return Err(format!(
            "{part:?} may hold only letters, digits and '_', not {bad:?}"
        ));
    }
    if part.len() > MAX_IDENTIFIER {
        return Err(format!(
            "{part:?} is longer than PostgreSQL's {MAX_IDENTIFIER} characters"
        ));
    }
    Ok(())
}

impl fmt::Debug for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.quoted())
    }
}

impl<'de> Deserialize<'de> for TableName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        TableName::parse(&text).map_err(de::Error::custom)
    }
}

/// The statements of one table.
#[derive(Debug, Clone)]
pub struct Statements {
    /// The table as SQL, also for messages.
    pub table: String,
    /// `CREATE TABLE IF NOT EXISTS` with the Python server's columns.
    pub create: String,
    /// `$1` uuid, `$2` version, `$3` created_at, `$4` subject, `$5` the vCon's JSON text.
    pub upsert: String,
    /// `$1` uuid → `vcon_json` as text.
    pub select: String,
    /// `$1` uuid.
    pub delete: String,
}

impl Statements {
    pub fn for_table(name: &TableName) -> Statements {
        let table = name.quoted();
        Statements {
            create: format!(
                "CREATE TABLE IF NOT EXISTS {table} (\
                 \"id\" UUID NOT NULL PRIMARY KEY, \
                 \"vcon\" TEXT NOT NULL, \
                 \"uuid\" UUID NOT NULL, \
                 \"created_at\" TIMESTAMP NOT NULL, \
                 \"updated_at\" TIMESTAMP, \
                 \"subject\" TEXT, \
                 \"vcon_json\" JSONB)"
            ),
            // The text goes in as `text` and becomes `jsonb` in the server: it is sent as it is,
            // never parsed or serialised again here.
            upsert: format!(
                "INSERT INTO {table} \
                 (\"id\", \"vcon\", \"uuid\", \"created_at\", \"updated_at\", \"subject\", \"vcon_json\") \
                 VALUES ($1, $2, $1, $3, now() AT TIME ZONE 'UTC', $4, $5::text::jsonb) \
                 ON CONFLICT (\"id\") DO UPDATE SET \
                 \"vcon\" = EXCLUDED.\"vcon\", \"uuid\" = EXCLUDED.\"uuid\", \
                 \"created_at\" = EXCLUDED.\"created_at\", \"updated_at\" = EXCLUDED.\"updated_at\", \
                 \"subject\" = EXCLUDED.\"subject\", \"vcon_json\" = EXCLUDED.\"vcon_json\""
            ),
            select: format!("SELECT \"vcon_json\"::text FROM {table} WHERE \"id\" = $1"),
            delete: format!("DELETE FROM {table} WHERE \"id\" = $1"),
            table,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_schemas_are_quoted_with_their_case() {
        assert_eq!(TableName::default().quoted(), "\"vcons\"");
        assert_eq!(
            TableName::parse("Calls_2024").unwrap().quoted(),
            "\"Calls_2024\""
        );
        assert_eq!(
            TableName::parse("archive._vcons").unwrap().quoted(),
            "\"archive\".\"_vcons\""
        );
        assert!(TableName::parse(&"t".repeat(63)).is_ok());
    }

    #[test]
    fn anything_but_an_identifier_is_refused() {
        for (bad, why) in [
            ("vcons; DROP TABLE users", "not ';'"),
            ("vcons\"", "not '\"'"),
            ("1vcons", "must start with a letter or '_'"),
            ("", "a part is empty"),
            ("a.", "a part is empty"),
            ("a.b.c", "more than one '.'"),
            ("my table", "not ' '"),
            ("vcöns", "not 'ö'"),
        ] {
            let error = TableName::parse(bad).unwrap_err();
            assert!(error.contains(why), "{bad:?}: {error}");
        }
        assert!(TableName::parse(&"t".repeat(64))
            .unwrap_err()
            .contains("longer than PostgreSQL's 63 characters"));
    }

    #[test]
    fn the_statements_name_the_table_and_every_python_column() {
        let sql = Statements::for_table(&TableName::parse("s.t").unwrap());
        assert!(sql
            .create
            .starts_with("CREATE TABLE IF NOT EXISTS \"s\".\"t\" ("));
        for column in [
            "id",
            "vcon",
            "uuid",
            "created_at",
            "updated_at",
            "subject",
            "vcon_json",
        ] {
            assert!(sql.create.contains(&format!("\"{column}\" ")), "{column}");
            assert!(
                sql.upsert
                    .contains(&format!("\"{column}\" = EXCLUDED.\"{column}\""))
                    || column == "id"
            );
        }
        assert_eq!(sql.delete, "DELETE FROM \"s\".\"t\" WHERE \"id\" = $1");
    }
}
