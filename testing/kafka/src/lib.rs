//! A Kafka-protocol broker for tests: tansu, installed by `.ci/setup.d/50-kafka.sh` (or `$MILLIONX_TANSU`).
//! A test that needs it FAILS when the binary is missing.
#![allow(clippy::unwrap_used)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The topics every broker is started with (the platform's three input topics and the DLQ topic).
pub const TOPICS: [&str; 4] = ["validated.social", "validated.market", "context.weather", "dlq.millionx"];

/// The tansu binary: `$MILLIONX_TANSU`, else `/opt/millionx-tools/bin/tansu`; panics when neither exists.
pub fn tansu() -> PathBuf {
    if let Ok(p) = std::env::var("MILLIONX_TANSU") {
        return PathBuf::from(p);
    }
    let installed = PathBuf::from("/opt/millionx-tools/bin/tansu");
    if installed.exists() {
        return installed;
    }
    panic!(
        "tansu (the Kafka-protocol broker) is not installed: run `bash .ci/setup.d/50-kafka.sh` or set MILLIONX_TANSU"
    );
}

/// A broker on 127.0.0.1, killed on drop.
pub struct Broker {
    /// The broker process (tests stop and continue it with signals).
    pub child: Child,
    /// `127.0.0.1:PORT`, the bootstrap address.
    pub addr: String,
}

impl Broker {
    /// Starts a broker with memory storage on a free port, waits until it listens (≤ 20 s) and creates
    /// [`TOPICS`] with `partitions` partitions each. Panics when any step fails.
    pub fn start(partitions: u32) -> Broker {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = format!("127.0.0.1:{port}");
        let url = format!("tcp://{addr}");
        let child = Command::new(tansu())
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        let broker = Broker { child, addr };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&broker.addr).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen on {} within 20 s", broker.addr);
            std::thread::sleep(Duration::from_millis(50));
        }
        for t in TOPICS {
            let status = Command::new(tansu())
                .args(["topic", "create", t, "--broker", &url, "--partitions", &partitions.to_string()])
                .stdout(Stdio::null())
                .status()
                .unwrap();
            assert!(status.success(), "creating topic {t}");
        }
        broker
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
