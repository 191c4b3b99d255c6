//! The protobuf codec of every generated service and client: tonic's prost codec, with smaller
//! starting buffers.
//!
//! Decisions:
//! - tonic gives each call an encode buffer and a decode buffer of 8 KiB up front, kept for the
//!   life of the call. A long-lived stream that carries small messages (an agent session: a
//!   hello, then a batch now and then) held 16 KiB for them. [`BUFFER_SIZE`] starts them at
//!   1 KiB; a larger message grows the buffer as before (by reserving what it needs, doubling),
//!   so large answers cost a few more reallocations and nothing else. Measured in
//!   docs/performance.md ("Live positions", idle sessions).

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstDecoder, ProstEncoder};

/// The starting size of a call's encode and decode buffers (bytes).
pub const BUFFER_SIZE: usize = 1024;
/// How much an encoder buffers before it hands bytes to the transport (tonic's default).
const YIELD_THRESHOLD: usize = 32 * 1024;

/// tonic's prost codec with [`BUFFER_SIZE`] buffers (the `codec_path` of `build.rs`).
#[derive(Debug, Clone)]
pub struct ProtoCodec<T, U> {
    _types: PhantomData<(T, U)>,
}

impl<T, U> Default for ProtoCodec<T, U> {
    fn default() -> Self {
        Self {
            _types: PhantomData,
        }
    }
}

fn buffers() -> BufferSettings {
    BufferSettings::new(BUFFER_SIZE, YIELD_THRESHOLD)
}

impl<T, U> Codec for ProtoCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(buffers())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::new(buffers())
    }
}
