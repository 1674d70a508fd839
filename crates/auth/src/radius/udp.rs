//! A small tokio shell around [`RadiusClient`]: one task owns the UDP socket and the core;
//! callers send requests through a bounded channel and await the verdict.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::client::{DigestRequest, RadiusClient, RadiusConfig, RadiusError, Stats, Verdict};

/// Requests waiting for the task, beyond which callers wait (backpressure, not memory).
const QUEUE: usize = 256;

enum Cmd {
    Verify(
        Box<DigestRequest>,
        oneshot::Sender<Result<Verdict, RadiusError>>,
    ),
    Stats(oneshot::Sender<Stats>),
}

/// A cloneable handle to the RADIUS task. The task ends when every handle is dropped.
#[derive(Clone, Debug)]
pub struct RadiusHandle {
    tx: mpsc::Sender<Cmd>,
}

impl RadiusHandle {
    /// Starts the task with a socket bound to `bind` (port 0 for any). `seed` must be random
    /// (see [`RadiusClient::new`]).
    pub async fn spawn(
        config: RadiusConfig,
        bind: SocketAddr,
        seed: [u8; 32],
    ) -> io::Result<(RadiusHandle, JoinHandle<()>)> {
        let socket = UdpSocket::bind(bind).await?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(run(RadiusClient::new(config, seed), socket, rx));
        Ok((RadiusHandle { tx }, task))
    }

    /// Sends an Access-Request and waits for its verdict (retransmissions and failover
    /// included).
    pub async fn verify(&self, request: DigestRequest) -> Result<Verdict, RadiusError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Verify(Box::new(request), tx))
            .await
            .map_err(|_| RadiusError::Timeout)?;
        rx.await.unwrap_or(Err(RadiusError::Timeout))
    }

    /// The core's counters.
    pub async fn stats(&self) -> Option<Stats> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Cmd::Stats(tx)).await.ok()?;
        rx.await.ok()
    }
}

async fn run(mut core: RadiusClient, socket: UdpSocket, mut rx: mpsc::Receiver<Cmd>) {
    let mut waiting: HashMap<u64, oneshot::Sender<Result<Verdict, RadiusError>>> = HashMap::new();
    let mut next_token: u64 = 0;
    let mut buf = vec![0u8; super::codec::MAX_PACKET];
    loop {
        let deadline = core.poll_timeout();
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            cmd = rx.recv() => match cmd {
                None => return,
                Some(Cmd::Stats(tx)) => {
                    let _ = tx.send(core.stats());
                }
                Some(Cmd::Verify(req, tx)) => {
                    next_token += 1;
                    match core.send_digest(next_token, &req, Instant::now()) {
                        Ok(()) => {
                            waiting.insert(next_token, tx);
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                }
            },
            r = socket.recv_from(&mut buf) => {
                // Errors (an ICMP unreachable reported on the socket) are not fatal: the
                // request they concern times out and fails over.
                if let Ok((n, from)) = r {
                    core.handle_datagram(from, buf.get(..n).unwrap_or(&[]));
                }
            }
            () = sleep => core.handle_timeout(Instant::now()),
        }
        while let Some(t) = core.poll_transmit() {
            let _ = socket.send_to(&t.payload, t.destination).await;
        }
        while let Some(e) = core.poll_event() {
            if let Some(tx) = waiting.remove(&e.token) {
                let _ = tx.send(e.result);
            }
        }
    }
}
