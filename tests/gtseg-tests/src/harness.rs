//! Real components for the integration tests: moto's S3 server and cargo-lambda's Lambda
//! runtime emulator, started on loopback ports and stopped when dropped.
//!
//! When a tool is missing, [`require`] skips the test with a loud message on a developer's
//! machine and fails it in CI (`CI` set), so CI can never pass without really running them.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;

use crate::{files_under, workspace_root};

/// True when `tool` can be run. In CI a missing tool fails the test; elsewhere the test is
/// skipped with a message that says what to install.
pub fn require(tool: &str, probe: &[&str], test: &str) -> bool {
    let ok = Command::new(tool)
        .args(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return true;
    }
    let msg = format!(
        "`{tool}` is not available: run `make tools` (it installs tests/requirements.txt into .venv/) and put .venv/bin on the PATH"
    );
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: {msg} (CI must run this test)"
    );
    eprintln!("\n!!!!!!!! SKIPPED {test}: {msg} !!!!!!!!\n");
    false
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn wait_for_port(port: u16, what: &str) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what} did not start listening on port {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Dummy credentials and a region: the SDK needs them even for a local server.
pub fn aws_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
    ]
}

/// moto's S3 (and STS, IAM) server on a loopback port.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    /// Starts `moto_server`; `None` when it is not installed (outside CI).
    pub fn start(test: &str, env: &[(&str, &str)]) -> Option<Self> {
        if !require("moto_server", &["--help"], test) {
            return None;
        }
        let port = free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let moto = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        wait_for_port(port, "moto_server");
        Some(moto)
    }

    /// An S3 client for this server with the dummy credentials.
    pub fn client(&self) -> aws_sdk_s3::Client {
        let creds = aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "test");
        let conf = aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .credentials_provider(creds)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// Creates one bucket per top-level folder of `dir` and uploads every file under it.
    pub async fn upload_store(&self, dir: &Path) {
        let client = self.client();
        for bucket in std::fs::read_dir(dir).expect("store dir") {
            let bucket = bucket.expect("entry").path();
            let name = bucket
                .file_name()
                .and_then(|n| n.to_str())
                .expect("bucket name")
                .to_owned();
            client
                .create_bucket()
                .bucket(&name)
                .send()
                .await
                .expect("create bucket");
            for file in files_under(&bucket) {
                let key = file
                    .strip_prefix(&bucket)
                    .expect("under bucket")
                    .to_string_lossy()
                    .into_owned();
                let body = ByteStream::from(std::fs::read(&file).expect("read fixture"));
                client
                    .put_object()
                    .bucket(&name)
                    .key(key)
                    .body(body)
                    .send()
                    .await
                    .expect("upload");
            }
        }
    }

    /// Reads an object by `s3://` URI; `None` when it does not exist.
    pub async fn get(&self, uri: &str) -> Option<Vec<u8>> {
        let (bucket, key) = uri
            .strip_prefix("s3://")
            .and_then(|r| r.split_once('/'))
            .expect("s3 uri");
        let resp = self
            .client()
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .ok()?;
        Some(
            resp.body
                .collect()
                .await
                .expect("body")
                .into_bytes()
                .to_vec(),
        )
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tests/fault_proxy.py`: an HTTP proxy in front of an S3 server that injects faults
/// (throttling, server errors, access denied, reset or hung connections, stalled bodies).
#[derive(Debug)]
pub struct FaultProxy {
    child: Child,
    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL`.
    pub endpoint: String,
    calls: PathBuf,
    _dir: crate::Scratch,
}

impl FaultProxy {
    /// A proxy to `upstream` applying `rules` (see the script for their format); `None` when
    /// Python is missing (outside CI).
    pub fn start(test: &str, upstream: &str, rules: &serde_json::Value) -> Option<Self> {
        if !require("python3", &["--version"], test) {
            return None;
        }
        let dir = crate::temp_dir("fault-proxy");
        let rules_file = dir.join("rules.json");
        std::fs::write(&rules_file, rules.to_string()).expect("rules file");
        let calls = dir.join("calls.jsonl");
        let port = free_port();
        let mut child = Command::new("python3")
            .arg(workspace_root().join("tests/fault_proxy.py"))
            .args(["--port", &port.to_string(), "--upstream", upstream])
            .arg("--rules")
            .arg(&rules_file)
            .arg("--calls")
            .arg(&calls)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the fault proxy");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("proxy stdout");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
            .expect("proxy output");
        assert_eq!(line.trim(), "ready", "the fault proxy did not start");
        Some(Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            calls,
            _dir: dir,
        })
    }

    /// Every request so far: its method, path, and the fault injected (if any).
    pub fn calls(&self) -> Vec<(String, String, Option<String>)> {
        std::fs::read_to_string(&self.calls)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("call line");
                (
                    v["method"].as_str().unwrap_or("").to_owned(),
                    v["path"].as_str().unwrap_or("").to_owned(),
                    v["fault"].as_str().map(str::to_owned),
                )
            })
            .collect()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tests/sagemaker_stub.py`: SageMaker's `DescribeLabelingJob` on a loopback port, checking
/// each request's SigV4 signature and each answer against botocore's model.
#[derive(Debug)]
pub struct SageMakerStub {
    child: Child,
    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL_SAGEMAKER`.
    pub endpoint: String,
    calls: PathBuf,
    _dir: crate::Scratch,
}

impl SageMakerStub {
    /// Serves `jobs` (see the script for the format); `None` when Python's botocore is
    /// missing (outside CI).
    pub fn start(test: &str, jobs: &serde_json::Value) -> Option<Self> {
        if !require("python3", &["-c", "import botocore"], test) {
            return None;
        }
        let dir = crate::temp_dir("sagemaker-stub");
        let jobs_file = dir.join("jobs.json");
        std::fs::write(&jobs_file, jobs.to_string()).expect("jobs file");
        let calls = dir.join("calls.jsonl");
        let port = free_port();
        let mut child = Command::new("python3")
            .arg(workspace_root().join("tests/sagemaker_stub.py"))
            .args(["--port", &port.to_string()])
            .arg("--jobs")
            .arg(&jobs_file)
            .arg("--calls")
            .arg(&calls)
            .envs(
                aws_env("unused")
                    .into_iter()
                    .filter(|(k, _)| k.starts_with("AWS_") && *k != "AWS_ENDPOINT_URL"),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the SageMaker stub");
        // It prints "ready" once its answers passed botocore's validation and it listens.
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stub stdout");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
            .expect("stub output");
        assert_eq!(line.trim(), "ready", "the SageMaker stub did not start");
        Some(Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            calls,
            _dir: dir,
        })
    }

    /// Every call so far: the job name asked for and the HTTP status answered.
    pub fn calls(&self) -> Vec<(String, u16)> {
        std::fs::read_to_string(&self.calls)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("call line");
                (
                    v["job"].as_str().unwrap_or("").to_owned(),
                    v["status"].as_u64().unwrap_or(0) as u16,
                )
            })
            .collect()
    }
}

impl Drop for SageMakerStub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// cargo-lambda's Lambda runtime emulator (`cargo lambda watch --only-lambda-apis`), serving
/// our compiled function binaries, which it reaches through `AWS_LAMBDA_RUNTIME_API`.
#[derive(Debug)]
pub struct Emulator {
    watch: Child,
    functions: Vec<Child>,
    pub port: u16,
}

impl Emulator {
    /// Starts the emulator; `None` when cargo-lambda is not installed (outside CI).
    pub fn start(test: &str) -> Option<Self> {
        if !require("cargo", &["lambda", "--version"], test) {
            return None;
        }
        let port = free_port();
        let watch = Command::new("cargo")
            .args([
                "lambda",
                "watch",
                "--only-lambda-apis",
                "-A",
                "127.0.0.1",
                "-P",
                &port.to_string(),
            ])
            .current_dir(workspace_root())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start cargo lambda watch");
        let emulator = Self {
            watch,
            functions: Vec::new(),
            port,
        };
        wait_for_port(port, "cargo lambda watch");
        Some(emulator)
    }

    /// Runs the built binary `name` as the function `name`, with `env` added. Its logs go to
    /// `log` (read it when a test fails).
    pub fn serve(&mut self, name: &str, env: &[(&str, String)], log: &Path) {
        let log = std::fs::File::create(log).expect("function log file");
        let child = Command::new(crate::built_binary(name))
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{}/.rt/{name}", self.port),
            )
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            // lambda_runtime's subscriber logs to stdout, as Lambda expects.
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start the function binary");
        self.functions.push(child);
    }

    /// `cargo lambda invoke NAME --data-file EVENT`, bounded by a timeout (an invoke for a
    /// name nobody serves would hang).
    pub fn invoke(&self, name: &str, event: &Path) -> Output {
        Command::new("timeout")
            .args([
                "120",
                "cargo",
                "lambda",
                "invoke",
                name,
                "-A",
                "127.0.0.1",
                "-P",
                &self.port.to_string(),
            ])
            .arg("--data-file")
            .arg(event)
            .current_dir(workspace_root())
            .output()
            .expect("cargo lambda invoke")
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        for f in &mut self.functions {
            let _ = f.kill();
            let _ = f.wait();
        }
        // SIGINT lets cargo-lambda shut down cleanly.
        let _ = Command::new("kill")
            .args(["-INT", &self.watch.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.watch.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.watch.kill();
        let _ = self.watch.wait();
    }
}
