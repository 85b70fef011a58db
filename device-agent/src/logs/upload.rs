//! The answer to `upload_logs`: the archive of the recent log and the
//! evidence ([`super::archive`]) is written on a blocking thread into a
//! bounded channel and POSTed from it as it is made, so neither side holds
//! it whole, with the device's bearer token. It runs in a task of its own,
//! beside any running task, which it never waits for or delays.

use std::io::{self, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame};
use reqwest::header::CONTENT_TYPE;
use tokio::sync::mpsc;
use youmi_protocol::api::MAX_LOG_UPLOAD_BYTES;

use super::archive::{self, Sources, Summary};

/// How many bytes go into the channel at a time.
const CHUNK: usize = 64 * 1024;
/// Chunks waiting to be sent; the archive's writer waits beyond this.
const CHUNKS_IN_FLIGHT: usize = 4;

/// Why an upload failed; its text is the `error` of `logs_uploaded`.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The archive could not be made.
    #[error("cannot pack the logs: {0}")]
    Archive(#[from] io::Error),
    /// The server could not be reached, or the upload broke off.
    #[error("cannot send the logs: {0}")]
    Http(#[from] reqwest::Error),
    /// The server refused the upload.
    #[error("the server refused the upload ({status}): {body}")]
    Refused {
        /// Its status.
        status: u16,
        /// Its answer, cut short.
        body: String,
    },
    /// The thread that packs the logs died.
    #[error("the packing thread failed: {0}")]
    Thread(String),
}

/// The archive's bytes, from the packing thread to the request body.
struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buffer: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(CHUNK),
        ));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload stopped"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buffer.len();
        let taken = buf.len().min(room);
        self.buffer.extend_from_slice(&buf[..taken]);
        if self.buffer.len() >= CHUNK {
            self.send()?;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// The request body: whatever the packing thread sends, until it is done.
struct ChannelBody(mpsc::Receiver<io::Result<Bytes>>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|chunk| chunk.map(Frame::data)))
    }
}

/// Packs `sources` and POSTs the archive to `url` with `token`.
pub async fn upload(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    sources: Sources,
) -> Result<Summary, UploadError> {
    let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let packer = tokio::task::spawn_blocking(move || {
        let mut writer = ChannelWriter {
            tx: tx.clone(),
            buffer: Vec::with_capacity(CHUNK),
        };
        let result = archive::write(&mut writer, &sources, MAX_LOG_UPLOAD_BYTES)
            .and_then(|summary| writer.flush().map(|()| summary));
        if let Err(error) = &result {
            // The server must not take a cut archive for a whole one.
            let _ = tx.blocking_send(Err(io::Error::new(error.kind(), error.to_string())));
        }
        result
    });
    let sent = client
        .post(url)
        .bearer_auth(token)
        .header(CONTENT_TYPE, "application/gzip")
        .body(reqwest::Body::wrap(ChannelBody(rx)))
        .send()
        .await;
    let packed = packer
        .await
        .map_err(|error| UploadError::Thread(error.to_string()))?;
    let response = sent?;
    let summary = packed?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        let body: String = body.chars().take(300).collect();
        return Err(UploadError::Refused {
            status: status.as_u16(),
            body,
        });
    }
    Ok(summary)
}
