//! A delay on every request to DynamoDB Local, as a longer network would add: what the benches
//! that measure round trips at production latency put between the worker and the server.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy to `upstream` on a port of its own that holds every chunk the client sends for
/// `delay` before passing it on: each request arrives `delay` later, as over a longer network.
pub async fn delaying_proxy(upstream: String, delay: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the proxy");
    let address = listener.local_addr().expect("the proxy's address");
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    return;
                };
                // Without it, Nagle's algorithm holds a small write until the one before is
                // acknowledged, which delayed acknowledgement can make ~40 ms: a delay of the
                // proxy's own, not of the network it stands for.
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                // Each chunk goes on `delay` after it arrived, whatever came before it: the
                // constant one-way delay of a longer network, not a delay per chunk in turn
                // (which would charge a large request once per chunk the client wrote).
                let (chunks, mut due_chunks) =
                    tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
                let read = async move {
                    let mut buffer = vec![0u8; 64 * 1024];
                    while let Ok(n) = client_read.read(&mut buffer).await {
                        if n == 0
                            || chunks
                                .send((tokio::time::Instant::now() + delay, buffer[..n].to_vec()))
                                .is_err()
                        {
                            break;
                        }
                    }
                };
                let requests = async {
                    while let Some((due, chunk)) = due_chunks.recv().await {
                        tokio::time::sleep_until(due).await;
                        if server_write.write_all(&chunk).await.is_err() {
                            break;
                        }
                    }
                    let _ = server_write.shutdown().await;
                };
                let responses = async {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                };
                tokio::join!(read, requests, responses);
            });
        }
    });
    format!("http://{address}")
}
