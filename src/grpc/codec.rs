//! The protobuf codec of every callguard service and client: prost, with
//! 1 KiB buffers. tonic allocates a codec buffer per direction for every
//! stream, eagerly, 8 KiB by default; a call stream carries ~100-byte events
//! and ~1 KiB alerts, and 20,000 open calls would hold 320 MiB of buffers.
//! A larger message grows the buffer in 1 KiB steps.

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstDecoder, ProstEncoder};

/// Initial codec buffer per stream and direction.
const BUFFER_BYTES: usize = 1024;
/// tonic's default: encoded bytes gathered before the encoder yields.
const YIELD_THRESHOLD: usize = 32 * 1024;

/// `tonic_prost::ProstCodec` with small per-stream buffers.
#[derive(Debug, Clone, Copy)]
pub struct CompactCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for CompactCodec<T, U> {
    fn default() -> Self {
        CompactCodec(PhantomData)
    }
}

impl<T, U> Codec for CompactCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::new(BUFFER_BYTES, YIELD_THRESHOLD))
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::new(BufferSettings::new(BUFFER_BYTES, YIELD_THRESHOLD))
    }
}
