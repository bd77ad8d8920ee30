//! The handshake: the first frame each side sends on a new connection,
//! naming the node and its channels.
//!
//! Both sides send their [`Handshake`] at once and wait (up to
//! [`NodeConfig::handshake_timeout`](super::NodeConfig::handshake_timeout))
//! for the peer's. The connection is refused when the first frame is not a
//! handshake, the magic is wrong, the peer is this node, or the channel
//! lists differ.

use accordant::codec::SeqVec;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

use super::conn::{frame_limit, ConnEnv};
use super::error::NetError;
use super::wire::{Frame, Handshake, MAGIC};
use crate::peer::PeerId;
use crate::wire::FrameReader;

pub(crate) async fn handshake<R, W>(
    env: &ConnEnv,
    rd: &mut R,
    wr: &mut W,
    reader: &mut FrameReader,
) -> Result<(PeerId, String), NetError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let cfg = &env.shared.config;
    let names: Vec<String> = env.channels.iter().map(|c| c.name().to_string()).collect();
    let mine = Frame::Handshake(Handshake {
        magic: MAGIC,
        node: cfg.id,
        name: cfg.name.clone(),
        channels: SeqVec(names.clone()),
    })
    .to_wire();
    let max = frame_limit(env);
    let exchange = async {
        wr.write_all(&mine).await?;
        wr.flush().await?;
        env.shared.counters.bytes_sent.add(mine.len() as u64);
        let mut buf = [0u8; 4096];
        loop {
            if let Some(f) = Frame::next(reader, max)? {
                return Ok::<Frame, NetError>(f);
            }
            let n = rd.read(&mut buf).await?;
            if n == 0 {
                return Err(NetError::Closed);
            }
            env.shared.counters.bytes_received.add(n as u64);
            reader.push(&buf[..n]);
        }
    };
    let frame = timeout(cfg.handshake_timeout, exchange)
        .await
        .map_err(|_| NetError::Timeout("handshake"))??;
    let Frame::Handshake(h) = frame else {
        return Err(NetError::Handshake("the first frame is not a handshake"));
    };
    if h.magic != MAGIC {
        return Err(NetError::Handshake("bad magic"));
    }
    if h.node == cfg.id {
        return Err(NetError::Handshake("connected to itself"));
    }
    if h.channels.0 != names {
        return Err(NetError::Handshake("the peer's channels differ from ours"));
    }
    if h.name.len() > 256 {
        return Err(NetError::Handshake("name too long"));
    }
    Ok((PeerId(h.node), h.name))
}
