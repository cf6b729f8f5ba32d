//! SFTP v3 protocol adapter: the packet codec and the session that serves requests
//! through the shared layer.

pub mod codec;
pub mod session;

pub use session::{
    ChunkSource, InputFull, Limits, Replies, ReplySender, SessionError, replies, serve,
};
