//! Sockets: one listener per shard on the same port (SO_REUSEPORT, the kernel spreads
//! connections), and per connection a reader that keeps reading requests into a bounded queue,
//! a dispatcher that dispatches them in order, and a writer that sends responses in request
//! order, gathered into vectored writes, while later requests are already in work.

mod connection;
mod gather;
mod idle;
mod limits;
mod listener;
mod request_queue;
mod response;

pub use connection::serve_connection;
pub use limits::{ConnectionLimits, ConnectionPermit, Refusal};
pub use listener::{bind_reuseport, run_listener};
pub use response::{Chunk, Response};
