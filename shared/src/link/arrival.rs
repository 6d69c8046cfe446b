//! When what a link reads arrived. A link reads its socket through an
//! [`ArrivalReader`], which, when asked to ([`ArrivalReader::stamp`]), has the kernel
//! stamp each read with when its last bytes reached the socket (`SO_TIMESTAMPNS`, on
//! Linux): for a frame read with others after it, at or after its arrival. A swarm's bots need it: a thousand bots share a thread, a frame can wait in
//! its socket while the thread reads the others that came in the same tick, and a
//! player's echo is measured to when its update reached the player's host, not to when
//! a shared thread got round to it (a player's client has its host to itself).
//! A player's updates by datagram are stamped alike ([`DatagramReceiver`]).
//! Elsewhere, and on a link not stamped, nothing is stamped and reads are plain. (The
//! kernel starts stamping for the whole host a moment after the first socket asks, so
//! the first reads after may be unstamped too.)

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::UdpSocket;
use tokio::net::tcp::OwnedReadHalf;

/// A link's socket, reading half (see the module).
#[derive(Debug)]
pub struct ArrivalReader {
    socket: OwnedReadHalf,
    #[cfg(target_os = "linux")]
    stamps: Option<stamped::Stamps>,
}

impl ArrivalReader {
    /// Reads `socket`, unstamped until [`ArrivalReader::stamp`].
    pub fn new(socket: OwnedReadHalf) -> Self {
        Self {
            socket,
            #[cfg(target_os = "linux")]
            stamps: None,
        }
    }

    /// Has the kernel stamp each read from now on, where it can (Linux); elsewhere, or
    /// should the socket refuse, reads stay unstamped.
    pub fn stamp(&mut self) {
        #[cfg(target_os = "linux")]
        match stamped::Stamps::on(&self.socket) {
            Ok(stamps) => self.stamps = Some(stamps),
            Err(error) => tracing::debug!("reads are not stamped: {error}"),
        }
    }

    /// When the last bytes read so far reached the socket, if reads are stamped and the
    /// last read was.
    pub fn last_arrival(&self) -> Option<Instant> {
        #[cfg(target_os = "linux")]
        return self.stamps.as_ref().and_then(|stamps| stamps.last);
        #[cfg(not(target_os = "linux"))]
        None
    }
}

impl AsyncRead for ArrivalReader {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        #[cfg(target_os = "linux")]
        if let Some(stamps) = &mut this.stamps {
            return stamps.poll_read(&this.socket, cx, buf);
        }
        Pin::new(&mut this.socket).poll_read(cx, buf)
    }
}

/// A UDP socket whose datagrams the kernel stamps with when they arrived, where it can
/// (Linux): a player's end of its updates by datagram
/// ([`crate::protocol::datagram`]), which the bots' echoes are measured to as a link's.
#[derive(Debug)]
pub struct DatagramReceiver {
    socket: UdpSocket,
    /// The control-message room for a stamp, once the socket stamps.
    #[cfg(target_os = "linux")]
    control: Option<Vec<u8>>,
}

/// One datagram received: how long it was (at most the room offered; a longer one is
/// cut to it), and when it arrived, if the kernel said.
#[derive(Debug, Clone, Copy)]
pub struct Received {
    pub len: usize,
    pub arrived: Option<Instant>,
}

impl DatagramReceiver {
    /// Receives on `socket`, stamped where the kernel can.
    pub fn new(socket: UdpSocket) -> Self {
        #[cfg(target_os = "linux")]
        let control = match stamped::stamp_on(&socket) {
            Ok(()) => Some(stamped::stamp_room()),
            Err(error) => {
                tracing::debug!("datagrams are not stamped: {error}");
                None
            }
        };
        Self {
            socket,
            #[cfg(target_os = "linux")]
            control,
        }
    }

    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    /// The next datagram, into `into`.
    pub async fn recv(&mut self, into: &mut [u8]) -> io::Result<Received> {
        #[cfg(target_os = "linux")]
        if let Some(control) = &mut self.control {
            use std::os::fd::AsRawFd;
            let fd = self.socket.as_raw_fd();
            let read =
                self.socket.async_io(tokio::io::Interest::READABLE, || stamped::receive(fd, into, control)).await?;
            return Ok(Received { len: read.bytes, arrived: read.stamp });
        }
        let len = self.socket.recv(into).await?;
        Ok(Received { len, arrived: None })
    }
}

#[cfg(target_os = "linux")]
mod stamped {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt};
    use nix::sys::time::TimeSpec;
    use std::io::{self, IoSliceMut};
    use std::os::fd::{AsRawFd, RawFd};
    use std::task::{Context, Poll, ready};
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
    use tokio::io::{Interest, ReadBuf};
    use tokio::net::tcp::OwnedReadHalf;

    /// The most one read takes: a tick's frame is a few hundred bytes, and each read
    /// zeroes the room it offers first.
    const MOST_A_READ: usize = 4096;

    /// A stamped socket's control-message room, and the last stamp read.
    #[derive(Debug)]
    pub(super) struct Stamps {
        control: Vec<u8>,
        pub(super) last: Option<Instant>,
    }

    impl Stamps {
        pub(super) fn on(socket: &OwnedReadHalf) -> io::Result<Self> {
            stamp_on(socket.as_ref())?;
            Ok(Self { control: stamp_room(), last: None })
        }

        pub(super) fn poll_read(
            &mut self,
            socket: &OwnedReadHalf,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let stream = socket.as_ref();
            if buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            loop {
                ready!(stream.poll_read_ready(cx))?;
                let room = buf.remaining().min(MOST_A_READ);
                let unfilled = buf.initialize_unfilled_to(room);
                let mut drained = None;
                let read = stream.try_io(Interest::READABLE, || {
                    let read = receive(stream.as_raw_fd(), unfilled, &mut self.control)?;
                    let read = (read.bytes, read.stamp);
                    if read.0 > 0 && read.0 < room {
                        // Less than there was room for: the socket is empty (TCP returns
                        // short only then). Said as "would block" so that tokio clears
                        // its readiness now, as its own reads do (`PollEvented::poll_read`),
                        // rather than after one more call finds nothing. Safe against a
                        // segment arriving meanwhile: tokio clears readiness only if no
                        // event came since it handed it out (its readiness tick), which
                        // `try_io`'s docs do not promise: check it again on a tokio upgrade.
                        drained = Some(read);
                        return Err(io::ErrorKind::WouldBlock.into());
                    }
                    Ok(read)
                });
                let (bytes, stamp) = match (read, drained) {
                    (_, Some(read)) | (Ok(read), None) => read,
                    (Err(error), None) if error.kind() == io::ErrorKind::WouldBlock => continue,
                    (Err(error), None) => return Poll::Ready(Err(error)),
                };
                buf.advance(bytes);
                if bytes > 0 {
                    // Unstamped, it arrived when it is read, as far as anyone can say.
                    self.last = stamp;
                }
                return Poll::Ready(Ok(()));
            }
        }
    }

    /// What one `recvmsg` read.
    pub(super) struct Received {
        pub(super) bytes: usize,
        /// When the last of it arrived, if the kernel said.
        pub(super) stamp: Option<Instant>,
    }

    /// One `recvmsg` from `socket` into `into`, with the kernel's stamp of when what it
    /// read arrived, read from `control`'s room.
    pub(super) fn receive(socket: RawFd, into: &mut [u8], control: &mut [u8]) -> io::Result<Received> {
        let mut iov = [IoSliceMut::new(into)];
        let message = recvmsg::<()>(socket, &mut iov, Some(control), MsgFlags::empty())?;
        // A control message cut short leaves the read unstamped, not lost.
        let stamp = message.cmsgs().ok().and_then(|mut controls| {
            controls.find_map(|control| match control {
                ControlMessageOwned::ScmTimestampns(at) => Some(instant_of(at)),
                _ => None,
            })
        });
        Ok(Received { bytes: message.bytes, stamp })
    }

    /// The control-message room for one stamp.
    pub(super) fn stamp_room() -> Vec<u8> {
        nix::cmsg_space!(TimeSpec)
    }

    /// Has the kernel stamp what `socket` receives.
    pub(super) fn stamp_on(socket: &impl std::os::fd::AsFd) -> io::Result<()> {
        Ok(setsockopt(socket, sockopt::ReceiveTimestampns, &true)?)
    }

    /// The instant a stamp of the host's clock stands for: as long before now as the
    /// stamp is before the host's clock now (never after now).
    fn instant_of(stamp: TimeSpec) -> Instant {
        let stamp = UNIX_EPOCH + Duration::from(stamp);
        let ago = SystemTime::now().duration_since(stamp).unwrap_or_default();
        let now = Instant::now();
        now.checked_sub(ago).unwrap_or(now)
    }
}
