//! Amazon S3 as the functions and browsers read recordings, in this process: a directory
//! per bucket under one root (where the local IVS writes its recordings), served
//! path-style (`/{bucket}/{key}`; a `{bucket}.host` Host works too) with the part of the
//! S3 REST API they use: GetObject (with Range), HeadObject, ListObjectsV2 (prefix,
//! delimiter, max-keys, continuation-token, start-after), DeleteObject and DeleteObjects.
//!
//! Every request is authenticated as S3 does it, with Signature Version 4: in the
//! `Authorization` header (what the SDK sends) or in a presigned URL's query string
//! (what a player is given), checked against the credentials the local stack hands its
//! functions. A wrong, expired or missing signature is `403 AccessDenied`, as S3 answers.
//! CORS lets browsers on the console's origin GET and HEAD objects (the HLS of a
//! recording).
//!
//! Hand-written: no maintained crate serves S3 in-process over a plain directory.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// The access key id the local stack's functions sign with (their SDK configs' static
/// credentials).
pub const LOCAL_ACCESS_KEY_ID: &str = "local";
/// Its secret.
pub const LOCAL_SECRET_ACCESS_KEY: &str = "local";
/// S3 refuses requests signed further than this from its clock.
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(15 * 60);
/// A presigned URL lasts at most a week.
const MAX_PRESIGNED_SECONDS: u64 = 7 * 24 * 3600;
/// Keys per ListObjectsV2 page and per DeleteObjects request, at most.
const MAX_KEYS: usize = 1000;
const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
const XMLNS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// SigV4's URI encoding: everything but the unreserved characters.
const SIGV4_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The local S3: its buckets' root and who may call it.
pub struct LocalS3 {
    root: PathBuf,
    access_key_id: String,
    secret_access_key: String,
    /// Origins allowed by CORS; empty means any `localhost` / `127.0.0.1` origin.
    cors_origins: Vec<String>,
}

impl LocalS3 {
    /// Buckets are the directories under `root`; requests must be signed with the local
    /// functions' credentials.
    pub fn new(root: PathBuf, cors_origins: Vec<String>) -> Arc<Self> {
        Arc::new(Self {
            root,
            access_key_id: LOCAL_ACCESS_KEY_ID.into(),
            secret_access_key: LOCAL_SECRET_ACCESS_KEY.into(),
            cors_origins,
        })
    }

    /// The directory holding the buckets.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn bucket_dir(&self, bucket: &str) -> Option<PathBuf> {
        let dir = self.root.join(bucket);
        (valid_bucket_name(bucket) && dir.is_dir()).then_some(dir)
    }
}

/// The S3 router: every path, every method.
pub fn router(s3: Arc<LocalS3>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(s3)
}

/// Whether `name` is a valid S3 bucket name: 3 to 63 lowercase letters, digits, dots
/// and hyphens, starting and ending with a letter or digit, no `..`.
pub fn valid_bucket_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (3..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-'))
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && !name.contains("..")
}

/// An S3 error answer: its XML body (none for HEAD) and request id.
struct S3Error {
    status: StatusCode,
    code: &'static str,
    message: String,
    resource: Option<String>,
}

impl S3Error {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            resource: None,
        }
    }

    fn access_denied(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "AccessDenied", message)
    }

    fn no_such_key(key: &str) -> Self {
        Self {
            resource: Some(key.to_owned()),
            ..Self::new(
                StatusCode::NOT_FOUND,
                "NoSuchKey",
                "The specified key does not exist.",
            )
        }
    }

    fn no_such_bucket(bucket: &str) -> Self {
        Self {
            resource: Some(bucket.to_owned()),
            ..Self::new(
                StatusCode::NOT_FOUND,
                "NoSuchBucket",
                "The specified bucket does not exist",
            )
        }
    }

    fn response(self, method: &Method) -> Response {
        let mut xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message>",
            self.code,
            escape(&self.message)
        );
        if let Some(resource) = &self.resource {
            let tag = if self.code == "NoSuchBucket" {
                "BucketName"
            } else {
                "Key"
            };
            xml.push_str(&format!("<{tag}>{}</{tag}>", escape(resource)));
        }
        xml.push_str("</Error>");
        let body = if method == Method::HEAD {
            Body::empty()
        } else {
            Body::from(xml)
        };
        (
            self.status,
            [(header::CONTENT_TYPE, "application/xml")],
            body,
        )
            .into_response()
    }
}

async fn handle(
    State(s3): State<Arc<LocalS3>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let origin = allowed_origin(&s3.cors_origins, &headers);
    let mut response = if method == Method::OPTIONS {
        preflight(origin.is_some())
    } else {
        match serve(&s3, &method, &uri, &headers, &body).await {
            Ok(response) => response,
            Err(error) => error.response(&method),
        }
    };
    let h = response.headers_mut();
    h.insert(
        "x-amz-request-id",
        HeaderValue::from_str(&ulid::Ulid::generate().to_string())
            .unwrap_or(HeaderValue::from_static("local")),
    );
    if let Some(origin) = origin {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("Content-Length, Content-Range, ETag, Accept-Ranges"),
        );
    }
    response
}

/// A CORS preflight: GET and HEAD (with Range) from an allowed origin.
fn preflight(allowed: bool) -> Response {
    if !allowed {
        return S3Error::access_denied("CORSResponse: This CORS request is not allowed.")
            .response(&Method::OPTIONS);
    }
    (
        StatusCode::OK,
        [
            (header::ACCESS_CONTROL_ALLOW_METHODS, "GET, HEAD"),
            (header::ACCESS_CONTROL_ALLOW_HEADERS, "Range, Authorization"),
            (header::ACCESS_CONTROL_MAX_AGE, "3000"),
        ],
    )
        .into_response()
}

fn allowed_origin(cors_origins: &[String], headers: &HeaderMap) -> Option<HeaderValue> {
    let origin = headers.get(header::ORIGIN)?.to_str().ok()?;
    let ok = if cors_origins.is_empty() {
        let host = origin
            .split("://")
            .nth(1)
            .unwrap_or("")
            .split(':')
            .next()
            .unwrap_or("");
        matches!(host, "localhost" | "127.0.0.1" | "[::1]")
    } else {
        cors_origins.iter().any(|o| o == origin || o == "*")
    };
    ok.then(|| HeaderValue::from_str(origin).ok()).flatten()
}

async fn serve(
    s3: &LocalS3,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, S3Error> {
    authenticate(s3, method, uri, headers, body)?;
    let (bucket, key) = bucket_and_key(s3, uri, headers)?;
    let Some(bucket_dir) = s3.bucket_dir(&bucket) else {
        return Err(S3Error::no_such_bucket(&bucket));
    };
    let query = query_pairs(uri.query().unwrap_or(""));
    let has = |name: &str| query.iter().any(|(n, _)| n == name);
    match (method.clone(), key.is_empty()) {
        (Method::GET, true) if query_value(&query, "list-type") == Some("2") => {
            list_objects_v2(&bucket, &bucket_dir, &query).await
        }
        (Method::HEAD, true) => Ok(StatusCode::OK.into_response()),
        (Method::POST, true) if has("delete") => delete_objects(&bucket_dir, body).await,
        (Method::GET | Method::HEAD, false) => {
            get_object(&bucket_dir, &key, method == Method::HEAD, headers).await
        }
        (Method::DELETE, false) => {
            delete_key(&bucket_dir, &key).await;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Err(S3Error::new(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            "A header or query you provided implies functionality that is not implemented.",
        )),
    }
}

/// The bucket and key a request names: path-style, or the bucket in the Host.
fn bucket_and_key(
    s3: &LocalS3,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(String, String), S3Error> {
    let path = percent_decode_str(uri.path()).decode_utf8().map_err(|_| {
        S3Error::new(
            StatusCode::BAD_REQUEST,
            "InvalidURI",
            "Couldn't parse the specified URI.",
        )
    })?;
    let path = path.trim_start_matches('/');
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let host = host.rsplit_once(':').map_or(host, |(name, _)| name);
    if let Some((bucket, _)) = host.split_once('.')
        && s3.bucket_dir(bucket).is_some()
    {
        return Ok((bucket.to_owned(), path.to_owned()));
    }
    let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
    if bucket.is_empty() {
        return Err(S3Error::new(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            "ListBuckets is not emulated",
        ));
    }
    Ok((bucket.to_owned(), key.to_owned()))
}

/// The file of `key`, if the key maps to a path inside the bucket.
fn object_path(bucket_dir: &Path, key: &str) -> Option<PathBuf> {
    let relative = Path::new(key);
    let plain = !key.is_empty()
        && !key.ends_with('/')
        && !key.contains("//")
        && relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    plain.then(|| bucket_dir.join(relative))
}

fn content_type(key: &str) -> &'static str {
    match key.rsplit_once('.').map(|(_, ext)| ext) {
        Some("m3u8") => "application/vnd.apple.mpegurl",
        Some("mp4") => "video/mp4",
        Some("m4s") => "video/iso.segment",
        Some("ts") => "video/mp2t",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

/// An opaque ETag from the file's size and modification time: hashing every segment of
/// a long recording on each listing would cost more than it tells.
fn etag(metadata: &std::fs::Metadata) -> String {
    let modified = metadata
        .modified()
        .ok()
        .and_then(|m| m.duration_since(SystemTime::UNIX_EPOCH).ok())
        .unwrap_or_default();
    let digest = md5::compute(format!("{}-{}", metadata.len(), modified.as_nanos()));
    format!("\"{digest:x}\"")
}

async fn get_object(
    bucket_dir: &Path,
    key: &str,
    head: bool,
    headers: &HeaderMap,
) -> Result<Response, S3Error> {
    let path = object_path(bucket_dir, key).ok_or_else(|| S3Error::no_such_key(key))?;
    let metadata = tokio::fs::metadata(&path)
        .await
        .ok()
        .filter(|m| m.is_file())
        .ok_or_else(|| S3Error::no_such_key(key))?;
    let size = metadata.len();
    let range = match headers.get(header::RANGE).and_then(|r| r.to_str().ok()) {
        Some(range) => Some(parse_range(range, size).ok_or_else(|| {
            S3Error::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "InvalidRange",
                "The requested range is not satisfiable",
            )
        })?),
        None => None,
    };
    let modified = metadata
        .modified()
        .map(httpdate::fmt_http_date)
        .unwrap_or_default();
    let mut response = Response::builder()
        .header(header::CONTENT_TYPE, content_type(key))
        .header(header::ETAG, etag(&metadata))
        .header(header::LAST_MODIFIED, modified)
        .header(header::ACCEPT_RANGES, "bytes");
    let (status, start, end) = match range {
        Some((start, end)) => {
            response =
                response.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}"));
            (StatusCode::PARTIAL_CONTENT, start, end)
        }
        None => (StatusCode::OK, 0, size.saturating_sub(1)),
    };
    let length = if size == 0 { 0 } else { end - start + 1 };
    response = response
        .status(status)
        .header(header::CONTENT_LENGTH, length);
    let body = if head || length == 0 {
        Body::empty()
    } else {
        let data = tokio::fs::read(&path)
            .await
            .map_err(|_| S3Error::no_such_key(key))?;
        let (start, end) = (
            start as usize,
            (end as usize).min(data.len().saturating_sub(1)),
        );
        Body::from(
            data.get(start..=end)
                .map(<[u8]>::to_vec)
                .unwrap_or_default(),
        )
    };
    response.body(body).map_err(|e| {
        S3Error::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            e.to_string(),
        )
    })
}

/// `bytes=a-b`, `bytes=a-` or `bytes=-n` over an object of `size` bytes: the inclusive
/// byte range, or `None` when unsatisfiable.
fn parse_range(range: &str, size: u64) -> Option<(u64, u64)> {
    let spec = range.trim().strip_prefix("bytes=")?;
    let (first, last) = spec.split_once('-')?;
    let (start, end) = match (first.trim(), last.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().ok()?;
            (size.checked_sub(n.min(size))?, size.checked_sub(1)?)
        }
        (first, "") => (first.parse().ok()?, size.checked_sub(1)?),
        (first, last) => (
            first.parse().ok()?,
            last.parse::<u64>().ok()?.min(size.checked_sub(1)?),
        ),
    };
    (start <= end && start < size).then_some((start, end))
}

/// Removes `key`'s file and the directories it leaves empty (S3 has no directories).
async fn delete_key(bucket_dir: &Path, key: &str) -> bool {
    let Some(path) = object_path(bucket_dir, key) else {
        return false;
    };
    let removed = tokio::fs::remove_file(&path).await.is_ok();
    let mut dir = path.parent();
    while let Some(parent) = dir.filter(|d| *d != bucket_dir) {
        if tokio::fs::remove_dir(parent).await.is_err() {
            break;
        }
        dir = parent.parent();
    }
    removed
}

async fn delete_objects(bucket_dir: &Path, body: &Bytes) -> Result<Response, S3Error> {
    let malformed = || {
        S3Error::new(
            StatusCode::BAD_REQUEST,
            "MalformedXML",
            "The XML you provided was not well-formed or did not validate against our published schema",
        )
    };
    let text = std::str::from_utf8(body).map_err(|_| malformed())?;
    let (keys, quiet) = parse_delete(text).ok_or_else(malformed)?;
    if keys.is_empty() || keys.len() > MAX_KEYS {
        return Err(malformed());
    }
    let mut xml =
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DeleteResult xmlns=\"{XMLNS}\">");
    for key in keys {
        // S3 reports a missing key as deleted.
        delete_key(bucket_dir, &key).await;
        if !quiet {
            xml.push_str(&format!("<Deleted><Key>{}</Key></Deleted>", escape(&key)));
        }
    }
    xml.push_str("</DeleteResult>");
    Ok(([(header::CONTENT_TYPE, "application/xml")], xml).into_response())
}

/// The keys and the `Quiet` flag of a `<Delete>` document.
fn parse_delete(text: &str) -> Option<(Vec<String>, bool)> {
    use xmlparser::{ElementEnd, Token, Tokenizer};
    let mut keys = Vec::new();
    let mut quiet = false;
    let mut path: Vec<String> = Vec::new();
    let mut saw_delete = false;
    for token in Tokenizer::from(text) {
        match token.ok()? {
            Token::ElementStart { local, .. } => {
                path.push(local.as_str().to_owned());
                saw_delete |= path.len() == 1 && local.as_str() == "Delete";
            }
            Token::ElementEnd { end, .. } => match end {
                ElementEnd::Open => {}
                ElementEnd::Close(..) | ElementEnd::Empty => {
                    path.pop();
                }
            },
            Token::Text { text } => {
                let names: Vec<&str> = path.iter().map(String::as_str).collect();
                match names.as_slice() {
                    ["Delete", "Object", "Key"] => keys.push(unescape(text.as_str())?),
                    ["Delete", "Quiet"] => quiet = text.as_str().trim() == "true",
                    _ => {}
                }
            }
            _ => {}
        }
    }
    saw_delete.then_some((keys, quiet))
}

/// Every object key in the bucket, sorted (staged writes, `*.tmp`, left out).
fn all_keys(bucket_dir: &Path) -> Vec<(String, std::fs::Metadata)> {
    let mut keys = Vec::new();
    let mut pending = vec![bucket_dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            let path = entry.path();
            if metadata.is_dir() {
                pending.push(path);
            } else if metadata.is_file()
                && path.extension().is_none_or(|e| e != "tmp")
                && let Ok(relative) = path.strip_prefix(bucket_dir)
            {
                let key = relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                keys.push((key, metadata));
            }
        }
    }
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    keys
}

async fn list_objects_v2(
    bucket: &str,
    bucket_dir: &Path,
    query: &[(String, String)],
) -> Result<Response, S3Error> {
    use base64::Engine;
    let engine = base64::engine::general_purpose::STANDARD;
    let prefix = query_value(query, "prefix").unwrap_or("").to_owned();
    let delimiter = query_value(query, "delimiter").unwrap_or("").to_owned();
    let max_keys = match query_value(query, "max-keys") {
        Some(n) => n.parse::<usize>().map_err(|_| {
            S3Error::new(
                StatusCode::BAD_REQUEST,
                "InvalidArgument",
                "max-keys is not a number",
            )
        })?,
        None => MAX_KEYS,
    }
    .min(MAX_KEYS);
    let token = query_value(query, "continuation-token").map(str::to_owned);
    let after = match &token {
        Some(token) => Some(
            engine
                .decode(token)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    S3Error::new(
                        StatusCode::BAD_REQUEST,
                        "InvalidArgument",
                        "The continuation token provided is incorrect",
                    )
                })?,
        ),
        None => query_value(query, "start-after").map(str::to_owned),
    };
    let dir = bucket_dir.to_path_buf();
    let keys = tokio::task::spawn_blocking(move || all_keys(&dir))
        .await
        .unwrap_or_default();

    // Objects and common prefixes in key order, each one entry of the page.
    let mut contents = String::new();
    let mut prefixes = String::new();
    let mut count = 0;
    let mut last = None;
    let mut truncated = false;
    let mut last_prefix: Option<String> = None;
    for (key, metadata) in keys.iter() {
        if !key.starts_with(&prefix) || after.as_ref().is_some_and(|a| key <= a) {
            continue;
        }
        let rolled_up = (!delimiter.is_empty())
            .then(|| key[prefix.len()..].find(&delimiter))
            .flatten()
            .map(|at| key[..prefix.len() + at + delimiter.len()].to_owned());
        if let Some(common) = &rolled_up
            && last_prefix.as_ref() == Some(common)
        {
            continue;
        }
        if count == max_keys {
            truncated = true;
            break;
        }
        count += 1;
        match rolled_up {
            Some(common) => {
                prefixes.push_str(&format!(
                    "<CommonPrefixes><Prefix>{}</Prefix></CommonPrefixes>",
                    escape(&common)
                ));
                // The page ends after the last key under this prefix.
                last = keys
                    .iter()
                    .rev()
                    .find(|(k, _)| k.starts_with(&common))
                    .map(|(k, _)| k.clone());
                last_prefix = Some(common);
            }
            None => {
                let modified = metadata
                    .modified()
                    .map(DateTime::<Utc>::from)
                    .unwrap_or_else(|_| Utc::now())
                    .to_rfc3339_opts(SecondsFormat::Millis, true);
                contents.push_str(&format!(
                    "<Contents><Key>{}</Key><LastModified>{modified}</LastModified><ETag>{}</ETag>\
                     <Size>{}</Size><StorageClass>STANDARD</StorageClass></Contents>",
                    escape(key),
                    escape(&etag(metadata)),
                    metadata.len()
                ));
                last = Some(key.clone());
            }
        }
    }
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult xmlns=\"{XMLNS}\">\
         <Name>{}</Name><Prefix>{}</Prefix><KeyCount>{count}</KeyCount><MaxKeys>{max_keys}</MaxKeys>",
        escape(bucket),
        escape(&prefix)
    );
    if !delimiter.is_empty() {
        xml.push_str(&format!("<Delimiter>{}</Delimiter>", escape(&delimiter)));
    }
    xml.push_str(&format!("<IsTruncated>{truncated}</IsTruncated>"));
    if let Some(token) = &token {
        xml.push_str(&format!(
            "<ContinuationToken>{}</ContinuationToken>",
            escape(token)
        ));
    }
    if truncated && let Some(last) = last {
        xml.push_str(&format!(
            "<NextContinuationToken>{}</NextContinuationToken>",
            engine.encode(last)
        ));
    }
    xml.push_str(&contents);
    xml.push_str(&prefixes);
    xml.push_str("</ListBucketResult>");
    Ok(([(header::CONTENT_TYPE, "application/xml")], xml).into_response())
}

/// The raw query's name/value pairs, percent-decoded.
fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
            (decode(name), decode(value))
        })
        .collect()
}

fn query_value<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn sigv4_encode(value: &str) -> String {
    utf8_percent_encode(value, SIGV4_ENCODE).to_string()
}

fn sha256_hex(data: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// What a request's signature claims.
struct Claim {
    access_key_id: String,
    /// `<date>/<region>/<service>/aws4_request`.
    scope: String,
    date: String,
    region: String,
    service: String,
    amz_date: String,
    signed_headers: Vec<String>,
    signature: String,
}

fn parse_credential(credential: &str) -> Option<(String, String, String, String, String)> {
    let mut parts = credential.splitn(5, '/');
    let key = parts.next()?.to_owned();
    let date = parts.next()?.to_owned();
    let region = parts.next()?.to_owned();
    let service = parts.next()?.to_owned();
    let terminator = parts.next()?;
    (terminator == "aws4_request").then(|| {
        let scope = format!("{date}/{region}/{service}/aws4_request");
        (key, scope, date, region, service)
    })
}

fn parse_amz_date(amz_date: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(amz_date, "%Y%m%dT%H%M%SZ")
        .ok()
        .map(|t| t.and_utc())
}

/// Checks the request's SigV4 signature, in its `Authorization` header or its query.
fn authenticate(
    s3: &LocalS3,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(), S3Error> {
    let query = query_pairs(uri.query().unwrap_or(""));
    let now = Utc::now();
    let (claim, payload_hash) = if let Some(authorization) = headers.get(header::AUTHORIZATION) {
        let authorization = authorization
            .to_str()
            .map_err(|_| S3Error::access_denied("The authorization header is malformed"))?;
        header_claim(authorization, headers, body)?
    } else if query_value(&query, "X-Amz-Signature").is_some() {
        presigned_claim(&query, now)?
    } else {
        return Err(S3Error::access_denied(
            "Anonymous access to this bucket is not allowed: sign the request (SigV4)",
        ));
    };
    if claim.access_key_id != s3.access_key_id {
        return Err(S3Error::new(
            StatusCode::FORBIDDEN,
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
        ));
    }
    if claim.service != "s3" {
        return Err(S3Error::access_denied(
            "The credential scope's service must be s3",
        ));
    }
    let signed_at = parse_amz_date(&claim.amz_date)
        .filter(|t| t.format("%Y%m%d").to_string() == claim.date)
        .ok_or_else(|| S3Error::access_denied("X-Amz-Date is malformed or out of its scope"))?;
    if !claim.signed_headers.iter().any(|h| h == "host") {
        return Err(S3Error::access_denied("The host header must be signed"));
    }

    let canonical_query = {
        let mut pairs: Vec<(String, String)> = query
            .iter()
            .filter(|(name, _)| name != "X-Amz-Signature")
            .map(|(n, v)| (sigv4_encode(n), sigv4_encode(v)))
            .collect();
        pairs.sort();
        pairs
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    };
    let mut canonical_headers = String::new();
    for name in &claim.signed_headers {
        let values: Vec<String> = headers
            .get_all(name.as_str())
            .iter()
            .map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        if values.is_empty() {
            return Err(S3Error::access_denied(format!(
                "The signed header {name} is missing"
            )));
        }
        canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let path = if uri.path().is_empty() {
        "/"
    } else {
        uri.path()
    };
    let canonical_request = format!(
        "{method}\n{path}\n{canonical_query}\n{canonical_headers}\n{}\n{payload_hash}",
        claim.signed_headers.join(";")
    );
    let string_to_sign = format!(
        "{ALGORITHM}\n{}\n{}\n{}",
        claim.amz_date,
        claim.scope,
        sha256_hex(canonical_request.as_bytes())
    );
    let signing_key = aws_sigv4::sign::v4::generate_signing_key(
        &s3.secret_access_key,
        SystemTime::from(signed_at),
        &claim.region,
        &claim.service,
    );
    let expected = aws_sigv4::sign::v4::calculate_signature(signing_key, string_to_sign.as_bytes());
    let matches = aws_lc_rs::constant_time::verify_slices_are_equal(
        expected.as_bytes(),
        claim.signature.as_bytes(),
    )
    .is_ok();
    if !matches {
        return Err(S3Error::new(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        ));
    }
    Ok(())
}

/// The claim of an `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…,
/// Signature=…` header, and the payload hash it signs (checked against the body).
fn header_claim(
    authorization: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(Claim, String), S3Error> {
    let malformed = || S3Error::access_denied("The authorization header is malformed");
    let fields = authorization
        .strip_prefix(ALGORITHM)
        .ok_or_else(|| S3Error::access_denied("Only AWS4-HMAC-SHA256 (SigV4) is supported"))?;
    let field = |name: &str| {
        fields
            .split(',')
            .map(str::trim)
            .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_owned)
    };
    let (access_key_id, scope, date, region, service) = field("Credential")
        .as_deref()
        .and_then(parse_credential)
        .ok_or_else(malformed)?;
    let signed_headers = field("SignedHeaders").ok_or_else(malformed)?;
    let signature = field("Signature").ok_or_else(malformed)?;
    let amz_date = headers
        .get("x-amz-date")
        .and_then(|d| d.to_str().ok())
        .ok_or_else(|| S3Error::access_denied("The request has no x-amz-date header"))?
        .to_owned();
    let signed_at = parse_amz_date(&amz_date).ok_or_else(malformed)?;
    let skew = (Utc::now() - signed_at).abs();
    if skew.to_std().unwrap_or(Duration::MAX) > MAX_CLOCK_SKEW {
        return Err(S3Error::new(
            StatusCode::FORBIDDEN,
            "RequestTimeTooSkewed",
            "The difference between the request time and the current time is too large.",
        ));
    }
    let payload_hash = headers
        .get("x-amz-content-sha256")
        .and_then(|h| h.to_str().ok())
        .ok_or_else(|| {
            S3Error::new(
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                "Missing required header for this request: x-amz-content-sha256",
            )
        })?
        .to_owned();
    let is_hash = payload_hash.len() == 64 && payload_hash.bytes().all(|b| b.is_ascii_hexdigit());
    if is_hash && payload_hash != sha256_hex(body) {
        return Err(S3Error::new(
            StatusCode::BAD_REQUEST,
            "XAmzContentSHA256Mismatch",
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        ));
    }
    Ok((
        Claim {
            access_key_id,
            scope,
            date,
            region,
            service,
            amz_date,
            signed_headers: signed_headers.split(';').map(str::to_owned).collect(),
            signature,
        },
        payload_hash,
    ))
}

/// The claim of a presigned URL's `X-Amz-*` query; refused once expired.
fn presigned_claim(
    query: &[(String, String)],
    now: DateTime<Utc>,
) -> Result<(Claim, String), S3Error> {
    let required = |name: &str| {
        query_value(query, name).ok_or_else(|| {
            S3Error::access_denied(format!(
                "Query-string authentication requires the {name} parameter"
            ))
        })
    };
    if required("X-Amz-Algorithm")? != ALGORITHM {
        return Err(S3Error::access_denied(
            "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"",
        ));
    }
    let (access_key_id, scope, date, region, service) =
        parse_credential(required("X-Amz-Credential")?)
            .ok_or_else(|| S3Error::access_denied("X-Amz-Credential is malformed"))?;
    let amz_date = required("X-Amz-Date")?.to_owned();
    let expires: u64 = required("X-Amz-Expires")?
        .parse()
        .ok()
        .filter(|s| (1..=MAX_PRESIGNED_SECONDS).contains(s))
        .ok_or_else(|| S3Error::access_denied("X-Amz-Expires must be 1 to 604800 seconds"))?;
    let signed_at = parse_amz_date(&amz_date)
        .ok_or_else(|| S3Error::access_denied("X-Amz-Date is malformed"))?;
    if now > signed_at + chrono::Duration::seconds(expires as i64) {
        return Err(S3Error::access_denied("Request has expired"));
    }
    if signed_at - now > chrono::Duration::from_std(MAX_CLOCK_SKEW).unwrap_or_default() {
        return Err(S3Error::access_denied("Request is not valid yet"));
    }
    Ok((
        Claim {
            access_key_id,
            scope,
            date,
            region,
            service,
            amz_date,
            signed_headers: required("X-Amz-SignedHeaders")?
                .split(';')
                .map(str::to_owned)
                .collect(),
            signature: required("X-Amz-Signature")?.to_owned(),
        },
        UNSIGNED_PAYLOAD.to_owned(),
    ))
}

fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// XML text with its five entities and character references resolved.
fn unescape(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let end = rest[at..].find(';')? + at;
        let entity = &rest[at + 1..end];
        let c = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = match entity.strip_prefix("#x") {
                    Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                    None => entity.strip_prefix('#')?.parse().ok()?,
                };
                char::from_u32(code)?
            }
        };
        out.push(c);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_as_s3_allows_them() {
        assert!(valid_bucket_name("livestream-recordings"));
        assert!(!valid_bucket_name("ab"));
        assert!(!valid_bucket_name("Upper"));
        assert!(!valid_bucket_name("a..b"));
        assert!(!valid_bucket_name("-ab"));
    }

    #[test]
    fn keys_stay_inside_their_bucket() {
        let root = Path::new("/b");
        assert_eq!(
            object_path(root, "a/b.m3u8"),
            Some(PathBuf::from("/b/a/b.m3u8"))
        );
        for bad in ["", "../x", "a/../../x", "/etc/passwd", "a//b", "a/", "./a"] {
            assert_eq!(object_path(root, bad), None, "{bad}");
        }
    }

    #[test]
    fn ranges_as_http_defines_them() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=50-500", 100), Some((50, 99)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=9-1", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }

    #[test]
    fn reads_a_delete_document() {
        let xml = "<?xml version=\"1.0\"?><Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                   <Object><Key>a/1.m4s</Key></Object><Object><Key>b&amp;c</Key></Object>\
                   <Quiet>true</Quiet></Delete>";
        assert_eq!(
            parse_delete(xml),
            Some((vec!["a/1.m4s".to_owned(), "b&c".to_owned()], true))
        );
        assert_eq!(parse_delete("<Other/>"), None);
        assert_eq!(unescape("x&#65;&#x42;"), Some("xAB".to_owned()));
    }
}
