//! `multipart/form-data` bodies (RFC 7578) built in memory, so that a retried request sends the
//! same bytes again without re-reading its parts.

use bytes::{BufMut, Bytes, BytesMut};
use reqwest::header::HeaderValue;

/// A form being built: text fields and files, in order.
#[derive(Debug)]
pub struct Form {
    boundary: String,
    body: BytesMut,
}

impl Default for Form {
    fn default() -> Self {
        Form::new()
    }
}

impl Form {
    /// An empty form with a random boundary.
    pub fn new() -> Form {
        Form {
            boundary: format!("conserver-{:032x}", fastrand::u128(..)),
            body: BytesMut::new(),
        }
    }

    /// Add a text field.
    pub fn text(mut self, name: &str, value: &str) -> Form {
        self.part_head(name, None, None);
        self.body.put_slice(value.as_bytes());
        self.body.put_slice(b"\r\n");
        self
    }

    /// Add a file part of content type `mediatype`.
    pub fn file(mut self, name: &str, filename: &str, mediatype: &str, content: &[u8]) -> Form {
        self.part_head(name, Some(filename), Some(mediatype));
        self.body.put_slice(content);
        self.body.put_slice(b"\r\n");
        self
    }

    fn part_head(&mut self, name: &str, filename: Option<&str>, mediatype: Option<&str>) {
        self.body.put_slice(b"--");
        self.body.put_slice(self.boundary.as_bytes());
        self.body
            .put_slice(b"\r\nContent-Disposition: form-data; name=\"");
        self.body.put_slice(quoted(name).as_bytes());
        self.body.put_slice(b"\"");
        if let Some(filename) = filename {
            self.body.put_slice(b"; filename=\"");
            self.body.put_slice(quoted(filename).as_bytes());
            self.body.put_slice(b"\"");
        }
        self.body.put_slice(b"\r\n");
        if let Some(mediatype) = mediatype {
            self.body.put_slice(b"Content-Type: ");
            self.body.put_slice(single_line(mediatype).as_bytes());
            self.body.put_slice(b"\r\n");
        }
        self.body.put_slice(b"\r\n");
    }

    /// The `Content-Type` header value and the body.
    pub fn finish(mut self) -> (HeaderValue, Bytes) {
        self.body.put_slice(b"--");
        self.body.put_slice(self.boundary.as_bytes());
        self.body.put_slice(b"--\r\n");
        let content_type =
            HeaderValue::from_str(&format!("multipart/form-data; boundary={}", self.boundary))
                .unwrap_or_else(|_| HeaderValue::from_static("multipart/form-data"));
        (content_type, self.body.freeze())
    }
}

/// A name or file name inside a quoted header parameter: quotes and line breaks escaped as
/// browsers do (RFC 7578 §4.2 leaves the encoding to the sender).
fn quoted(text: &str) -> String {
    text.replace('"', "%22")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A header value on one line.
fn single_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_is_laid_out_as_rfc_7578_says() {
        let form = Form {
            boundary: "b".to_owned(),
            body: BytesMut::new(),
        };
        let (content_type, body) = form
            .text("model", "whisper-1")
            .file("file", "a \"b\".wav", "audio/wav", b"RIFF")
            .finish();
        assert_eq!(content_type, "multipart/form-data; boundary=b");
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            "--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n\
             --b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a %22b%22.wav\"\r\n\
             Content-Type: audio/wav\r\n\r\nRIFF\r\n--b--\r\n"
        );
        assert_ne!(Form::new().boundary, Form::new().boundary);
    }
}
