//! `POST /v1/uploads` and the `video_url` it hands back (docs/contract.md section 2).
//!
//! An upload is the multipart field `file`. Its type is the part's own `Content-Type`, or,
//! when the part has none or `application/octet-stream` (the vendor's Python SDK sends
//! none), the file name's extension. The bytes are kept in [`Uploads`], a store bounded in
//! total size that evicts the oldest upload first, and served at `/uploads/{video_id}` with
//! their type, so a client can fetch them and create a job from that URL.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::PathRejection;
use axum::extract::{Multipart, Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::{Bytes, BytesMut};
use serde_json::json;

use super::error::ApiError;
use super::faults::Fault;
use super::handlers::origin;
use super::state::{random_hex, App};

/// The contract's per-file limit, the default of [`super::ServerConfig::max_upload_bytes`].
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 500 * 1024 * 1024;

/// Room for multipart boundaries and part headers on top of the file itself.
const MULTIPART_OVERHEAD: u64 = 1024 * 1024;

/// The most bytes of uploads kept at once; older uploads are evicted to make room, so a
/// long-lived sandbox holds one 500 MB file at most, not every file ever sent.
const KEPT_UPLOAD_BYTES: usize = 512 * 1024 * 1024;

/// Accepted types, each with the file extension that stands for it.
const UPLOAD_TYPES: [(&str, &str); 4] = [
    ("video/mp4", "mp4"),
    ("video/quicktime", "mov"),
    ("video/webm", "webm"),
    ("video/x-msvideo", "avi"),
];

/// The type a part without one is served with under `upload-any-type`.
const UNKNOWN_TYPE: &str = "application/octet-stream";

/// One kept upload.
struct Kept {
    video_id: String,
    content_type: String,
    bytes: Bytes,
}

/// The uploads kept for serving, oldest first, at most `cap` bytes in all.
pub(crate) struct Uploads {
    cap: usize,
    kept: Mutex<VecDeque<Kept>>,
}

impl Default for Uploads {
    fn default() -> Self {
        Uploads::with_cap(KEPT_UPLOAD_BYTES)
    }
}

impl Uploads {
    fn with_cap(cap: usize) -> Uploads {
        Uploads {
            cap,
            kept: Mutex::default(),
        }
    }

    /// Keep an upload, evicting the oldest ones until it fits.
    fn keep(&self, video_id: String, content_type: String, bytes: Bytes) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let mut total: usize = kept.iter().map(|k| k.bytes.len()).sum();
        while total + bytes.len() > self.cap {
            let Some(oldest) = kept.pop_front() else {
                break;
            };
            total -= oldest.bytes.len();
        }
        kept.push_back(Kept {
            video_id,
            content_type,
            bytes,
        });
    }

    /// The type and bytes of a kept upload.
    fn get(&self, video_id: &str) -> Option<(String, Bytes)> {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.iter()
            .find(|k| k.video_id == video_id)
            .map(|k| (k.content_type.clone(), k.bytes.clone()))
    }
}

/// The media type of a part as declared: lower-cased, without parameters; None when absent
/// or `application/octet-stream`, which say nothing about the file.
fn declared_type(content_type: Option<&str>) -> Option<String> {
    let media = content_type?
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    (!media.is_empty() && media != UNKNOWN_TYPE).then_some(media)
}

/// The accepted type a file name's extension stands for.
fn type_of_name(filename: &str) -> Option<&'static str> {
    let (_, extension) = filename.rsplit_once('.')?;
    UPLOAD_TYPES
        .iter()
        .find(|(_, ext)| ext.eq_ignore_ascii_case(extension))
        .map(|(media, _)| *media)
}

/// The upload's type: the part's own, else (unless `part_only`) its file name's; or the
/// refusal, naming what was seen.
fn upload_type(
    content_type: Option<&str>,
    filename: Option<&str>,
    part_only: bool,
) -> Result<String, String> {
    let accepted = |media: &str| UPLOAD_TYPES.iter().any(|(m, _)| *m == media);
    match declared_type(content_type) {
        Some(media) if accepted(&media) => Ok(media),
        Some(media) => Err(format!("unsupported file type {media:?}")),
        None if part_only => Err(format!(
            "unsupported file type {:?}",
            content_type.unwrap_or("")
        )),
        None => match filename.and_then(type_of_name) {
            Some(media) => Ok(media.to_owned()),
            None => Err(format!(
                "unsupported file type: the part has no video Content-Type and the file name {:?} no video extension",
                filename.unwrap_or("")
            )),
        },
    }
}

/// `POST /v1/uploads`: multipart field `file`, a video of at most the configured limit.
pub(crate) async fn upload(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    uri: Uri,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    if app.has(Fault::UploadRefused) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "uploads are not accepted",
        ));
    }
    let limit = (!app.has(Fault::UploadNoSizeLimit)).then_some(app.config.max_upload_bytes);
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let (Some(limit), Some(len)) = (limit, declared) {
        if len > limit.saturating_add(MULTIPART_OVERHEAD) {
            return Err(too_large(limit));
        }
    }
    let mut multipart = multipart
        .map_err(|e| ApiError::invalid(format!("expected a multipart/form-data body: {e}")))?;
    let mut uploaded = None;
    while let Some(mut field) = multipart.next_field().await.map_err(malformed)? {
        if field.name() != Some("file") {
            continue; // skipped; multer discards the rest of the part
        }
        let filename = field.file_name().map(str::to_owned);
        let media = match upload_type(
            field.content_type(),
            filename.as_deref(),
            app.has(Fault::UploadTypeFromPartOnly),
        ) {
            Ok(media) => media,
            Err(_) if app.has(Fault::UploadAnyType) => {
                field.content_type().unwrap_or(UNKNOWN_TYPE).to_owned()
            }
            Err(why) => {
                let accepted: Vec<&str> = UPLOAD_TYPES.iter().map(|(m, _)| *m).collect();
                return Err(ApiError::invalid(format!(
                    "{why}; accepted: {} (from the part's Content-Type, or the file name's extension)",
                    accepted.join(", ")
                )));
            }
        };
        let mut bytes = BytesMut::new();
        while let Some(chunk) = field.chunk().await.map_err(malformed)? {
            if let Some(limit) = limit {
                if (bytes.len() + chunk.len()) as u64 > limit {
                    return Err(too_large(limit));
                }
            }
            bytes.extend_from_slice(&chunk);
        }
        uploaded = Some((filename.unwrap_or_else(|| "upload".into()), media, bytes));
        break;
    }
    let Some((filename, media, bytes)) = uploaded else {
        return Err(ApiError::invalid("multipart field `file` is required"));
    };
    let size = bytes.len();
    // Hex ids: a URL with "fail" in it makes a job fail, and hex never spells it.
    let video_id = format!("vid_{}", random_hex(24));
    let video_url = format!("{}/uploads/{video_id}", origin(&headers, &uri));
    app.uploads.keep(video_id.clone(), media, bytes.freeze());
    let size = if app.has(Fault::UploadBadReply) {
        json!(size.to_string())
    } else {
        json!(size)
    };
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "success": true,
            "video_id": video_id,
            "video_url": video_url,
            "filename": filename,
            "size": size,
        })),
    )
        .into_response())
}

/// `GET|HEAD /uploads/{video_id}`: the uploaded bytes, with their type (no key: the URL is
/// handed to the job runner like any other video URL).
pub(crate) async fn serve(
    State(app): State<Arc<App>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let missing = || ApiError::new(StatusCode::NOT_FOUND, "not_found", "Upload not found");
    let id = path.map(|Path(id)| id).map_err(|_| missing())?;
    if app.has(Fault::UploadUrl404) {
        return Err(missing());
    }
    let (media, bytes) = app.uploads.get(&id).ok_or_else(missing)?;
    Ok(([(header::CONTENT_TYPE, media)], bytes).into_response())
}

fn too_large(limit: u64) -> ApiError {
    ApiError::invalid(format!("file is larger than the limit of {limit} bytes"))
}

fn malformed(e: axum::extract::multipart::MultipartError) -> ApiError {
    ApiError::invalid(format!("malformed multipart body: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_type_comes_from_the_part_then_the_name() {
        let mp4 = Ok("video/mp4".to_owned());
        assert_eq!(upload_type(Some("video/mp4"), Some("a.txt"), false), mp4);
        assert_eq!(upload_type(Some("Video/MP4; x=1"), None, false), mp4);
        assert_eq!(upload_type(None, Some("clip.MP4"), false), mp4);
        assert_eq!(
            upload_type(Some("application/octet-stream"), Some("a.mp4"), false),
            mp4
        );
        assert_eq!(
            upload_type(None, Some("a.mov"), false),
            Ok("video/quicktime".into())
        );
        assert_eq!(
            upload_type(None, Some("a.avi"), false),
            Ok("video/x-msvideo".into())
        );
        assert!(upload_type(Some("text/plain"), Some("a.mp4"), false).is_err());
        assert!(upload_type(None, Some("notes.txt"), false).is_err());
        assert!(upload_type(None, Some("mp4"), false).is_err());
        assert!(upload_type(None, None, false).is_err());
        // upload-type-from-part-only: the name is never asked.
        assert!(upload_type(None, Some("clip.mp4"), true).is_err());
        assert_eq!(
            upload_type(Some("video/webm"), None, true),
            Ok("video/webm".into())
        );
    }

    #[test]
    fn the_store_evicts_the_oldest_first() {
        let uploads = Uploads::with_cap(10);
        let half = 5;
        uploads.keep("a".into(), "video/mp4".into(), Bytes::from(vec![0; half]));
        uploads.keep("b".into(), "video/mp4".into(), Bytes::from(vec![0; half]));
        uploads.keep("c".into(), "video/webm".into(), Bytes::from_static(b"c"));
        assert!(uploads.get("a").is_none());
        assert!(uploads.get("b").is_some());
        assert_eq!(
            uploads.get("c"),
            Some(("video/webm".into(), Bytes::from_static(b"c")))
        );
    }
}
