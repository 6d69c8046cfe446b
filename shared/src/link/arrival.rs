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
//! the first reads after may be unstamped too.) Datagrams that come faster than their
//! reader reads them wait in their socket's receive buffer, which is asked for as large
//! as its many senders need ([`bind_with_receive_buffer`]).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
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

/// A UDP socket bound to `addr`, its receive buffer as large as the host lets it be up to
/// `receive_buffer` bytes, and how large that is: where datagrams wait while their
/// reader is busy elsewhere, and past which the kernel drops them. Asked for, not
/// promised: Linux caps it (`net.core.rmem_max`), and hosts that refuse more than their
/// cap leave the socket its own. A reactor must be running (a tokio runtime's).
pub fn bind_with_receive_buffer(addr: SocketAddr, receive_buffer: usize) -> io::Result<(UdpSocket, usize)> {
    let (socket, buffer) = bind_unwatched(addr, receive_buffer)?;
    Ok((UdpSocket::from_std(socket)?, buffer))
}

/// As [`bind_with_receive_buffer`], but a socket no reactor watches: non-blocking, for
/// a [`DatagramDrain`] to read when its reader chooses.
pub fn bind_unwatched(addr: SocketAddr, receive_buffer: usize) -> io::Result<(std::net::UdpSocket, usize)> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Err(error) = socket.set_recv_buffer_size(receive_buffer) {
        tracing::debug!("a datagram socket keeps its receive buffer: {error}");
    }
    let buffer = socket.recv_buffer_size()?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok((socket.into(), buffer))
}

/// A UDP socket no reactor watches, read when its reader chooses, as many datagrams
/// a system call as wait (`recvmmsg` on Linux): a proxy's, read on a beat while
/// datagrams come. A datagram arriving at a watched socket wakes its reader's thread if
/// it sleeps, each time, and on loopback the sender pays for that wake-up in its own
/// system call; one arriving here only waits in the receive buffer for the next read.
/// A reader that finds none waits for the next ([`DatagramDrain::arrival`]), the socket
/// watched only meanwhile.
#[derive(Debug)]
pub struct DatagramDrain {
    socket: Arc<std::net::UdpSocket>,
    #[cfg(target_os = "linux")]
    batch: stamped::Batch,
}

impl DatagramDrain {
    pub fn new(socket: Arc<std::net::UdpSocket>) -> Self {
        Self {
            socket,
            #[cfg(target_os = "linux")]
            batch: stamped::Batch::default(),
        }
    }

    /// Returns once a datagram waits (at once if one does), the socket watched by the
    /// runtime's reactor until then only (one must be running); elsewhere than on Unix,
    /// after `or_after`.
    pub async fn arrival(&mut self, or_after: std::time::Duration) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        if self.batch.holds() {
            return Ok(());
        }
        #[cfg(unix)]
        {
            let _ = or_after;
            let (watched, interest) = (Watched(self.socket.clone()), tokio::io::Interest::READABLE);
            // SAFETY: `watched` holds the socket, so its descriptor stays open, and the
            // same, for as long as the `AsyncFd` that owns it lives.
            let watched = unsafe { tokio::io::unix::AsyncFd::register_with_interest(watched, interest)? };
            watched.readable().await.map(drop)
        }
        #[cfg(not(unix))]
        {
            tokio::time::sleep(or_after).await;
            Ok(())
        }
    }

    /// As many datagrams as wait now, up to one a room of `rooms`, each into its room
    /// (cut to it), what each was in `got`, in order; how many (none if none waits).
    pub fn drain(&mut self, rooms: &mut [&mut [u8]], got: &mut [Received]) -> io::Result<usize> {
        let (rooms, got) = as_many_as_both(rooms, got)?;
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            if self.batch.give_held(rooms, got) {
                return Ok(1);
            }
            match self.batch.receive(self.socket.as_raw_fd(), rooms, got) {
                Ok((read, _)) => Ok(read.min(rooms.len())),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => Ok(0),
                Err(error) => Err(error),
            }
        }
        #[cfg(not(target_os = "linux"))]
        receive_each(rooms, got, |room| self.socket.recv_from(room))
    }
}

/// A drain's socket, as the reactor watches it while the drain waits for a datagram:
/// dropped, the reactor lets go of it, and the socket stays open.
#[cfg(unix)]
struct Watched(Arc<std::net::UdpSocket>);

#[cfg(unix)]
impl std::os::fd::AsRawFd for Watched {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

/// A UDP socket whose datagrams the kernel stamps with when they arrived, where it can
/// (Linux): a player's end of its updates by datagram
/// ([`crate::protocol::datagram`]), which the bots' echoes are measured to as a link's.
/// On Linux it reads two at a time where two wait (`recvmmsg`), and so knows when none
/// is left: a receiver woken for each datagram then makes one system call for it, not
/// a second that finds the socket empty. Or a batch at a time ([`Self::recv_many`]).
/// The socket is shared with whoever sends from it.
#[derive(Debug)]
pub struct DatagramReceiver {
    socket: Arc<UdpSocket>,
    #[cfg(target_os = "linux")]
    batch: stamped::Batch,
}

/// One datagram received: how long it was (at most the room offered; a longer one is
/// cut to it), when it arrived, if the kernel said, and where it came from, if it said.
#[derive(Debug, Clone, Copy, Default)]
pub struct Received {
    pub len: usize,
    pub arrived: Option<Instant>,
    pub from: Option<SocketAddr>,
}

impl DatagramReceiver {
    /// Receives on `socket`, stamped where the kernel can.
    pub fn new(socket: impl Into<Arc<UdpSocket>>) -> Self {
        let socket = socket.into();
        #[cfg(target_os = "linux")]
        if let Err(error) = stamped::stamp_on(&*socket) {
            tracing::debug!("datagrams are not stamped: {error}");
        }
        Self {
            socket,
            #[cfg(target_os = "linux")]
            batch: stamped::Batch::default(),
        }
    }

    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    /// The next datagram, into `into`.
    pub async fn recv(&mut self, into: &mut [u8]) -> io::Result<Received> {
        #[cfg(target_os = "linux")]
        if let Some(held) = self.batch.take_held(into) {
            return Ok(held);
        }
        let mut got = [Received::default()];
        self.recv_into(&mut [into], &mut got).await?;
        Ok(got[0])
    }

    /// As many datagrams as wait, up to one a room of `rooms`, each into its room (cut to
    /// it), what each was in `got`, in order; waits for one at least, and says how many.
    /// One system call for them all on Linux (`recvmmsg`): a socket many players share
    /// (a swarm's, `tessera_player::datagram_hub`) is read a batch a wake-up.
    pub async fn recv_many(&mut self, rooms: &mut [&mut [u8]], got: &mut [Received]) -> io::Result<usize> {
        let (rooms, got) = as_many_as_both(rooms, got)?;
        #[cfg(target_os = "linux")]
        if self.batch.give_held(rooms, got) {
            return Ok(1);
        }
        self.recv_into(rooms, got).await
    }

    #[cfg(target_os = "linux")]
    async fn recv_into(&mut self, rooms: &mut [&mut [u8]], got: &mut [Received]) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        let fd = self.socket.as_raw_fd();
        loop {
            self.socket.readable().await?;
            let mut drained = None;
            let read = self.socket.try_io(tokio::io::Interest::READABLE, || {
                let (read, room) = self.batch.receive(fd, rooms, got)?;
                if read < room {
                    // Fewer than there was room for: the socket is empty. Said as "would
                    // block" so that tokio clears its readiness now, rather than after a
                    // call that finds nothing, as the links' reads do
                    // (`stamped::Stamps::poll_read`).
                    drained = Some(read);
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok(read)
            });
            match (read, drained) {
                (_, Some(read)) | (Ok(read), None) => return Ok(read.min(rooms.len())),
                (Err(error), None) if error.kind() == io::ErrorKind::WouldBlock => continue,
                (Err(error), None) => return Err(error),
            }
        }
    }

    #[cfg(not(target_os = "linux"))]
    async fn recv_into(&mut self, rooms: &mut [&mut [u8]], got: &mut [Received]) -> io::Result<usize> {
        loop {
            self.socket.readable().await?;
            let read = receive_each(rooms, got, |room| self.socket.try_recv_from(room))?;
            if read > 0 {
                return Ok(read);
            }
        }
    }
}

/// `rooms` and `got` cut to as many as both have, or an error if that is none.
fn as_many_as_both<'a, 'b>(
    rooms: &'a mut [&'b mut [u8]],
    got: &'a mut [Received],
) -> io::Result<(&'a mut [&'b mut [u8]], &'a mut [Received])> {
    let most = got.len().min(rooms.len());
    if most == 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no room to receive into"));
    }
    Ok((&mut rooms[..most], &mut got[..most]))
}

/// Receives a datagram a call of `receive_from` into each of `rooms` until none waits,
/// what each was in `got`: how many (none if none waited). An error past the first
/// datagram ends the batch, and is said by the next call.
#[cfg(not(target_os = "linux"))]
fn receive_each(
    rooms: &mut [&mut [u8]],
    got: &mut [Received],
    mut receive_from: impl FnMut(&mut [u8]) -> io::Result<(usize, SocketAddr)>,
) -> io::Result<usize> {
    let mut read = 0;
    for (room, got) in rooms.iter_mut().zip(got.iter_mut()) {
        match receive_from(room) {
            Ok((len, from)) => *got = Received { len, arrived: None, from: Some(from) },
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
            Err(error) if read == 0 => return Err(error),
            Err(_) => break,
        }
        read += 1;
    }
    Ok(read)
}

#[cfg(target_os = "linux")]
mod stamped {
    use nix::sys::socket::{
        ControlMessageOwned, MsgFlags, MultiHeaders, MultiResults, RecvMsg, SockaddrLike, SockaddrStorage, recvmmsg,
        recvmsg, setsockopt, sockopt,
    };
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
        Ok(Received { bytes: message.bytes, stamp: stamp_of(&message) })
    }

    /// When what `message` read arrived, as the kernel stamped it. A control message
    /// cut short leaves the read unstamped, not lost.
    fn stamp_of<S>(message: &RecvMsg<'_, '_, S>) -> Option<Instant> {
        message.cmsgs().ok()?.find_map(|control| match control {
            ControlMessageOwned::ScmTimestampns(at) => Some(instant_of(at)),
            _ => None,
        })
    }

    /// The control-message room for one stamp.
    pub(super) fn stamp_room() -> Vec<u8> {
        nix::cmsg_space!(TimeSpec)
    }

    /// A receive of as many datagrams as there are rooms, one system call for them all,
    /// and a room of its own for a second where a receive offers one: a player woken
    /// for each datagram then makes one system call for it, and knows that none is left
    /// if it reads one, not a second call that finds the socket empty. What it reads
    /// there is held until it is asked for.
    #[derive(Debug, Default)]
    pub(super) struct Batch {
        second: Vec<u8>,
        held: Option<super::Received>,
    }

    impl Batch {
        /// Whether a datagram read second last time waits to be asked for.
        pub(super) fn holds(&self) -> bool {
            self.held.is_some()
        }

        /// Gives the datagram read second last time, if one was, into the first of
        /// `rooms` (cut to it), what it was into the first of `got`: whether it did.
        pub(super) fn give_held(&mut self, rooms: &mut [&mut [u8]], got: &mut [super::Received]) -> bool {
            match (rooms.first_mut(), got.first_mut()) {
                (Some(room), Some(got)) => self.take_held(room).map(|held| *got = held).is_some(),
                _ => false,
            }
        }

        /// The datagram read second last time, into `into` (cut to it), if one was.
        pub(super) fn take_held(&mut self, into: &mut [u8]) -> Option<super::Received> {
            let held = self.held.take()?;
            let len = held.len.min(into.len());
            into[..len].copy_from_slice(&self.second[..len]);
            Some(super::Received { len, ..held })
        }

        /// One `recvmmsg` from `socket` of as many datagrams as wait, up to one a room of
        /// `rooms`, and a second where `rooms` is one (held, as large as it, so both are
        /// cut alike): what each in `rooms` was into `got`. How many it read, held one
        /// included, and how many it had room for: fewer read than that, and the socket
        /// is empty. None waiting is "would block".
        pub(super) fn receive(
            &mut self,
            socket: RawFd,
            rooms: &mut [&mut [u8]],
            got: &mut [super::Received],
        ) -> io::Result<(usize, usize)> {
            // The headers are made for each call: they point into the call's buffers,
            // and a player's connection moves between threads, which raw pointers may not.
            let (read, second) = match rooms {
                // A player's read, for each datagram: on the stack, as it was before
                // batches.
                [only] => {
                    self.second.resize(only.len(), 0);
                    let mut slices = [[IoSliceMut::new(only)], [IoSliceMut::new(&mut self.second)]];
                    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(slices.len(), Some(stamp_room()));
                    stamped(recvmmsg(socket, &mut headers, slices.iter_mut(), MsgFlags::MSG_DONTWAIT, None)?, got)
                }
                // A batch: `got` is as long as `rooms` (`recv_many`, `drain`), nothing
                // comes after.
                _ => {
                    let mut slices: Vec<[IoSliceMut; 1]> =
                        rooms.iter_mut().map(|room| [IoSliceMut::new(room)]).collect();
                    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(slices.len(), Some(stamp_room()));
                    let read = recvmmsg(socket, &mut headers, slices.iter_mut(), MsgFlags::MSG_DONTWAIT, None)?;
                    (stamped(read, got).0, None)
                }
            };
            let held = usize::from(second.is_some());
            self.held = second;
            // The kernel says "would block" itself when nothing waits.
            if read + held == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok((read + held, rooms.len() + usize::from(rooms.len() == 1)))
        }
    }

    /// What a `recvmmsg` read, each datagram with its stamp and sender: the first
    /// `got.len()` into `got`, how many, and the one after them, if one came.
    fn stamped(
        read: MultiResults<'_, SockaddrStorage>,
        got: &mut [super::Received],
    ) -> (usize, Option<super::Received>) {
        let mut read = read.map(|message| super::Received {
            len: message.bytes,
            arrived: stamp_of(&message),
            from: message.address.as_ref().and_then(socket_addr),
        });
        let mut count = 0;
        for (got, received) in got.iter_mut().zip(read.by_ref()) {
            *got = received;
            count += 1;
        }
        (count, read.next())
    }

    /// `address` as the standard library's, if it is an internet one.
    fn socket_addr(address: &SockaddrStorage) -> Option<std::net::SocketAddr> {
        match address.family()? {
            nix::sys::socket::AddressFamily::Inet => address.as_sockaddr_in().map(|v4| (*v4).into()),
            nix::sys::socket::AddressFamily::Inet6 => address.as_sockaddr_in6().map(|v6| (*v6).into()),
            _ => None,
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A receiver on loopback, and a socket sending to it.
    async fn receiver_and_sender() -> (DatagramReceiver, UdpSocket) {
        let (receiving, sending) =
            tokio::try_join!(UdpSocket::bind("127.0.0.1:0"), UdpSocket::bind("127.0.0.1:0")).unwrap();
        sending.connect(receiving.local_addr().unwrap()).await.unwrap();
        (DatagramReceiver::new(receiving), sending)
    }

    #[tokio::test]
    async fn datagrams_come_one_at_a_time_in_order_however_many_wait() {
        let (mut receiver, sending) = receiver_and_sender().await;
        let mut room = [0; 8];
        let mut next = async |room: &mut [u8]| {
            tokio::time::timeout(Duration::from_secs(10), receiver.recv(room)).await.expect("a datagram").unwrap()
        };
        // Five waiting (loopback delivers at once), read two at a time where two wait.
        for n in 0..5 {
            sending.send(&[n; 3]).await.unwrap();
        }
        for n in 0..5 {
            let got = next(&mut room).await;
            assert_eq!(room[..got.len], [n; 3], "datagram {n}, whole and in order");
        }
        // One at a time, as a player gets them.
        for n in 5..8 {
            sending.send(&[n; 2]).await.unwrap();
            let got = next(&mut room).await;
            assert_eq!(room[..got.len], [n; 2]);
        }
        // A longer one, held second, is cut to the room as the first would be.
        sending.send(&[1]).await.unwrap();
        sending.send(&[9; 20]).await.unwrap();
        assert_eq!(next(&mut room).await.len, 1);
        assert_eq!(next(&mut room).await.len, room.len());
        let waiting = tokio::time::timeout(Duration::from_millis(50), receiver.recv(&mut room)).await;
        assert!(waiting.is_err(), "nothing more: a receive waits");
    }

    #[tokio::test]
    async fn datagrams_come_a_batch_at_a_time_in_order() {
        let (mut receiver, sending) = receiver_and_sender().await;
        let mut rooms = [[0; 4]; 3];
        let mut got = [Received::default(); 3];
        for n in 0..5 {
            sending.send(&[n; 3]).await.unwrap();
        }
        sending.send(&[5; 9]).await.unwrap();
        let mut next = async |expected: &[Vec<u8>]| {
            let mut slices: Vec<&mut [u8]> = rooms.iter_mut().map(|room| &mut room[..]).collect();
            let read = tokio::time::timeout(Duration::from_secs(10), receiver.recv_many(&mut slices, &mut got))
                .await
                .expect("datagrams")
                .unwrap();
            let read: Vec<Vec<u8>> =
                got[..read].iter().zip(&slices).map(|(got, room)| room[..got.len].to_vec()).collect();
            assert_eq!(read, expected);
        };
        // Six waiting (loopback delivers at once): as many as there is room for, in
        // order, the last cut to its room.
        next(&[vec![0; 3], vec![1; 3], vec![2; 3]]).await;
        next(&[vec![3; 3], vec![4; 3], vec![5; 4]]).await;
        sending.send(&[6; 2]).await.unwrap();
        next(&[vec![6; 2]]).await;
        let nowhere = receiver.recv_many(&mut [], &mut got).await.unwrap_err();
        assert_eq!(nowhere.kind(), io::ErrorKind::InvalidInput, "no room, no wait");
    }

    /// A proxy's socket, read on its beat: what waits, a batch a call, and nothing (no
    /// wait) once none does; then its reader waits for the next.
    #[tokio::test]
    async fn a_drain_takes_what_waits_and_its_reader_waits_for_the_next() {
        let (socket, _) = bind_unwatched(SocketAddr::from(([127, 0, 0, 1], 0)), 1 << 16).unwrap();
        let sending = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        sending.connect(socket.local_addr().unwrap()).await.unwrap();
        let mut drain = DatagramDrain::new(Arc::new(socket));
        let mut rooms = [[0; 4]; 3];
        let mut got = [Received::default(); 3];
        let mut slices: Vec<&mut [u8]> = rooms.iter_mut().map(|room| &mut room[..]).collect();
        assert_eq!(drain.drain(&mut slices, &mut got).unwrap(), 0, "nothing waits yet");
        for n in 0..5 {
            sending.send(&[n; 3]).await.unwrap();
        }
        let mut read = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while read.len() < 5 && std::time::Instant::now() < deadline {
            let batch = drain.drain(&mut slices, &mut got).unwrap();
            assert!(batch <= 3, "a batch at most as large as its rooms");
            read.extend(got[..batch].iter().zip(&slices).map(|(got, room)| room[..got.len].to_vec()));
            assert_eq!(
                got[..batch].iter().map(|got| got.from).collect::<Vec<_>>(),
                vec![sending.local_addr().ok(); batch]
            );
            tokio::task::yield_now().await;
        }
        assert_eq!(read, (0..5).map(|n| vec![n; 3]).collect::<Vec<_>>(), "every datagram, whole and in order");
        assert_eq!(drain.drain(&mut slices, &mut got).unwrap(), 0, "none left");
        // Its reader, finding none, waits for the next: until one comes, and at once if
        // one waits.
        let beat = Duration::from_millis(2);
        let idle = tokio::time::timeout(Duration::from_millis(50), drain.arrival(beat)).await;
        // (Elsewhere than on Unix the wait is a beat's.)
        assert!(idle.is_err() || !cfg!(unix), "nothing came: the wait goes on");
        let (arrived, ()) = tokio::join!(tokio::time::timeout(Duration::from_secs(10), drain.arrival(beat)), async {
            sending.send(&[7]).await.unwrap();
        });
        arrived.expect("a datagram came").unwrap();
        tokio::time::timeout(Duration::from_secs(10), drain.arrival(beat)).await.expect("one waits").unwrap();
        assert_eq!(drain.drain(&mut slices, &mut got).unwrap(), 1);
    }

    /// Key presses from thousands of players while their proxy is busy elsewhere: a burst
    /// the default buffer (some 200 KB on Linux, a kilobyte or so a datagram) drops most of.
    #[tokio::test]
    async fn a_socket_with_a_large_receive_buffer_holds_a_burst_whole() {
        const ASKED: usize = 4 << 20;
        const BURST: usize = 2_000;
        let (socket, buffer) = bind_with_receive_buffer(SocketAddr::from(([127, 0, 0, 1], 0)), ASKED).unwrap();
        let plain = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let default = socket2::SockRef::from(&plain).recv_buffer_size().unwrap();
        assert!(buffer >= default, "never less than a socket's own: {buffer} < {default}");
        // Where the host lets a socket have what is asked (Linux: `net.core.rmem_max`), it
        // has it; where the host caps it lower, the burst is the kernel's to drop.
        let cap = std::fs::read_to_string("/proc/sys/net/core/rmem_max").ok();
        if cap.and_then(|cap| cap.trim().parse::<usize>().ok()).is_none_or(|cap| cap < ASKED) {
            return;
        }
        assert!(buffer >= ASKED, "{buffer} bytes, where {ASKED} were asked for and the host allows them");
        let sending = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        sending.connect(socket.local_addr().unwrap()).await.unwrap();
        for n in 0..BURST {
            sending.send(&(n as u64).to_le_bytes()).await.unwrap();
        }
        let mut receiver = DatagramReceiver::new(socket);
        let mut room = [0; 8];
        for n in 0..BURST {
            let got = tokio::time::timeout(Duration::from_secs(10), receiver.recv(&mut room)).await.unwrap().unwrap();
            assert_eq!(room[..got.len], (n as u64).to_le_bytes(), "every datagram of the burst, in order");
        }
    }
}
