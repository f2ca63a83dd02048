//! Long recordings split for the `openai` vendor (modules.md §3.11): measured with ffmpeg, cut
//! into chunks of at most `max_chunk_duration`; with silence chunking each cut is placed in the
//! last silence (quieter than `silence_thresh` for at least `silence_len`) before the limit, or
//! at the limit when there is none. Chunks are mono 16 kHz MP3, as the Python server made them.
//! ffmpeg runs as a child process (never on the async threads' time).

use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;

use bytes::Bytes;
use tokio::process::Command;

/// How to split.
#[derive(Debug, Clone)]
pub struct Splitter {
    /// The ffmpeg program.
    pub program: String,
    /// Longest chunk, seconds.
    pub max_seconds: f64,
    /// `(threshold dBFS, minimum length in seconds)` with silence chunking, else `None`.
    pub silence: Option<(f64, f64)>,
}

/// What ffmpeg found in a recording.
#[derive(Debug, Clone, PartialEq)]
pub struct Scan {
    /// Its length, seconds.
    pub duration: f64,
    /// Silences as `(start, end)` seconds.
    pub silences: Vec<(f64, f64)>,
}

impl Splitter {
    /// The recording `audio` (named `filename`, whose extension tells ffmpeg its format) in
    /// chunks: one (the audio as it is) when it is not longer than the limit.
    pub async fn split(&self, audio: &Bytes, filename: &str) -> Result<Vec<Bytes>, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("no temporary directory: {e}"))?;
        let extension = Path::new(filename)
            .extension()
            .and_then(|e| e.to_str())
            .filter(|e| e.chars().all(|c| c.is_ascii_alphanumeric()))
            .unwrap_or("audio");
        let input = dir.path().join(format!("input.{extension}"));
        tokio::fs::write(&input, audio)
            .await
            .map_err(|e| format!("the recording could not be written for ffmpeg: {e}"))?;
        let scan = self.scan(&input).await?;
        let cuts = cut_points(&scan, self.max_seconds, self.silence.is_some());
        if cuts.is_empty() {
            return Ok(vec![audio.clone()]);
        }
        let mut bounds = vec![0.0];
        bounds.extend(&cuts);
        bounds.push(scan.duration);
        let mut chunks = Vec::with_capacity(bounds.len() - 1);
        for (n, pair) in bounds.windows(2).enumerate() {
            let output = dir.path().join(format!("chunk_{n:03}.mp3"));
            let (from, length) = (
                format!("{:.3}", pair[0]),
                format!("{:.3}", pair[1] - pair[0]),
            );
            self.run(&[
                "-ss".into(),
                from.into(),
                "-t".into(),
                length.into(),
                "-i".into(),
                input.clone().into_os_string(),
                "-ac".into(),
                "1".into(),
                "-ar".into(),
                "16000".into(),
                "-b:a".into(),
                "128k".into(),
                output.clone().into_os_string(),
            ])
            .await?;
            let bytes = tokio::fs::read(&output)
                .await
                .map_err(|e| format!("ffmpeg wrote no chunk {n}: {e}"))?;
            chunks.push(Bytes::from(bytes));
        }
        Ok(chunks)
    }

    /// Length and silences of the recording at `input`.
    async fn scan(&self, input: &Path) -> Result<Scan, String> {
        let filter = self
            .silence
            .map(|(threshold, length)| format!("silencedetect=noise={threshold}dB:d={length}"));
        let mut args: Vec<OsString> = vec!["-i".into(), input.as_os_str().to_owned()];
        if let Some(filter) = filter {
            args.extend(["-af".into(), filter.into()]);
        }
        args.extend(["-f".into(), "null".into(), "-".into()]);
        let log = self.run(&args).await?;
        parse_scan(&log).ok_or_else(|| {
            format!(
                "{} did not report the recording's duration (is it audio ffmpeg can read?)",
                self.program
            )
        })
    }

    /// Run ffmpeg with `args`; its log (stderr) on success.
    async fn run(&self, args: &[OsString]) -> Result<String, String> {
        let output = Command::new(&self.program)
            .args(["-hide_banner", "-nostdin", "-y"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| {
                format!(
                    "the recording must be split and {:?} (ffmpeg_path) could not be run: {e}",
                    self.program
                )
            })?;
        let log = String::from_utf8_lossy(&output.stderr).into_owned();
        if !output.status.success() {
            let tail: String = log.lines().rev().take(3).collect::<Vec<_>>().join(" / ");
            return Err(format!(
                "{} failed ({}): {tail}",
                self.program, output.status
            ));
        }
        Ok(log)
    }
}

/// Read `Duration: HH:MM:SS.ss` and the `silence_start`/`silence_end` lines of an ffmpeg log.
pub fn parse_scan(log: &str) -> Option<Scan> {
    let mut duration = None;
    let mut silences = Vec::new();
    let mut open: Option<f64> = None;
    for line in log.lines() {
        if let Some(rest) = line.trim_start().strip_prefix("Duration: ") {
            if duration.is_none() {
                duration = clock(rest.split(',').next().unwrap_or_default());
            }
        }
        if let Some(at) = after(line, "silence_start: ") {
            open = Some(at.max(0.0));
        }
        if let Some(end) = after(line, "silence_end: ") {
            if let Some(start) = open.take() {
                silences.push((start, end));
            }
        }
    }
    let duration = duration?;
    if let Some(start) = open {
        silences.push((start, duration));
    }
    Some(Scan { duration, silences })
}

fn after(line: &str, marker: &str) -> Option<f64> {
    let at = line.find(marker)? + marker.len();
    line[at..].split_whitespace().next()?.parse().ok()
}

fn clock(text: &str) -> Option<f64> {
    let mut parts = text.trim().split(':');
    let hours: f64 = parts.next()?.parse().ok()?;
    let minutes: f64 = parts.next()?.parse().ok()?;
    let seconds: f64 = parts.next()?.parse().ok()?;
    Some(hours * 3600.0 + minutes * 60.0 + seconds)
}

/// Where to cut (seconds), so that no chunk is longer than `max`: in the last silence that
/// starts before each limit (its middle, or the limit when the silence runs past it), else at
/// the limit.
pub fn cut_points(scan: &Scan, max: f64, use_silences: bool) -> Vec<f64> {
    let mut cuts = Vec::new();
    let mut start = 0.0;
    while scan.duration - start > max {
        let limit = start + max;
        let in_silence = use_silences
            .then(|| {
                scan.silences
                    .iter()
                    .filter(|(a, _)| *a < limit)
                    .map(|(a, b)| ((a + b) / 2.0).min(limit))
                    .rfind(|cut| *cut > start + 1.0 && *cut <= limit)
            })
            .flatten();
        let cut = in_silence.unwrap_or(limit);
        cuts.push(cut);
        start = cut;
    }
    cuts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ffmpeg_log_is_read() {
        let log = "Input #0, wav, from 'in.wav':\n  Duration: 00:10:05.50, bitrate: 128 kb/s\n\
                   [silencedetect @ 0x1] silence_start: 118.2\n\
                   [silencedetect @ 0x1] silence_end: 121.4 | silence_duration: 3.2\n\
                   [silencedetect @ 0x1] silence_start: 600\n";
        assert_eq!(
            parse_scan(log),
            Some(Scan {
                duration: 605.5,
                silences: vec![(118.2, 121.4), (600.0, 605.5)]
            })
        );
        assert_eq!(parse_scan("no duration here"), None);
    }

    #[test]
    fn cuts_go_in_the_last_silence_before_each_limit() {
        let scan = Scan {
            duration: 1000.0,
            silences: vec![(100.0, 104.0), (300.0, 310.0), (700.0, 702.0)],
        };
        // 480 s chunks: the last silence before 480 is 300–310 (cut at 305); then before 785
        // it is 700–702 (cut at 701); 299 s remain.
        assert_eq!(cut_points(&scan, 480.0, true), vec![305.0, 701.0]);
        assert_eq!(cut_points(&scan, 480.0, false), vec![480.0, 960.0]);
        let silent_at_limit = Scan {
            duration: 600.0,
            silences: vec![(470.0, 530.0)],
        };
        assert_eq!(cut_points(&silent_at_limit, 480.0, true), vec![480.0]);
        assert!(cut_points(
            &Scan {
                duration: 480.0,
                silences: vec![]
            },
            480.0,
            true
        )
        .is_empty());
    }
}
