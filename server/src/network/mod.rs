//! Sockets: one listener per shard on the same port (SO_REUSEPORT, the kernel spreads
//! connections), and per connection a reader that decodes and dispatches requests in order and
//! a writer that sends responses in request order while later requests are already in work.

mod connection;
mod listener;
mod response;

pub use connection::serve_connection;
pub use listener::{bind_reuseport, run_listener};
pub use response::{Chunk, Response};
