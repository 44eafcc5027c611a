//! The `log` gateway: the embedded default for trying Avisa on one machine.
//!
//! It sends nothing. Each message is appended as one JSON object per line to
//! a file (`<data-dir>/sms-log.jsonl`: `id`, `to`, `body`, `at`, `gateway`,
//! and the `encoding` and `segments` a carrier would bill)
//! and summarised on the terminal, so a person trying Avisa locally can read
//! their verification code. That file is a contract: tests and tools read it.
//! It holds numbers and texts in plain form, which is why this gateway is for
//! local use only and never the one a deployment sends through.

use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::Serialize;
use std::sync::Mutex;
use time::format_description::well_known::Rfc3339;

use crate::{Accepted, Gateway, GatewayError, OutgoingSms};

pub struct LogGateway {
    path: PathBuf,
    /// Whether to print a summary of each message on standard output.
    echo: bool,
    // Serialises appends so lines never interleave.
    file: Mutex<Option<std::fs::File>>,
}

#[derive(Serialize)]
struct Line<'a> {
    id: String,
    to: &'a str,
    body: &'a str,
    at: String,
    gateway: &'static str,
    encoding: &'static str,
    segments: usize,
}

impl LogGateway {
    pub fn new(path: impl Into<PathBuf>, echo: bool) -> Self {
        LogGateway {
            path: path.into(),
            echo,
            file: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[async_trait]
impl Gateway for LogGateway {
    fn name(&self) -> &str {
        "log"
    }

    async fn send(&self, sms: &OutgoingSms) -> Result<Accepted, GatewayError> {
        let at = time::OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default();
        let billed = avisa_core::sms::analyze(&sms.body);
        let mut line = serde_json::to_vec(&Line {
            id: sms.id.to_string(),
            to: sms.to.as_str(),
            body: &sms.body,
            at,
            gateway: "log",
            encoding: billed.encoding.as_str(),
            segments: billed.segments,
        })
        .map_err(|e| GatewayError::Permanent {
            reason: e.to_string(),
        })?;
        line.push(b'\n');
        // One append per message under the lock, so lines never interleave;
        // the file stays open. Written in place: an append of a few hundred
        // bytes to the page cache costs less than a hop to a blocking thread.
        let appended = (|| -> std::io::Result<()> {
            let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
            let file = match &mut *file {
                Some(open) => open,
                None => {
                    let mut options = std::fs::OpenOptions::new();
                    options.create(true).append(true).read(true);
                    // Numbers and texts in plain text: for its owner only.
                    #[cfg(unix)]
                    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                    let mut opened = options.open(&self.path)?;
                    end_a_torn_line(&mut opened)?;
                    file.insert(opened)
                }
            };
            file.write_all(&line)
        })();
        appended.map_err(|e| GatewayError::Retryable {
            reason: format!("cannot append to the SMS log: {e}"),
            retry_after: None,
        })?;
        if self.echo {
            println!("[sms log] to {}: {}", sms.to, sms.body.replace('\n', " ⏎ "));
        }
        Ok(Accepted {
            provider_id: format!("log-{}", sms.id),
        })
    }
}

/// A process killed while appending may leave its last line cut short (a
/// write interrupted by SIGKILL can stop at a page boundary): that line is
/// ended here, before this process appends, so the torn one stays alone
/// and the next message's line is whole. (The bench's crash run once
/// counted the first message sent after a restart as lost: its line had
/// been glued to the torn one and no longer parsed.)
fn end_a_torn_line(file: &mut std::fs::File) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1))?;
    file.read_exact(&mut last)?;
    if last[0] != b'\n' {
        file.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use avisa_core::PhoneNumber;
    use uuid::Uuid;

    #[tokio::test]
    async fn appends_one_json_object_per_message() {
        let dir = tempfile::tempdir().expect("dir");
        let gw = LogGateway::new(dir.path().join("sms-log.jsonl"), false);
        for body in ["Avisa: tu código es 123456", "segundo\nmensaje"] {
            let sms = OutgoingSms {
                id: Uuid::now_v7(),
                channel: avisa_core::Channel::Sms,
                to: PhoneNumber::parse("+12135550100").expect("phone"),
                body: body.into(),
                valid_for: None,
            };
            let accepted = gw.send(&sms).await.expect("send");
            assert_eq!(accepted.provider_id, format!("log-{}", sms.id));
        }
        let text = std::fs::read_to_string(gw.path()).expect("read");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["to"], "+12135550100");
        assert_eq!(lines[0]["body"], "Avisa: tu código es 123456");
        assert_eq!(lines[1]["body"], "segundo\nmensaje");
        for l in &lines {
            assert!(l["id"].as_str().is_some_and(|s| s.len() == 36));
            assert!(l["at"].as_str().is_some_and(|s| s.ends_with('Z')));
        }
    }

    /// A line cut short by a killed process stays alone: the next one, the
    /// first this process writes, is whole.
    #[tokio::test]
    async fn a_torn_last_line_does_not_swallow_the_next() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("sms-log.jsonl");
        std::fs::write(
            &path,
            "{\"id\":\"whole\"}\n{\"id\":\"torn, the process was ki",
        )
        .expect("write");
        let gw = LogGateway::new(&path, false);
        let sms = OutgoingSms {
            id: Uuid::now_v7(),
            channel: avisa_core::Channel::Sms,
            to: PhoneNumber::parse("+12135550100").expect("phone"),
            body: "Avisa: ayuda".into(),
            valid_for: None,
        };
        gw.send(&sms).await.expect("send");
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(serde_json::from_str::<serde_json::Value>(lines[1]).is_err());
        let last: serde_json::Value =
            serde_json::from_str(lines[2]).expect("the new line is whole");
        assert_eq!(last["id"], sms.id.to_string());
    }
}
