//! The `url` option of the `mongo` storage: a MongoDB connection string, checked where it is
//! read (scheme, hosts, options) without any lookup, and never shown with its password.

use std::fmt;

use mongodb::options::ConnectionString;
use serde::de::{self, Deserializer};
use serde::Deserialize;

use crate::config::redact::url_secrets;

/// A MongoDB connection string that the driver accepts.
#[derive(Clone, PartialEq, Eq)]
pub struct MongoUrl(String);

impl MongoUrl {
    /// The connection string as written (with its password: for the driver only).
    pub fn connection_string(&self) -> &str {
        &self.0
    }
}

impl Default for MongoUrl {
    fn default() -> Self {
        MongoUrl("mongodb://localhost:27017/".to_owned())
    }
}

impl fmt::Debug for MongoUrl {
    /// With the password masked.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MongoUrl({:?})", url_secrets(&self.0))
    }
}

impl<'de> Deserialize<'de> for MongoUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let trimmed = text.trim();
        let shown = url_secrets(trimmed);
        if !(trimmed.starts_with("mongodb://") || trimmed.starts_with("mongodb+srv://")) {
            return Err(de::Error::custom(format!(
                "'{shown}' is not a MongoDB connection string; write mongodb://host:27017/ or mongodb+srv://host/"
            )));
        }
        ConnectionString::parse(trimmed).map_err(|e| {
            // The driver's message may quote the string it read.
            let why = url_secrets(&e.kind.to_string());
            de::Error::custom(format!(
                "'{shown}' is not a MongoDB connection string the driver accepts: {why}"
            ))
        })?;
        Ok(MongoUrl(trimmed.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<MongoUrl, String> {
        serde_json::from_value(serde_json::Value::String(text.to_owned()))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn accepted_forms() {
        for url in [
            "mongodb://localhost:27017/",
            "mongodb://u:p@a:1,b:2/?replicaSet=rs0&serverSelectionTimeoutMS=500",
            " mongodb+srv://cluster0.example.net/ ",
        ] {
            assert_eq!(read(url).unwrap().connection_string(), url.trim());
        }
    }

    #[test]
    fn refused_forms_never_show_the_password() {
        for url in [
            "http://admin:hunter2@db:27017/",
            "mongodb://admin:hunter2@",
            "mongodb://admin:hunter2@db:27017/?notAnOption=1&w=banana",
            "mongodb://admin:hunter2@db:99999/",
        ] {
            let message = read(url).unwrap_err();
            assert!(!message.contains("hunter2"), "{message}");
            assert!(message.contains("admin:***@"), "{message}");
        }
        let debug = format!("{:?}", read("mongodb://admin:hunter2@db/").unwrap());
        assert_eq!(debug, "MongoUrl(\"mongodb://admin:***@db/\")");
    }
}
