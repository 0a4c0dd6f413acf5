//! Binary framing for object batches, so blobs travel without base64 or JSON overhead.
//!
//! Upload body: `header length (u32 BE) || header (JSON UploadHeader) || blob bytes`, the blobs
//! concatenated in header order. Fetch response: for each requested id in order,
//! `length (u32 BE) || blob`.

use bytes::{Buf, BytesMut};

use super::types::UploadHeader;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("batch body is truncated")]
    Truncated,
    #[error("batch header is not valid JSON: {0}")]
    Header(String),
    #[error("batch declares {declared} bytes of objects but carries {actual}")]
    LengthMismatch { declared: u64, actual: u64 },
}

pub fn encode_upload(header: &UploadHeader, blobs: &[Vec<u8>]) -> Vec<u8> {
    let header = serde_json::to_vec(header).expect("header serialises");
    let total: usize = blobs.iter().map(Vec::len).sum();
    let mut out = Vec::with_capacity(4 + header.len() + total);
    out.extend_from_slice(&(header.len() as u32).to_be_bytes());
    out.extend_from_slice(&header);
    for blob in blobs {
        out.extend_from_slice(blob);
    }
    out
}

/// Splits an upload body into its header and one slice per declared object.
pub fn decode_upload(body: &[u8]) -> Result<(UploadHeader, Vec<&[u8]>), FrameError> {
    let (len, rest) = split_u32(body)?;
    if rest.len() < len as usize {
        return Err(FrameError::Truncated);
    }
    let (header_bytes, mut data) = rest.split_at(len as usize);
    let header: UploadHeader =
        serde_json::from_slice(header_bytes).map_err(|e| FrameError::Header(e.to_string()))?;
    let declared: u64 = header.objects.iter().map(|o| u64::from(o.len)).sum();
    if declared != data.len() as u64 {
        return Err(FrameError::LengthMismatch {
            declared,
            actual: data.len() as u64,
        });
    }
    let mut blobs = Vec::with_capacity(header.objects.len());
    for object in &header.objects {
        let (blob, rest) = data.split_at(object.len as usize);
        blobs.push(blob);
        data = rest;
    }
    Ok((header, blobs))
}

pub fn encode_frames<'a>(blobs: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for blob in blobs {
        out.extend_from_slice(&(blob.len() as u32).to_be_bytes());
        out.extend_from_slice(blob);
    }
    out
}

pub fn decode_frames(mut body: &[u8]) -> Result<Vec<&[u8]>, FrameError> {
    let mut blobs = Vec::new();
    while !body.is_empty() {
        let (len, rest) = split_u32(body)?;
        if rest.len() < len as usize {
            return Err(FrameError::Truncated);
        }
        let (blob, rest) = rest.split_at(len as usize);
        blobs.push(blob);
        body = rest;
    }
    Ok(blobs)
}

/// [`decode_frames`] of a body the caller owns: each blob becomes its own mutable part of
/// the body's buffer, with nothing copied.
pub fn split_frames(mut body: BytesMut) -> Result<Vec<BytesMut>, FrameError> {
    let mut blobs = Vec::new();
    while !body.is_empty() {
        let (len, rest) = split_u32(&body)?;
        if rest.len() < len as usize {
            return Err(FrameError::Truncated);
        }
        body.advance(4);
        blobs.push(body.split_to(len as usize));
    }
    Ok(blobs)
}

fn split_u32(body: &[u8]) -> Result<(u32, &[u8]), FrameError> {
    if body.len() < 4 {
        return Err(FrameError::Truncated);
    }
    let (len, rest) = body.split_at(4);
    Ok((
        u32::from_be_bytes(len.try_into().expect("four bytes")),
        rest,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::types::UploadObject;
    use crate::crypto::{BlobKind, ObjectId};

    #[test]
    fn upload_round_trip_and_errors() {
        let objects = [b"abc".to_vec(), b"".to_vec(), b"defgh".to_vec()];
        let header = UploadHeader {
            objects: objects
                .iter()
                .enumerate()
                .map(|(i, o)| UploadObject {
                    id: ObjectId::from_bytes([i as u8; 32]),
                    kind: BlobKind::Chunk,
                    len: o.len() as u32,
                    refs: vec![],
                    snapshot: None,
                })
                .collect(),
        };
        let body = encode_upload(&header, &objects);
        let (decoded, blobs) = decode_upload(&body).unwrap();
        assert_eq!(decoded.objects.len(), 3);
        assert_eq!(blobs, vec![&b"abc"[..], b"", b"defgh"]);
        assert!(matches!(
            decode_upload(&body[..body.len() - 1]),
            Err(FrameError::LengthMismatch { .. })
        ));
        assert!(decode_upload(&[0, 0]).is_err());
        assert!(decode_upload(&[0, 0, 0, 2, b'{', b'x']).is_err());
    }

    #[test]
    fn frames_round_trip() {
        let body = encode_frames([&b"one"[..], b"", b"three"]);
        assert_eq!(
            decode_frames(&body).unwrap(),
            vec![&b"one"[..], b"", b"three"]
        );
        assert!(decode_frames(&body[..body.len() - 1]).is_err());
        let owned = split_frames(BytesMut::from(&body[..])).unwrap();
        assert_eq!(owned, vec![&b"one"[..], b"", b"three"]);
        assert!(split_frames(BytesMut::from(&body[..body.len() - 1])).is_err());
        assert!(split_frames(BytesMut::from(&[0u8, 0][..])).is_err());
    }
}
