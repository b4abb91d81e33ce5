//! The test harness: a gateway in-process on an ephemeral port (or the real binary as a child
//! process), pointed at a mock upstream.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reprise_gateway::config::{Config, Overrides};
use reprise_test_support::MockUpstream;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

/// The provider key every test gateway is configured with; no log line or response may show it.
pub const UPSTREAM_KEY: &str = "sk-test-UPSTREAM-SECRET-d41d8cd98f00";

/// How long any single wait in a test may take before the test fails (not a sleep).
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A gateway running in this process on an ephemeral loopback port.
pub struct Gateway {
    pub addr: SocketAddr,
    // Held so the server runs until the test drops the gateway.
    _shutdown: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _data_dir: tempfile::TempDir,
}

impl Gateway {
    /// A zero-config gateway (OPENAI_API_KEY + OPENAI_BASE_URL) in front of `mock`.
    pub async fn start(mock: &MockUpstream) -> Gateway {
        Self::with_config("", mock).await
    }

    /// A gateway configured by `toml`, with the `openai` target pointed at `mock`.
    pub async fn with_config(toml: &str, mock: &MockUpstream) -> Gateway {
        let base_url = mock.base_url();
        Self::with_env(
            toml,
            &[
                ("OPENAI_API_KEY", UPSTREAM_KEY),
                ("OPENAI_BASE_URL", &base_url),
            ],
        )
        .await
    }

    /// A gateway configured by `toml` and these environment variables only.
    pub async fn with_env(toml: &str, vars: &[(&str, &str)]) -> Gateway {
        Self::with_env_in(toml, vars, tempfile::tempdir().unwrap()).await
    }

    /// The same on a given data directory (keys created there beforehand, for instance).
    pub async fn with_env_in(
        toml: &str,
        vars: &[(&str, &str)],
        data_dir: tempfile::TempDir,
    ) -> Gateway {
        let mut vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        vars.entry("REPRISE_MODEL_DIR".to_owned())
            .or_insert_with(model_dir);
        let env = move |name: &str| vars.get(name).cloned();
        let overrides = Overrides {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            data_dir: Some(data_dir.path().to_path_buf()),
            ..Overrides::default()
        };
        let config = Config::from_toml(toml, &env, &overrides).unwrap();
        let state = reprise_gateway::server::build_state(config).await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(reprise_gateway::server::run(listener, state, async {
            let _ = rx.await;
        }));
        Gateway {
            addr,
            _shutdown: tx,
            task,
            _data_dir: data_dir,
        }
    }

    /// `http://ADDR/v1`, what an OpenAI SDK's base URL would be.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `GET path`.
    async fn get(&self, path: &str) -> reqwest::Response {
        client().get(self.url(path)).send().await.unwrap()
    }

    /// `GET path`, its body as JSON.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        self.get(path).await.json().await.unwrap()
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        client()
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// `POST path` with a JSON body, the answer as JSON.
    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> serde_json::Value {
        self.post(path, body).await.json().await.unwrap()
    }

    /// `GET path`, its body as text.
    pub async fn get_text(&self, path: &str) -> String {
        self.get(path).await.text().await.unwrap()
    }

    /// The data directory (its store).
    pub fn data_dir(&self) -> &std::path::Path {
        self._data_dir.path()
    }

    /// `POST /v1/chat/completions` with a JSON body.
    pub async fn chat(&self, body: &serde_json::Value) -> reqwest::Response {
        self.post("/v1/chat/completions", body).await
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The default embedding model, fetched by `scripts/fetch-model` (which `scripts/test` runs).
pub fn model_dir() -> String {
    format!("{}/../../models/potion-base-8M", env!("CARGO_MANIFEST_DIR"))
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().build().unwrap()
}

pub fn chat_body(content: &str) -> serde_json::Value {
    serde_json::json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": content}]
    })
}

pub fn stream_body(content: &str, include_usage: bool) -> serde_json::Value {
    let mut body = chat_body(content);
    body["stream"] = true.into();
    if include_usage {
        body["stream_options"] = serde_json::json!({"include_usage": true});
    }
    body
}

/// Reads a response body as SSE `data:` payloads, in order.
pub async fn sse_events(response: reqwest::Response) -> Vec<String> {
    let text = response.text().await.unwrap();
    parse_sse(&text)
}

pub fn parse_sse(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:").map(str::trim_start))
                .collect();
            (!data.is_empty()).then(|| data.join("\n"))
        })
        .collect()
}

/// The text a stream's chunks carry, `[DONE]` (the last event) left out.
pub fn content_of_stream(events: &[String]) -> String {
    events[..events.len().saturating_sub(1)]
        .iter()
        .filter_map(|e| serde_json::from_str::<serde_json::Value>(e).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

/// A loopback port with nothing listening on it.
pub async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// The `reprise` binary running as a child process, its stdout and stderr collected.
pub struct Process {
    pub child: Child,
    pub output: Arc<Mutex<Vec<String>>>,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    readers: Vec<tokio::task::JoinHandle<()>>,
    data_dir: tempfile::TempDir,
}

impl Process {
    /// Spawns `reprise ARGS` with `vars` as its whole environment (plus PATH).
    pub fn spawn(args: &[&str], vars: &[(&str, &str)]) -> Process {
        Self::spawn_in(tempfile::tempdir().unwrap(), args, vars)
    }

    /// Like [`Process::spawn`], with this data directory.
    pub fn spawn_in(data_dir: tempfile::TempDir, args: &[&str], vars: &[(&str, &str)]) -> Process {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_reprise"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("REPRISE_DATA_DIR", data_dir.path())
            .env("REPRISE_LOG_FORMAT", "json")
            .env("REPRISE_MODEL_DIR", model_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let output = Arc::new(Mutex::new(Vec::new()));
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut readers = Vec::new();
        for stream in [
            Box::new(stdout) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
            Box::new(stderr),
        ] {
            let output = output.clone();
            let tx = tx.clone();
            readers.push(tokio::spawn(async move {
                let mut reader = BufReader::new(stream).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    output.lock().unwrap().push(line.clone());
                    let _ = tx.send(line);
                }
            }));
        }
        Process {
            child,
            output,
            lines,
            readers,
            data_dir,
        }
    }

    /// Waits for the process to exit and for everything it printed to be read; returns the exit
    /// code and the output.
    pub async fn finish(&mut self) -> (Option<i32>, Vec<String>) {
        let code = self.exit_code().await;
        for reader in self.readers.drain(..) {
            tokio::time::timeout(PATIENCE, reader)
                .await
                .unwrap()
                .unwrap();
        }
        (code, self.output())
    }

    /// `reprise serve` on an ephemeral loopback port in front of `mock`, on `data_dir` (or a new
    /// one); returns the process and its chat completions URL once it listens.
    pub async fn serve(
        mock: &reprise_test_support::MockUpstream,
        data_dir: Option<tempfile::TempDir>,
    ) -> (Process, String) {
        let base_url = mock.base_url();
        let vars = [
            ("OPENAI_API_KEY", UPSTREAM_KEY),
            ("OPENAI_BASE_URL", base_url.as_str()),
        ];
        let args = ["serve", "--listen", "127.0.0.1:0"];
        let mut process = match data_dir {
            Some(dir) => Process::spawn_in(dir, &args, &vars),
            None => Process::spawn(&args, &vars),
        };
        let addr = process.listening().await;
        (process, format!("http://{addr}/v1/chat/completions"))
    }

    /// Waits for the line announcing the listen address and returns the address.
    pub async fn listening(&mut self) -> SocketAddr {
        let wait = async {
            while let Some(line) = self.lines.recv().await {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && v["message"] == "reprise is listening"
                {
                    return v["listen"].as_str().unwrap().parse().unwrap();
                }
            }
            panic!("reprise exited before listening: {:?}", self.output());
        };
        tokio::time::timeout(PATIENCE, wait)
            .await
            .expect("reprise did not start listening")
    }

    /// Waits for the process to exit and returns its exit code.
    pub async fn exit_code(&mut self) -> Option<i32> {
        let status = tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("reprise did not exit")
            .unwrap();
        status.code()
    }

    /// Hands the data directory over (for a restart on the same data).
    pub fn into_data_dir(self) -> tempfile::TempDir {
        self.data_dir
    }

    /// Everything the process printed so far.
    pub fn output(&self) -> Vec<String> {
        self.output.lock().unwrap().clone()
    }

    /// The first JSON log line whose message is `message`, once the process has printed it.
    pub async fn logged(&self, message: &str) -> serde_json::Value {
        let find = async {
            loop {
                let line = self
                    .output()
                    .iter()
                    .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                    .find(|v| v["message"] == message);
                match line {
                    Some(line) => return line,
                    None => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                }
            }
        };
        tokio::time::timeout(PATIENCE, find)
            .await
            .unwrap_or_else(|_| panic!("no {message:?} line in {:?}", self.output()))
    }

    /// Sends SIGTERM.
    pub async fn terminate(&self) {
        self.signal("-TERM").await;
    }

    /// `kill -9`, and waits for the process to be gone.
    pub async fn kill_9(&mut self) {
        self.signal("-KILL").await;
        assert_eq!(self.exit_code().await, None, "killed by a signal");
    }

    async fn signal(&self, signal: &str) {
        let pid = self.child.id().unwrap().to_string();
        let status = Command::new("kill")
            .args([signal, &pid])
            .status()
            .await
            .unwrap();
        assert!(status.success());
    }
}

/// Runs `command` with `input` on its standard input; its output once it exits (within
/// [`PATIENCE`]).
pub async fn run_with_input(
    command: &mut tokio::process::Command,
    input: &[u8],
) -> std::process::Output {
    use tokio::io::AsyncWriteExt;
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).await.unwrap();
    drop(stdin);
    tokio::time::timeout(PATIENCE, child.wait_with_output())
        .await
        .unwrap()
        .unwrap()
}

/// A TLS front for the mock upstream: terminates TLS with a certificate for `localhost` signed by
/// a throw-away CA (in `ca_file`), offers HTTP/2 and HTTP/1.1 by ALPN, and relays the plain bytes
/// to the mock (which speaks both). Records the protocol each connection negotiated.
pub struct TlsFront {
    pub port: u16,
    pub ca_file: std::path::PathBuf,
    negotiated: Arc<Mutex<Vec<Option<String>>>>,
    _dir: tempfile::TempDir,
}

impl TlsFront {
    pub async fn start(backend: SocketAddr) -> TlsFront {
        use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "Reprise test CA");
        let ca = ca.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let negotiated = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&negotiated);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    // A client that refuses the certificate ends here.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let alpn = tls.get_ref().1.alpn_protocol();
                    seen.lock()
                        .unwrap()
                        .push(alpn.map(|p| String::from_utf8_lossy(p).into_owned()));
                    let mut plain = tokio::net::TcpStream::connect(backend).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        TlsFront {
            port,
            ca_file,
            negotiated,
            _dir: dir,
        }
    }

    /// The protocol each accepted TLS connection negotiated, in order.
    pub fn negotiated(&self) -> Vec<Option<String>> {
        self.negotiated.lock().unwrap().clone()
    }
}

/// Checks the OpenAI error shape and returns the `error` object.
pub async fn error_of(response: reqwest::Response, status: u16) -> serde_json::Value {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert!(response.headers().contains_key("x-request-id"));
    let body: serde_json::Value = response.json().await.unwrap();
    let e = body["error"].clone();
    assert!(e["message"].is_string(), "{body}");
    assert!(e["type"].is_string(), "{body}");
    assert!(
        e.get("param").is_some() && e.get("code").is_some(),
        "{body}"
    );
    assert!(!body.to_string().contains(UPSTREAM_KEY));
    e
}
