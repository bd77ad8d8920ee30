//! The handshake: the first frame each side sends on a new connection,
//! naming the node and its channels.
//!
//! Both sides send their [`Handshake`] at once and wait for the peer's,
//! until the connection's handshake deadline (TLS and this frame together
//! take at most
//! [`NodeConfig::handshake_timeout`](super::NodeConfig::handshake_timeout)).
//! The frame may be at most
//! [`NetLimits::handshake_frame_max`](super::NetLimits::handshake_frame_max)
//! bytes: a longer one is refused from its length prefix, before it is
//! buffered. The connection is refused when the first frame is not a
//! handshake, the magic is wrong, the peer is this node, or the channel
//! lists differ.
//!
//! The node id in the frame decides nothing under TLS: it must repeat the
//! one the peer's certificate names (`cert_id`), and a dialer checks it is
//! the node it dialed. Only in insecure plaintext is the frame's id taken
//! as it is (checked against the member list when one is configured).

use accordant::codec::SeqVec;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{timeout_at, Instant};

use super::conn::{ConnEnv, Role};
use super::error::NetError;
use super::shared::BufferCharge;
use super::wire::{read_handshake, Frame, Handshake, MAGIC};
use crate::error::SyncError;
use crate::peer::PeerId;
use crate::wire::FrameReader;

#[allow(clippy::too_many_arguments)]
pub(crate) async fn handshake<R, W>(
    env: &ConnEnv,
    rd: &mut R,
    wr: &mut W,
    reader: &mut FrameReader,
    charge: &mut BufferCharge,
    role: Role,
    cert_id: Option<u64>,
    deadline: Instant,
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
    let max = cfg.limits.handshake_frame_max;
    let exchange = async {
        wr.write_all(&mine).await?;
        wr.flush().await?;
        env.shared.counters.bytes_sent.add(mine.len() as u64);
        let mut buf = [0u8; 4096];
        loop {
            if let Some(h) = read_handshake(reader, max).map_err(|e| match e {
                SyncError::TooLarge { .. } => NetError::Handshake("handshake frame over the limit"),
                SyncError::Unexpected(_) => {
                    NetError::Handshake("the first frame is not a handshake")
                }
                e => NetError::Protocol(e),
            })? {
                return Ok::<Handshake, NetError>(h);
            }
            let n = rd.read(&mut buf).await?;
            if n == 0 {
                return Err(NetError::Closed);
            }
            env.shared.counters.bytes_received.add(n as u64);
            reader.push(&buf[..n]);
            charge.set(reader.buffered())?;
        }
    };
    let frame = timeout_at(deadline, exchange)
        .await
        .map_err(|_| NetError::Timeout("handshake"))??;
    let h = frame;
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
    if cert_id.is_some_and(|id| id != h.node) {
        return Err(NetError::Identity(
            "the handshake names another node than the certificate",
        ));
    }
    if let Role::Dial { expected } = role {
        if h.node != expected {
            return Err(NetError::Identity("the peer is not the node dialed"));
        }
    }
    if cert_id.is_none()
        && matches!(role, Role::Accept)
        && !cfg.members.is_empty()
        && !cfg.members.contains(&h.node)
    {
        return Err(NetError::Identity("the peer is not on the member list"));
    }
    Ok((PeerId(h.node), h.name))
}
