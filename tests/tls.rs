//! TLS to Redis and to PostgreSQL, verified for real: certificates made
//! for the test by `openssl` (a private CA, a server certificate for
//! 127.0.0.1, a client certificate), a redis-server that speaks only TLS
//! on the port Drover uses and checks client certificates, and a private
//! PostgreSQL that refuses connections without TLS. Drover works through
//! both; without the CA (or the client certificate) it is refused, so the
//! certificates are really checked.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{Value, json};
use support::{Drover, free_port};
use testkit::{Check, ChildGuard, RedisServer, wait_until};

/// Runs `openssl` with `args` in `dir`; panics with its output on failure.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1/localhost and a client
/// certificate, as PEM files in `dir`.
fn make_certs(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec![
        "req",
        "-x509",
        "-days",
        "2",
        "-subj",
        "/CN=drover-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ];
    ca.extend(ec);
    openssl(dir, &ca);
    for (name, usage) in [
        (
            "server",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        ),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ] {
        let (key, csr, crt, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.ext"),
        );
        let mut req = vec![
            "req",
            "-subj",
            if name == "server" {
                "/CN=localhost"
            } else {
                "/CN=drover-client"
            },
            "-keyout",
            &key,
            "-out",
            &csr,
        ];
        req.extend(ec);
        openssl(dir, &req);
        std::fs::write(dir.join(&ext), usage).unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &ext,
                "-out",
                &crt,
            ],
        );
    }
}

#[tokio::test]
async fn drover_talks_to_redis_over_verified_mutual_tls() {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let p = |f: &str| certs.path().join(f).display().to_string();
    let tls_port = free_port().to_string();
    let redis = RedisServer::start_with(&[
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        &p("server.crt"),
        "--tls-key-file",
        &p("server.key"),
        "--tls-ca-cert-file",
        &p("ca.crt"),
        "--tls-auth-clients",
        "yes",
    ])
    .await;
    let drover = Drover::new(&redis);
    let url = format!("rediss://127.0.0.1:{tls_port}");
    let config = |tls: &str| {
        let path = drover.dir.path().join(format!("tls-{}.toml", tls.len()));
        std::fs::write(
            &path,
            format!("[redis]\nurl = \"{url}\"\n[redis.tls]\n{tls}"),
        )
        .unwrap();
        path.display().to_string()
    };
    let full = config(&format!(
        "ca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        p("ca.crt"),
        p("client.crt"),
        p("client.key")
    ));
    let run = |config: &str, args: &[&str]| {
        let out = drover
            .command(args)
            .env("REDIS_URL", &url)
            .env("DROVER_CONFIG", config)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };

    let (code, id, err) = run(
        &full,
        &["enqueue", "tls", "hello", "--data", r#"{"over":"tls"}"#],
    );
    assert_eq!(code, Some(0), "{err}");
    let id = id.trim().to_string();
    let log = std::fs::File::create(drover.log_path("worker")).unwrap();
    let child = drover
        .command(&["worker", "--queue", "tls", "--handler", "echo"])
        .env("REDIS_URL", &url)
        .env("DROVER_CONFIG", &full)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut worker = ChildGuard::new("drover worker (tls)", child);
    let job: Value = wait_until(
        "the job completed over TLS",
        Duration::from_secs(30),
        || {
            let (_, out, _) = run(&full, &["job", "tls", &id, "--json"]);
            async move {
                let job: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
                if job["state"] == "completed" {
                    Check::Done(job)
                } else {
                    Check::NotYet(out)
                }
            }
        },
    )
    .await;
    assert_eq!(job["returnvalue"], json!({ "over": "tls" }));
    worker.signal(Signal::SIGTERM);
    worker.wait_exit(Duration::from_secs(30)).await;

    // Without the CA the server's certificate is not trusted; without the
    // client certificate the server refuses us. Both are run-time
    // failures (exit 1) with one line.
    let no_ca = config(&format!(
        "cert_file = \"{}\"\nkey_file = \"{}\"\n",
        p("client.crt"),
        p("client.key")
    ));
    let (code, _, err) = run(&no_ca, &["enqueue", "tls", "hello"]);
    assert_eq!(code, Some(1), "an unknown CA must be refused: {err}");
    eprintln!("without the CA: {}", err.trim());
    assert!(
        err.contains("[redis.tls]"),
        "the error says where to look: {err}"
    );
    let no_client = config(&format!("ca_file = \"{}\"\n", p("ca.crt")));
    let (code, _, err) = run(&no_client, &["enqueue", "tls", "hello"]);
    assert_eq!(
        code,
        Some(1),
        "a server checking clients must refuse us: {err}"
    );
    eprintln!("without a client certificate: {}", err.trim());
    assert!(
        err.contains("[redis.tls]"),
        "the error says where to look: {err}"
    );
    // A half-given client identity is a usage error.
    let half = config(&format!(
        "ca_file = \"{}\"\ncert_file = \"{}\"\n",
        p("ca.crt"),
        p("client.crt")
    ));
    let (code, _, err) = run(&half, &["enqueue", "tls", "hello"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("cert_file and key_file go together"), "{err}");
}

/// A private PostgreSQL (`initdb` in a temporary directory, as user
/// postgres when run as root) that accepts only TLS on 127.0.0.1.
struct TlsPostgres {
    port: u16,
    _server: ChildGuard,
    _dir: tempfile::TempDir,
}

impl TlsPostgres {
    async fn start(certs: &Path) -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's server binaries in /usr/lib/postgresql (.ci/run installs them)")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .max()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let uid = Command::new("id").arg("-u").output().unwrap().stdout;
        let root = String::from_utf8_lossy(&uid).trim() == "0";
        let as_db_user = |program: PathBuf, args: &[&str]| {
            let mut cmd = if root {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(program);
                c
            } else {
                Command::new(program)
            };
            cmd.args(args);
            cmd
        };
        if root {
            assert!(
                Command::new("chown")
                    .args(["postgres:postgres"])
                    .arg(dir.path())
                    .status()
                    .unwrap()
                    .success()
            );
        }
        let out = as_db_user(
            bin.join("initdb"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
            ],
        )
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for f in ["server.crt", "server.key", "ca.crt"] {
            std::fs::copy(certs.join(f), data.join(f)).unwrap();
        }
        std::fs::write(
            data.join("pg_hba.conf"),
            "hostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\nlocal all all trust\n",
        )
        .unwrap();
        if root {
            assert!(
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(&data)
                    .status()
                    .unwrap()
                    .success()
            );
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            data.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("postgres.log")).unwrap();
        let child = as_db_user(
            bin.join("postgres"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-p",
                &port.to_string(),
                "-k",
                dir.path().to_str().unwrap(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "ssl=on",
                "-c",
                "ssl_cert_file=server.crt",
                "-c",
                "ssl_key_file=server.key",
                "-c",
                "ssl_ca_file=ca.crt",
            ],
        )
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
        let server = ChildGuard::new("postgres (tls)", child);
        wait_until(
            "PostgreSQL accepting connections",
            Duration::from_secs(30),
            || async {
                let ok = Command::new("pg_isready")
                    .args(["-h", "127.0.0.1", "-p", &port.to_string()])
                    .output()
                    .unwrap();
                if ok.status.success() {
                    Check::Done(())
                } else {
                    Check::NotYet(String::from_utf8_lossy(&ok.stdout).to_string())
                }
            },
        )
        .await;
        Self {
            port,
            _server: server,
            _dir: dir,
        }
    }
}

#[tokio::test]
async fn the_store_works_over_verified_tls_to_postgresql() {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let pg = TlsPostgres::start(certs.path()).await;
    let redis = RedisServer::start().await;
    let drover = Drover::new(&redis);
    let ca = certs.path().join("ca.crt").display().to_string();
    let base = format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port);
    let run = |url: String, args: &[&str]| {
        let out = drover
            .command(args)
            .env("DATABASE_URL", url)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let verified = format!("{base}?sslmode=verify-full&sslrootcert={ca}");
    let (code, out, err) = run(verified.clone(), &["migrate"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("applied"), "{out}");
    let (code, out, err) = run(
        verified,
        &[
            "keys", "create", "--name", "tls", "--scope", "read", "--json",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("drv_"), "{out}");
    // The server refuses plain connections, and an unknown CA is refused
    // by Drover.
    let (code, _, err) = run(format!("{base}?sslmode=disable"), &["keys", "list"]);
    assert_eq!(code, Some(1), "a plain connection must be refused: {err}");
    eprintln!("plain: {}", err.trim());
    let (code, _, err) = run(format!("{base}?sslmode=verify-full"), &["keys", "list"]);
    assert_eq!(code, Some(1), "an unknown CA must be refused: {err}");
    eprintln!("unknown CA: {}", err.trim());
}
