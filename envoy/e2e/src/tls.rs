//! Throwaway certificate authorities for real-TLS tests, made at test time with the `openssl`
//! command-line tool (Debian's `openssl` package; `make setup` installs it when missing).
//!
//! Why the CLI and not a crate such as `rcgen`: it adds no dependency (rcgen needs `ring` or
//! `aws-lc-rs`, C code compiled into every test build), the files it writes are the PEM files an
//! operator would mount, and Envoy's BoringSSL — not the test's own TLS code — is what parses
//! and verifies them. Keys are P-256, certificates live one day.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

/// A certificate and its private key, as PEM files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, unencrypted).
    pub key: PathBuf,
}

/// A self-signed CA whose certificate and key are files in a test directory.
#[derive(Debug, Clone)]
pub struct TestCa {
    files: CertFiles,
}

impl TestCa {
    /// Creates a CA named `name` (its subject CN) in `dir`: `<name>.crt` and `<name>.key`.
    pub fn new(dir: &Path, name: &str) -> TestCa {
        let files = CertFiles {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &files.key.display().to_string(),
            "-out",
            &files.cert.display().to_string(),
        ]);
        TestCa { files }
    }

    /// The CA certificate (PEM): the trust anchor to hand a TLS client.
    pub fn cert(&self) -> &Path {
        &self.files.cert
    }

    /// Issues a server certificate for `dns_name` (subject CN and the only DNS SAN), written to
    /// `<dir>/<stem>.crt` and `<dir>/<stem>.key`.
    pub fn issue(&self, dir: &Path, stem: &str, dns_name: &str) -> CertFiles {
        static SERIAL: AtomicU64 = AtomicU64::new(1);
        let out = CertFiles {
            cert: dir.join(format!("{stem}.crt")),
            key: dir.join(format!("{stem}.key")),
        };
        let csr = dir.join(format!("{stem}.csr"));
        let ext = dir.join(format!("{stem}.ext"));
        std::fs::write(
            &ext,
            format!(
                "subjectAltName=DNS:{dns_name}\nbasicConstraints=critical,CA:FALSE\n\
                 keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
            ),
        )
        .expect("write extension file");
        openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            &format!("/CN={dns_name}"),
            "-keyout",
            &out.key.display().to_string(),
            "-out",
            &csr.display().to_string(),
        ]);
        let serial = std::process::id() as u64 * 1_000 + SERIAL.fetch_add(1, Ordering::SeqCst);
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr.display().to_string(),
            "-CA",
            &self.files.cert.display().to_string(),
            "-CAkey",
            &self.files.key.display().to_string(),
            "-set_serial",
            &serial.to_string(),
            "-days",
            "1",
            "-extfile",
            &ext.display().to_string(),
            "-out",
            &out.cert.display().to_string(),
        ]);
        out
    }
}

/// Runs `openssl ARGS`, panicking with its output when it fails.
fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run openssl (install Debian's `openssl`): {e}"));
    assert!(
        out.status.success(),
        "openssl {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
