//! `reprise-mock-upstream`: the OpenAI-format mock as a standalone server, for benchmarks and
//! manual testing. Prints `listening on http://ADDR/v1` once ready and serves until killed.

use std::net::SocketAddr;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => {
                let value = args.next().unwrap_or_default();
                listen = value.parse().map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("--listen: not a socket address: {value:?}"),
                    )
                })?;
            }
            "-h" | "--help" => {
                println!("usage: reprise-mock-upstream [--listen ADDR]");
                return Ok(());
            }
            other => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("unknown argument {other:?}"),
                ));
            }
        }
    }
    let mock = reprise_test_support::MockUpstream::builder()
        .record(false)
        .bind(listen)
        .await?;
    println!("listening on {}", mock.base_url());
    std::future::pending::<()>().await;
    Ok(())
}
