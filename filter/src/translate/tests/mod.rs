//! Tests of the translation module: request rendering for both providers, whole-response and
//! error translation, the SSE splitter, and stream translation at every chunk split point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod request_tests;
mod response_tests;
mod stream_tests;
