//! The body of a unary answer sent as bytes already encoded (`crate::cache::PreEncoded`): one
//! gRPC message (the 5-byte prefix: not compressed, length; then the bytes) and trailers with
//! `grpc-status: 0`, as tonic sends an answer it encoded itself.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use http_body::{Body as HttpBody, Frame, SizeHint};

/// One message, then the OK trailers.
pub(super) struct EncodedAnswer {
    prefix: Option<Bytes>,
    message: Option<Bytes>,
    trailers: bool,
}

impl EncodedAnswer {
    /// The body carrying `message` (a protobuf encoding); `None` for a message over the 4 GiB
    /// gRPC's length prefix can tell, which no cached answer is.
    pub(super) fn new(message: Bytes) -> Option<Self> {
        let length = u32::try_from(message.len()).ok()?;
        let mut prefix = Vec::with_capacity(5);
        prefix.push(0);
        prefix.extend_from_slice(&length.to_be_bytes());
        Some(Self {
            prefix: Some(Bytes::from(prefix)),
            message: Some(message),
            trailers: true,
        })
    }
}

impl HttpBody for EncodedAnswer {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(prefix) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        if let Some(message) = self.message.take() {
            return Poll::Ready(Some(Ok(Frame::data(message))));
        }
        if std::mem::take(&mut self.trailers) {
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", HeaderValue::from_static("0"));
            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.message.is_none() && !self.trailers
    }

    /// Unknown, as tonic's own bodies: an exact size would become a `content-length`, and
    /// gRPC-web turns the trailers into body bytes after it (HTTP/1.1 would cut them off).
    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use prost::Message;

    use super::*;

    #[tokio::test]
    async fn the_body_is_one_grpc_message_then_ok_trailers() {
        let message = prost_types::Timestamp {
            seconds: 1_764_547_200,
            nanos: 5,
        };
        let encoded = Bytes::from(message.encode_to_vec());
        let collected = EncodedAnswer::new(encoded.clone())
            .expect("small")
            .collect()
            .await
            .expect("infallible");
        let trailers = collected.trailers().cloned().expect("trailers");
        assert_eq!(
            trailers.get("grpc-status"),
            Some(&HeaderValue::from_static("0"))
        );
        let body = collected.to_bytes();
        assert_eq!(body[0], 0, "not compressed");
        assert_eq!(
            u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize,
            encoded.len()
        );
        let decoded = prost_types::Timestamp::decode(&body[5..]).expect("a message");
        assert_eq!(decoded, message);
    }
}
