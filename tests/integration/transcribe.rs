//! The transcription links (`transcribe` with each vendor, the legacy vendor modules,
//! `wtf_transcribe`) against in-process vendor servers answering with the vendors' documented
//! bodies: the exact requests, the exact analysis written, retries, timeouts, bad input; and one
//! chain through the engine over a real recording.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use base64::Engine;
use conserver::api::Role;
use conserver::engine::Engine as ChainEngine;
use conserver::links::{Link, LinkError, LinkOutcome};
use serde_json::{json, Value};
use sha2::Digest;
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::common::{self, document, link_from_yaml, link_problems, run_link, send, Backend};

const UUID: &str = "0191a3f4-5b6c-7d8e-9f00-00000000b001";

/// Quick retries for every link of a test config.
const FAST_RETRY: &str = "limits: {retry: {attempts: 3, initial_backoff: 0.01, max_backoff: 0.05}}";

fn config(links: &str) -> String {
    format!("{FAST_RETRY}\nlinks:\n{links}")
}

fn vcon(dialogs: Value) -> Value {
    json!({"vcon": "0.3.0", "uuid": UUID, "created_at": "2024-05-01T10:00:00Z",
           "parties": [{"tel": "+15551230000"}, {"tel": "+15551230001"}], "dialog": dialogs})
}

fn shown(error: &LinkError) -> String {
    conserver::report(error).to_string()
}

/// `sha512-<base64url>` of `bytes`, as a vCon states it.
fn content_hash(bytes: &[u8]) -> String {
    format!(
        "sha512-{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha512::digest(bytes))
    )
}

/// A mono 16-bit PCM WAV at 8 kHz: each segment `(seconds, loud)` a 440 Hz tone or silence.
fn wav(segments: &[(f64, bool)]) -> Vec<u8> {
    let rate = 8000u32;
    let mut samples: Vec<i16> = Vec::new();
    for (seconds, loud) in segments {
        for n in 0..(seconds * f64::from(rate)) as usize {
            let t = n as f64 / f64::from(rate);
            let value = if *loud {
                (t * 440.0 * std::f64::consts::TAU).sin() * 12000.0
            } else {
                0.0
            };
            samples.push(value as i16);
        }
    }
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for sample in samples {
        out.extend_from_slice(&sample.to_le_bytes());
    }
    out
}

/// One part of a `multipart/form-data` request: name, file name, content type, content.
#[derive(Debug, PartialEq)]
struct Part {
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
    content: Vec<u8>,
}

/// The parts of a multipart request, in order.
fn parts(request: &Request) -> Vec<Part> {
    let content_type = request
        .headers
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let boundary = content_type
        .split("boundary=")
        .nth(1)
        .expect("a boundary")
        .to_owned();
    let delimiter = format!("--{boundary}");
    let body = &request.body;
    let mut found = Vec::new();
    let positions: Vec<usize> = body
        .windows(delimiter.len())
        .enumerate()
        .filter(|(_, w)| *w == delimiter.as_bytes())
        .map(|(i, _)| i)
        .collect();
    for pair in positions.windows(2) {
        let part = &body[pair[0] + delimiter.len() + 2..pair[1] - 2];
        let split = part
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("part headers");
        let head = String::from_utf8_lossy(&part[..split]).into_owned();
        let attribute = |key: &str| {
            head.split(&format!("{key}=\""))
                .nth(1)
                .map(|rest| rest.split('"').next().unwrap().to_owned())
        };
        found.push(Part {
            name: attribute("name").unwrap(),
            filename: attribute("filename"),
            content_type: head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Type: ").map(str::to_owned)),
            content: part[split + 4..].to_vec(),
        });
    }
    found
}

fn text_part(parts: &[Part], name: &str) -> String {
    let part = parts
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no part {name}"));
    String::from_utf8(part.content.clone()).unwrap()
}

/// A media server holding `bytes` at `/media/<name>`.
async fn media_server(name: &str, bytes: Vec<u8>) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/media/{name}")))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(bytes))
        .mount(&server)
        .await;
    server
}

/// Deepgram's documented pre-recorded answer.
fn deepgram_answer(transcript: &str, confidence: &str) -> Value {
    serde_json::from_str(&format!(
        r#"{{"metadata": {{"transaction_key": "deprecated", "request_id": "a1b2", "created": "2024-05-01T10:00:01.000Z", "duration": 92.4, "channels": 1, "models": ["30089e05"]}},
            "results": {{"channels": [{{"alternatives": [{{"transcript": "{transcript}", "confidence": {confidence},
              "words": [{{"word": "hello", "start": 0.08, "end": 0.4, "confidence": 0.99}}]}}], "detected_language": "en-US"}}]}}}}"#
    ))
    .unwrap()
}

fn analysis(vcon: &mut conserver::vcon::Document) -> Value {
    vcon.value()["analysis"].clone()
}

#[tokio::test]
async fn deepgram_sends_the_url_with_the_api_options_and_writes_the_transcript() {
    let vendor = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/listen"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(deepgram_answer("hello this is ann", "0.98")),
        )
        .mount(&vendor)
        .await;
    let yaml = config(&format!(
        "  dg:\n    module: transcribe\n    options:\n      vendor: deepgram\n      vendor_options:\n        DEEPGRAM_KEY: dg-secret\n        base_url: {}\n        minimum_duration: 30\n        api: {{model: nova-2, smart_format: true, keywords: [ann, bob]}}\n",
        vendor.uri()
    ));
    let (link, _, _) = link_from_yaml(&yaml, "dg");
    let mut doc = document(vcon(json!([
        {"type": "text", "body": "hi", "encoding": "none"},
        {"type": "recording", "url": "https://media.example/rec/1.mp3", "duration": 92.4, "mediatype": "audio/mpeg"}
    ])));
    assert_eq!(
        run_link(&link, &mut doc).await.unwrap(),
        LinkOutcome::Continue
    );
    let received = vendor.received_requests().await.unwrap();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(
        request.url.query(),
        Some("model=nova-2&smart_format=true&keywords=ann&keywords=bob")
    );
    assert_eq!(request.headers["authorization"], "Token dg-secret");
    assert_eq!(request.headers["content-type"], "application/json");
    assert!(request.headers["user-agent"]
        .to_str()
        .unwrap()
        .starts_with("conserver/"));
    assert_eq!(
        serde_json::from_slice::<Value>(&request.body).unwrap(),
        json!({"url": "https://media.example/rec/1.mp3"})
    );
    let written = analysis(&mut doc);
    assert_eq!(
        written,
        json!([{
            "type": "transcript",
            "dialog": 1,
            "vendor": "deepgram",
            "body": "{\"transcript\": \"hello this is ann\", \"confidence\": 0.98, \"words\": [{\"word\": \"hello\", \"start\": 0.08, \"end\": 0.4, \"confidence\": 0.99}], \"detected_language\": \"en-US\"}",
            "encoding": "json",
            "vendor_schema": {"opts": {"minimum_duration": 30, "minimum_confidence": 0.5, "base_url": vendor.uri(),
                                        "api": {"model": "nova-2", "smart_format": true, "keywords": ["ann", "bob"]}}}
        }])
    );
    assert!(
        !doc.text().contains("dg-secret"),
        "the key is never copied into the vCon"
    );
    // Seen again (a crash after the write-back): no second paid call.
    assert_eq!(
        run_link(&link, &mut doc).await.unwrap(),
        LinkOutcome::Skipped
    );
    assert_eq!(vendor.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn deepgram_link_presets_the_vendor_reads_wav_durations_and_skips_short_or_unconfident_results(
) {
    let media = MockServer::start().await;
    for (name, seconds) in [("long.wav", 90.0), ("short.wav", 10.0), ("quiet.wav", 75.0)] {
        Mock::given(method("GET"))
            .and(path(format!("/media/{name}")))
            .and(header("range", "bytes=0-65535"))
            .respond_with(
                ResponseTemplate::new(206).set_body_bytes(wav(&[(seconds, false)])[..44].to_vec()),
            )
            .mount(&media)
            .await;
    }
    let vendor = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/listen"))
        .and(body_json(
            json!({"url": format!("{}/media/long.wav", media.uri())}),
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(deepgram_answer("a long call", "0.91")),
        )
        .mount(&vendor)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/listen"))
        .and(body_json(
            json!({"url": format!("{}/media/quiet.wav", media.uri())}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(deepgram_answer("mumble", "0.2")))
        .mount(&vendor)
        .await;
    let yaml = config(&format!(
        "  legacy:\n    module: links.deepgram_link\n    options: {{DEEPGRAM_KEY: k, base_url: '{}', api: {{model: nova-3}}}}\n",
        vendor.uri()
    ));
    let (link, _, warnings) = link_from_yaml(&yaml, "legacy");
    assert!(
        warnings.iter().any(|w| w.contains("links.legacy.module")
            && w.contains("deprecated alias of the transcribe link with vendor deepgram")),
        "{warnings:?}"
    );
    let mut doc = document(vcon(json!([
        {"type": "recording", "url": format!("{}/media/long.wav", media.uri())},
        {"type": "recording", "url": format!("{}/media/short.wav", media.uri())},
        {"type": "recording", "url": format!("{}/media/quiet.wav", media.uri())}
    ])));
    assert_eq!(
        run_link(&link, &mut doc).await.unwrap(),
        LinkOutcome::Continue
    );
    let value = doc.value().clone();
    assert_eq!(value["dialog"][0]["duration"], json!(90.0));
    assert_eq!(value["dialog"][1]["duration"], json!(10.0));
    let written = value["analysis"].as_array().unwrap();
    assert_eq!(
        written.len(),
        1,
        "short and unconfident dialogs are skipped"
    );
    assert_eq!(written[0]["dialog"], 0);
    assert_eq!(
        written[0]["vendor_schema"]["opts"],
        json!({"minimum_duration": 60, "minimum_confidence": 0.5, "base_url": vendor.uri(), "api": {"model": "nova-3"}})
    );
    assert_eq!(vendor.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn openai_uploads_the_recording_with_model_and_language() {
    let audio = wav(&[(4.0, true)]);
    let media = media_server("call%201.wav", audio.clone()).await;
    let vendor = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/audio/transcriptions"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"text": "Hello, this is Ann. ¿Qué tal?"})),
        )
        .mount(&vendor)
        .await;
    let yaml = config(&format!(
        "  whisper:\n    module: openai_transcribe\n    options: {{OPENAI_API_KEY: sk-test, organization: org-1, base_url: '{}/v1', model: whisper-1}}\n",
        vendor.uri()
    ));
    let (link, _, warnings) = link_from_yaml(&yaml, "whisper");
    assert!(warnings
        .iter()
        .any(|w| w.contains("deprecated alias of the transcribe link with vendor openai")));
    let url = format!("{}/media/call%201.wav", media.uri());
    let mut doc = document(vcon(json!([
        {"type": "recording", "url": url, "content_hash": content_hash(&audio), "mediatype": "audio/wav"}
    ])));
    assert_eq!(
        run_link(&link, &mut doc).await.unwrap(),
        LinkOutcome::Continue
    );
    let received = vendor.received_requests().await.unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].headers["authorization"], "Bearer sk-test");
    assert_eq!(received[0].headers["openai-organization"], "org-1");
    let sent = parts(&received[0]);
    assert_eq!(
        sent[0],
        Part {
            name: "file".into(),
            filename: Some("call 1.wav".into()),
            content_type: Some("audio/wav".into()),
            content: audio
        }
    );
    assert_eq!(text_part(&sent, "model"), "whisper-1");
    assert_eq!(text_part(&sent, "language"), "en");
    let written = analysis(&mut doc);
    assert_eq!(written[0]["vendor"], "openai");
    assert_eq!(
        written[0]["body"],
        "{\"text\": \"Hello, this is Ann. \\u00bfQu\\u00e9 tal?\"}"
    );
    assert_eq!(
        written[0]["vendor_schema"]["opts"],
        json!({"AZURE_OPENAI_API_VERSION": "2024-10-21", "model": "whisper-1", "language": "en", "minimum_duration": 3,
               "max_chunk_duration": 480, "use_silence_chunking": true, "silence_thresh": -40, "silence_len": 2000,
               "organization": "org-1", "base_url": format!("{}/v1", vendor.uri())})
    );
}

#[tokio::test]
async fn openai_on_azure_reports_usage() {
    let audio = wav(&[(5.0, true)]);
    let media = media_server("a.wav", audio.clone()).await;
    let vendor = MockServer::start().await;
    let answer = json!({"text": "hello", "usage": {"type": "tokens", "input_tokens": 14, "input_token_details": {"text_tokens": 0, "audio_tokens": 14}, "output_tokens": 45, "total_tokens": 59}});
    Mock::given(method("POST"))
        .and(path(
            "/openai/deployments/gpt-4o-transcribe/audio/transcriptions",
        ))
        .and(query_param("api-version", "2025-01-01"))
        .and(header("api-key", "az-key"))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer.clone()))
        .mount(&vendor)
        .await;
    let usage = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/usage"))
        .and(header("authorization", "Bearer usage-token"))
        .respond_with(ResponseTemplate::new(201))
        .mount(&usage)
        .await;
    let yaml = config(&format!(
        "  t:\n    module: transcribe\n    options:\n      vendor: openai\n      vendor_options: {{AZURE_OPENAI_ENDPOINT: '{}', AZURE_OPENAI_API_KEY: az-key, AZURE_OPENAI_API_VERSION: '2025-01-01', send_ai_usage_data_to_url: '{}/usage', ai_usage_api_token: usage-token}}\n",
        vendor.uri(),
        usage.uri()
    ));
    let (link, _, _) = link_from_yaml(&yaml, "t");
    let mut doc = document(vcon(
        json!([{"type": "recording", "url": format!("{}/media/a.wav", media.uri()), "duration": 5}]),
    ));
    assert_eq!(
        run_link(&link, &mut doc).await.unwrap(),
        LinkOutcome::Continue
    );
    assert_eq!(
        text_part(
            &parts(&vendor.received_requests().await.unwrap()[0]),
            "model"
        ),
        "gpt-4o-transcribe"
    );
    let written = analysis(&mut doc);
    assert_eq!(
        serde_json::from_str::<Value>(written[0]["body"].as_str().unwrap()).unwrap(),
        answer
    );
    let opts = &written[0]["vendor_schema"]["opts"];
    for secret in [
        "AZURE_OPENAI_API_KEY",
        "ai_usage_api_token",
        "send_ai_usage_data_to_url",
        "AZURE_OPENAI_ENDPOINT",
    ] {
        assert!(opts.get(secret).is_none(), "{secret} in {opts}");
    }
    let reports = usage.received_requests().await.unwrap();
    assert_eq!(reports.len(), 1);
    let report: Value = serde_json::from_slice(&reports[0].body).unwrap();
    assert_eq!(report["record_id"], UUID);
    assert_eq!(report["type"], "VCON_PROCESSING");
    assert_eq!(report["sub_type"], "OPENAI_TRANSCRIBE");
    assert_eq!(report["unit_type"], "tokens");
    assert_eq!(
        (
            report["input_units"].as_u64(),
            report["output_units"].as_u64()
        ),
        (Some(14), Some(45))
    );
    assert_eq!(report["ai_model"], "gpt-4o-transcribe");
    assert!(report["created_at"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn openai_splits_a_long_recording_at_its_silences_with_ffmpeg() {
    // 5 s of speech, 2.5 s of silence, 5 s of speech: with 8 s chunks the cut falls in the
    // silence.
    let audio = wav(&[(5.0, true), (2.5, false), (5.0, true)]);
    let media = media_server("long.wav", audio).await;
    let vendor = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/audio/transcriptions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"text": "part", "usage": {"type": "tokens", "input_tokens": 10, "output_tokens": 2, "total_tokens": 12}})))
        .mount(&vendor)
        .await;
    let yaml = config(&format!(
        "  t:\n    module: transcribe\n    options:\n      vendor: openai\n      vendor_options: {{api_key: k, base_url: '{}', max_chunk_duration: 8, silence_len: 1000}}\n",
        vendor.uri()
    ));
    let (link, _, _) = link_from_yaml(&yaml, "t");
    let mut doc = document(vcon(
        json!([{"type": "recording", "url": format!("{}/media/long.wav", media.uri())}]),
    ));
    assert_eq!(
        run_link(&link, &mut doc).await.unwrap(),
        LinkOutcome::Continue
    );
    let received = vendor.received_requests().await.unwrap();
    assert_eq!(received.len(), 2);
    for request in &received {
        let sent = parts(request);
        assert_eq!(sent[0].content_type.as_deref(), Some("audio/mpeg"));
        assert!(sent[0].filename.as_deref().unwrap().ends_with(".mp3"));
    }
    let body: Value =
        serde_json::from_str(analysis(&mut doc)[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["text"], "part part");
    assert_eq!(
        body["usage"],
        json!({"type": "tokens", "input_tokens": 20, "total_tokens": 24, "output_tokens": 4, "input_token_details": {"text_tokens": 0, "audio_tokens": 20}})
    );
    assert_eq!(body["chunked_transcription"]["total_chunks"], 2);
    // Without a usable ffmpeg a recording that must be split fails, naming the program.
    let yaml = config(&format!(
        "  t:\n    module: transcribe\n    options:\n      vendor: openai\n      vendor_options: {{api_key: k, base_url: '{}', max_chunk_duration: 8, ffmpeg_path: /nonexistent/ffmpeg}}\n",
        vendor.uri()
    ));
    let (link, _, _) = link_from_yaml(&yaml, "t");
    let mut doc = document(vcon(
        json!([{"type": "recording", "url": format!("{}/media/long.wav", media.uri())}]),
    ));
    let error = run_link(&link, &mut doc).await.unwrap_err();
    assert!(
        shown(&error).contains("/nonexistent/ffmpeg"),
        "{}",
        shown(&error)
    );
    assert!(!error.is_retriable());
}

#[tokio::test]
async fn groq_sends_the_inline_body() {
    let audio = wav(&[(1.0, true)]);
    let vendor = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/openai/v1/audio/transcriptions"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"text": " Hello.", "x_groq": {"id": "req_01"}})),
        )
        .mount(&vendor)
        .await;
    let yaml = config(&format!(
        "  g:\n    module: groq_whisper\n    options: {{API_KEY: gsk-1, base_url: '{}/openai/v1', minimum_duration: 0, Content-Type: audio/flac}}\n",
        vendor.uri()
    ));
    let (link, _, warnings) = link_from_yaml(&yaml, "g");
    assert!(
        warnings.iter().any(|w| w.contains("Content-Type: ignored")),
        "{warnings:?}"
    );
    let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&audio);
    let mut doc = document(vcon(
        json!([{"type": "recording", "body": body, "encoding": "base64url", "mediatype": "audio/x-wav", "filename": "ab.wav", "duration": 1}]),
    ));
    assert_eq!(
        run_link(&link, &mut doc).await.unwrap(),
        LinkOutcome::Continue
    );
    let request = &vendor.received_requests().await.unwrap()[0];
    assert_eq!(request.headers["authorization"], "Bearer gsk-1");
    let sent = parts(request);
    assert_eq!(
        (sent[0].filename.as_deref(), sent[0].content.as_slice()),
        (Some("ab.wav"), audio.as_slice())
    );
    assert_eq!(text_part(&sent, "model"), "whisper-large-v3-turbo");
    assert_eq!(text_part(&sent, "response_format"), "json");
    let written = analysis(&mut doc);
    assert_eq!(written[0]["vendor"], "groq_whisper");
    assert_eq!(
        written[0]["body"],
        "{\"text\": \" Hello.\", \"x_groq\": {\"id\": \"req_01\"}}"
    );
    assert_eq!(
        written[0]["vendor_schema"]["opts"],
        json!({"minimum_duration": 0, "Content-Type": "audio/flac", "base_url": format!("{}/openai/v1", vendor.uri())})
    );
}

#[tokio::test]
async fn hugging_face_posts_the_bytes() {
    let audio = wav(&[(1.0, true)]);
    let media = media_server("x.flac", audio.clone()).await;
    let vendor = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/endpoint"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"text": " Hi there."})))
        .mount(&vendor)
        .await;
    let yaml = config(&format!(
        "  hf:\n    module: transcribe\n    options:\n      vendor: hugging_face\n      vendor_options: {{API_URL: '{}/endpoint', API_KEY: 'Bearer hf_abc', minimum_duration: 0}}\n",
        vendor.uri()
    ));
    let (link, _, _) = link_from_yaml(&yaml, "hf");
    let mut doc = document(vcon(
        json!([{"type": "recording", "url": format!("{}/media/x.flac", media.uri()), "duration": 40}]),
    ));
    assert_eq!(
        run_link(&link, &mut doc).await.unwrap(),
        LinkOutcome::Continue
    );
    let request = &vendor.received_requests().await.unwrap()[0];
    assert_eq!(request.headers["authorization"], "Bearer hf_abc");
    assert_eq!(request.headers["accept"], "application/json");
    assert_eq!(request.headers["content-type"], "audio/flac");
    assert_eq!(request.body, audio);
    let written = analysis(&mut doc);
    assert_eq!(written[0]["vendor"], "hugging_face_whisper");
    assert_eq!(written[0]["body"], "{\"text\": \" Hi there.\"}");
}

/// A `transcribe` link with vendor `groq` (inline audio, so the only requests are the vendor's)
/// against `vendor`, with `extra` vendor options.
fn groq_link(
    vendor: &MockServer,
    extra: &str,
) -> (Arc<dyn Link>, conserver::modules::ModuleContext) {
    let yaml = config(&format!(
        "  g:\n    module: transcribe\n    options:\n      vendor: groq\n      vendor_options: {{API_KEY: k, base_url: '{}', minimum_duration: 0{extra}}}\n",
        vendor.uri()
    ));
    let (link, ctx, _) = link_from_yaml(&yaml, "g");
    (link, ctx)
}

fn inline_vcon() -> conserver::vcon::Document {
    let body = base64::engine::general_purpose::STANDARD.encode(wav(&[(0.5, true)]));
    document(vcon(
        json!([{"type": "recording", "body": body, "encoding": "base64url"}]),
    ))
}

#[tokio::test]
async fn vendor_429_and_5xx_are_retried_honouring_retry_after() {
    let vendor = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "0")
                .set_body_string("slow down"),
        )
        .up_to_n_times(1)
        .mount(&vendor)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&vendor)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"text": "finally"})))
        .mount(&vendor)
        .await;
    let (link, ctx) = groq_link(&vendor, "");
    let mut doc = inline_vcon();
    assert_eq!(
        run_link(&link, &mut doc).await.unwrap(),
        LinkOutcome::Continue
    );
    assert_eq!(vendor.received_requests().await.unwrap().len(), 3);
    assert_eq!(common::retries(&ctx, "g", "429"), 1);
    assert_eq!(common::retries(&ctx, "g", "5xx"), 1);
    // More 5xx than attempts: the run fails, transiently (a reprocess may succeed).
    let down = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&down)
        .await;
    let (link, _) = groq_link(&down, "");
    let error = run_link(&link, &mut inline_vcon()).await.unwrap_err();
    assert!(error.is_retriable());
    assert_eq!(down.received_requests().await.unwrap().len(), 3);
}

#[tokio::test]
async fn vendor_401_fails_at_once_with_its_message() {
    let vendor = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": {"message": "Invalid API Key", "type": "invalid_request_error", "code": "invalid_api_key"}})))
        .mount(&vendor)
        .await;
    let (link, ctx) = groq_link(&vendor, "");
    let mut doc = inline_vcon();
    let error = run_link(&link, &mut doc).await.unwrap_err();
    assert_eq!(
        vendor.received_requests().await.unwrap().len(),
        1,
        "no retry on 401"
    );
    assert!(!error.is_retriable());
    let message = shown(&error);
    assert!(
        message.contains("401") && message.contains("Invalid API Key"),
        "{message}"
    );
    assert!(!message.contains("Bearer k"), "{message}");
    assert_eq!(common::retries(&ctx, "g", "other"), 0);
    assert!(doc.value().get("analysis").is_none(), "nothing written");
}

#[tokio::test]
async fn a_vendor_that_does_not_answer_in_time_is_retried_then_fails() {
    let vendor = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"text": "late"}))
                .set_delay(Duration::from_secs(5)),
        )
        .mount(&vendor)
        .await;
    let (link, ctx) = groq_link(&vendor, ", timeout: 0.2");
    let error = run_link(&link, &mut inline_vcon()).await.unwrap_err();
    assert!(
        shown(&error).contains("within the timeout"),
        "{}",
        shown(&error)
    );
    assert!(error.is_retriable());
    assert_eq!(common::retries(&ctx, "g", "timeout"), 2);
}

#[tokio::test]
async fn answers_that_are_not_the_documented_shape_and_empty_transcripts_fail() {
    for (answer, expected) in [
        (
            ResponseTemplate::new(200).set_body_string("<html>gateway</html>"),
            "not a JSON object",
        ),
        (
            ResponseTemplate::new(200).set_body_json(json!({"transcript": "x"})),
            "no text string",
        ),
        (
            ResponseTemplate::new(200).set_body_json(json!({"text": "  "})),
            "empty transcript for dialog 0",
        ),
    ] {
        let vendor = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(answer)
            .mount(&vendor)
            .await;
        let (link, _) = groq_link(&vendor, "");
        let mut doc = inline_vcon();
        let error = run_link(&link, &mut doc).await.unwrap_err();
        assert!(shown(&error).contains(expected), "{}", shown(&error));
        assert!(!error.is_retriable());
        assert_eq!(vendor.received_requests().await.unwrap().len(), 1);
        assert!(doc.value().get("analysis").is_none());
    }
    let deepgram = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"metadata": {}, "results": {"channels": []}})),
        )
        .mount(&deepgram)
        .await;
    let yaml = config(&format!(
        "  dg:\n    module: transcribe\n    options: {{vendor: deepgram, vendor_options: {{DEEPGRAM_KEY: k, base_url: '{}'}}}}\n",
        deepgram.uri()
    ));
    let (link, _, _) = link_from_yaml(&yaml, "dg");
    let mut doc = document(vcon(
        json!([{"type": "recording", "url": "https://m.example/a.mp3", "duration": 100}]),
    ));
    let error = run_link(&link, &mut doc).await.unwrap_err();
    assert!(
        shown(&error).contains("results.channels[0].alternatives[0]"),
        "{}",
        shown(&error)
    );
}

#[tokio::test]
async fn recordings_that_cannot_be_fetched_or_checked_fail_without_a_vendor_call() {
    let audio = wav(&[(1.0, true)]);
    let media = media_server("a.wav", audio.clone()).await;
    let vendor = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"text": "x"})))
        .mount(&vendor)
        .await;
    let other = content_hash(b"another recording");
    let cases = [
        (
            json!({"type": "recording", "url": format!("{}/media/missing.wav", media.uri())}),
            "404",
            "",
        ),
        (
            json!({"type": "recording", "url": format!("{}/media/a.wav", media.uri()), "content_hash": other}),
            "does not match its content_hash",
            "",
        ),
        (
            json!({"type": "recording", "url": format!("{}/media/a.wav", media.uri())}),
            "limits.max_media_bytes",
            "limits: {max_media_bytes: 100}\n",
        ),
        (
            json!({"type": "recording", "url": "ftp://m.example/a.wav"}),
            "only http and https",
            "",
        ),
    ];
    for (dialog, expected, limits) in cases {
        let yaml = format!(
            "{limits}{}",
            config(&format!(
                "  t:\n    module: transcribe\n    options: {{vendor: openai, vendor_options: {{api_key: k, base_url: '{}', minimum_duration: 0}}}}\n",
                vendor.uri()
            ))
        )
        .replace("limits: {max_media_bytes: 100}\nlimits: {retry:", "limits: {max_media_bytes: 100, retry:");
        let (link, _, _) = link_from_yaml(&yaml, "t");
        let mut doc = document(vcon(json!([dialog])));
        let error = run_link(&link, &mut doc).await.unwrap_err();
        let message = shown(&error);
        assert!(message.contains(expected), "{expected}: {message}");
        assert!(!error.is_retriable(), "{message}");
        if expected.contains("content_hash") {
            assert!(
                message.contains(&other) && message.contains(&content_hash(&audio)),
                "both hashes named: {message}"
            );
        }
    }
    assert!(vendor.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn transcribe_options_are_checked_when_the_configuration_is_read() {
    // Lines are left out: the paths are what is checked here.
    let link_problems = |yaml: &str, name: &str| -> Vec<String> {
        link_problems(yaml, name)
            .into_iter()
            .map(|p| match (p.find(" (line "), p.find("): ")) {
                (Some(a), Some(b)) if a < b => format!("{}{}", &p[..a], &p[b + 1..]),
                _ => p,
            })
            .collect()
    };
    let problems = link_problems(&config("  t: {module: transcribe, options: {}}\n"), "t");
    assert_eq!(
        problems,
        ["links.t.options.vendor: is required: one of openai, groq, hugging_face, deepgram"]
    );
    let problems = link_problems(
        &config("  t: {module: transcribe, options: {vendor: whisper_builtin}}\n"),
        "t",
    );
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("supported vendors: openai, groq, hugging_face, deepgram"),
        "{problems:?}"
    );
    let problems = link_problems(&config("  t: {module: transcribe, options: {vendor: deepgram, vendor_options: {api: {}, modle: x}}}\n"), "t");
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("links.t.options.vendor_options.DEEPGRAM_KEY: is required")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("links.t.options.vendor_options.modle: unknown key")),
        "{problems:?}"
    );
    let problems = link_problems(
        &config("  t: {module: hugging_face_whisper, options: {API_KEY: x}}\n"),
        "t",
    );
    assert_eq!(
        problems,
        ["links.t.options.vendor_options.API_URL: is required"]
    );
    let problems = link_problems(&config("  t: {module: transcribe, options: {vendor: openai, vendor_options: {model: whisper-1}}}\n"), "t");
    assert!(problems[0].contains("an OpenAI key"), "{problems:?}");
}

#[tokio::test]
async fn wtf_transcribe_posts_the_audio_and_writes_the_wtf_document() {
    let audio = wav(&[(1.0, true)]);
    let media = media_server("a.wav", audio.clone()).await;
    let vfun = MockServer::start().await;
    let wtf = json!({"transcript": {"text": "hello", "duration": 1.0}, "segments": [{"id": 0, "start": 0.0, "end": 1.0, "text": "hello"}]});
    // vfun answers a JSON string holding the JSON document.
    Mock::given(method("POST"))
        .and(path("/wtf"))
        .respond_with(ResponseTemplate::new(200).set_body_json(Value::String(wtf.to_string())))
        .mount(&vfun)
        .await;
    let yaml = config(&format!(
        "  w:\n    module: wtf_transcribe\n    options: {{vfun-server-url: '{}/wtf', language: es, diarize: true, api-key: vk}}\n",
        vfun.uri()
    ));
    let (link, _, _) = link_from_yaml(&yaml, "w");
    let inline = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&audio);
    let mut doc = document(vcon(
        json!([{"type": "recording", "url": "file:///etc/passwd"}]),
    ));
    let error = run_link(&link, &mut doc).await.unwrap_err();
    assert!(
        shown(&error).contains("allow_file_urls"),
        "{}",
        shown(&error)
    );
    let mut doc = document(vcon(json!([
        {"type": "recording", "url": format!("{}/media/a.wav", media.uri()), "content_hash": content_hash(&audio)},
        {"type": "recording", "body": inline, "encoding": "base64url", "mimetype": "audio/x-wav", "filename": "second.wav"},
        {"type": "recording"}
    ])));
    assert_eq!(
        run_link(&link, &mut doc).await.unwrap(),
        LinkOutcome::Continue
    );
    let received = vfun.received_requests().await.unwrap();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].headers["authorization"], "Bearer vk");
    let first = parts(&received[0]);
    assert_eq!(first[0].name, "file-binary");
    assert_eq!(first[0].filename.as_deref(), Some("audio_0.wav"));
    assert_eq!(first[0].content_type.as_deref(), Some("audio/wav"));
    assert_eq!(first[0].content, audio);
    assert_eq!(
        (text_part(&first, "diarize"), text_part(&first, "language")),
        ("true".into(), "es".into())
    );
    let second = parts(&received[1]);
    assert_eq!(
        (
            second[0].filename.as_deref(),
            second[0].content_type.as_deref()
        ),
        (Some("second.wav"), Some("audio/x-wav"))
    );
    let written = analysis(&mut doc);
    assert_eq!(written.as_array().unwrap().len(), 2);
    assert_eq!(
        written[0],
        json!({"type": "wtf_transcription", "dialog": 0, "vendor": "vfun",
               "body": "{\"transcript\": {\"text\": \"hello\", \"duration\": 1.0, \"language\": \"es\"}, \"segments\": [{\"id\": 0, \"start\": 0.0, \"end\": 1.0, \"text\": \"hello\"}]}",
               "encoding": "json", "mediatype": "application/json", "schema": "wtf-1.0"})
    );
}

/// Start the engine of a test state (what `serve` does for the roles `all` and `worker`).
async fn start_engine(state: &common::TestState) -> Arc<ChainEngine> {
    let live = state.state.config();
    let engine = ChainEngine::start(
        &live.config,
        &live.pipelines,
        state.state.store.clone(),
        state.state.metrics.clone(),
    )
    .await
    .expect("the engine starts");
    let engine = Arc::new(engine);
    state.state.set_engine(engine.clone());
    engine
}

fn llen(key: &str) -> u64 {
    let mut redis = redis::Client::open(common::redis_url())
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("LLEN").arg(key).query(&mut redis).unwrap()
}

#[actix_web::test]
async fn a_chain_transcribes_a_real_recording_checks_its_hash_and_tags_it() {
    let recording = common::ab_call_wav();
    let media = media_server("ab_call.wav", recording.clone()).await;
    let vendor = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/audio/transcriptions"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"text": "Hello, this is Alice. Hi Alice, Bob here."})),
        )
        .mount(&vendor)
        .await;
    let yaml = format!(
        r#"
{FAST_RETRY}
links:
  transcribe:
    module: transcribe
    options: {{vendor: openai, vendor_options: {{OPENAI_API_KEY: sk-e2e, base_url: '{}/v1', model: whisper-1, minimum_duration: 0}}}}
  tag: {{module: tag, options: {{tags: [transcribed]}}}}
chains:
  main:
    links: [transcribe, tag]
    ingress_lists: [calls]
    egress_lists: [done]
    workers: 2
"#,
        vendor.uri()
    );
    let state = common::state_for_role(&yaml, Backend::Redis, &[], Role::All).await;
    let app = common::service(&state).await;
    let _engine = start_engine(&state).await;
    let p = state.prefix.clone();
    let url = format!("{}/media/ab_call.wav", media.uri());
    let good = "0194a3f4-5b6c-7d8e-9f00-0000000e2e01";
    let tampered = "0194a3f4-5b6c-7d8e-9f00-0000000e2e02";
    for (uuid, hash) in [
        (good, content_hash(&recording)),
        (tampered, content_hash(b"not the recording")),
    ] {
        let body = json!({"uuid": uuid, "vcon": "0.3.0", "created_at": "2024-05-01T10:00:00Z",
                          "parties": [{"name": "Alice"}, {"name": "Bob"}],
                          "dialog": [{"type": "recording", "start": "2024-05-01T10:00:00Z", "parties": [0, 1],
                                      "url": url, "content_hash": hash, "mediatype": "audio/x-wav", "filename": "ab_call.wav"}]});
        let reply = send(
            &app,
            TestRequest::post()
                .uri("/vcon?ingress_lists=calls")
                .set_payload(body.to_string()),
        )
        .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while llen(&format!("{p}done")) < 1 || llen(&format!("{p}DLQ:calls")) < 1 {
        assert!(Instant::now() < deadline, "the two vCons did not finish");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let stored = send(&app, TestRequest::get().uri(&format!("/vcon/{good}")))
        .await
        .json();
    assert_eq!(stored["analysis"][0]["type"], "transcript");
    assert_eq!(stored["analysis"][0]["vendor"], "openai");
    assert_eq!(
        stored["analysis"][0]["body"],
        "{\"text\": \"Hello, this is Alice. Hi Alice, Bob here.\"}"
    );
    assert_eq!(
        stored["attachments"],
        json!([{"purpose": "tags", "body": "[\"transcribed:transcribed\"]", "encoding": "json"}])
    );
    // The vendor got the recording itself, once: the tampered one never reached it.
    let received = vendor.received_requests().await.unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(parts(&received[0])[0].content, recording);
    let mut redis = redis::Client::open(common::redis_url())
        .unwrap()
        .get_connection()
        .unwrap();
    let dead: Vec<String> = redis::cmd("LRANGE")
        .arg(format!("{p}DLQ:calls"))
        .arg(0)
        .arg(-1)
        .query(&mut redis)
        .unwrap();
    assert_eq!(dead, [tampered]);
    let kept = send(&app, TestRequest::get().uri(&format!("/vcon/{tampered}")))
        .await
        .json();
    assert!(
        kept.get("analysis").is_none(),
        "nothing written for the tampered recording"
    );
}
