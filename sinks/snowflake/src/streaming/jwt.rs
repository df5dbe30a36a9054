//! Key-pair JWT for Snowflake (RS256).
//!
//! Claims per Snowflake's "Key-pair authentication" guide: `iss = ACCOUNT.USER.SHA256:<fingerprint>`,
//! `sub = ACCOUNT.USER`, `iat`, `exp` (at most 1 h after `iat`), where ACCOUNT is the upper-case account
//! identifier without any region suffix and the fingerprint is the base64 SHA-256 of the public key's DER
//! (SubjectPublicKeyInfo).

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rsa::pkcs1v15::{SigningKey, VerifyingKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey};
use rsa::sha2::{Digest, Sha256};
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde::{Deserialize, Serialize};

/// JWT claims.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// `ACCOUNT.USER.SHA256:<fingerprint>`.
    pub iss: String,
    /// `ACCOUNT.USER`.
    pub sub: String,
    /// Issued at, s since the Unix epoch.
    pub iat: i64,
    /// Expiry, s since the Unix epoch.
    pub exp: i64,
}

/// The account part of the claims: upper case, without a `.region` suffix.
pub fn claim_account(account: &str) -> String {
    account.split('.').next().unwrap_or(account).to_ascii_uppercase()
}

/// `SHA256:<base64 of SHA-256 of the public key DER>`.
///
/// # Errors
/// When the key cannot be encoded as DER.
pub fn fingerprint(public: &RsaPublicKey) -> Result<String, String> {
    let der = public.to_public_key_der().map_err(|e| format!("public key DER: {e}"))?;
    Ok(format!("SHA256:{}", STANDARD.encode(Sha256::digest(der.as_bytes()))))
}

/// A private key ready to sign JWTs.
#[derive(Clone)]
pub struct KeyPair {
    signing: SigningKey<Sha256>,
    fingerprint: String,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair").field("fingerprint", &self.fingerprint).finish_non_exhaustive()
    }
}

impl KeyPair {
    /// Reads a PKCS#8 PEM private key (`BEGIN PRIVATE KEY`, or `BEGIN ENCRYPTED PRIVATE KEY` with a passphrase).
    ///
    /// # Errors
    /// A message saying why the key is unusable (never the key itself).
    pub fn from_pem(pem: &str, passphrase: Option<&str>) -> Result<KeyPair, String> {
        let key = match passphrase {
            Some(p) => RsaPrivateKey::from_pkcs8_encrypted_pem(pem, p.as_bytes()),
            None => RsaPrivateKey::from_pkcs8_pem(pem),
        }
        .map_err(|e| format!("not a PKCS#8 RSA private key: {e}"))?;
        let fingerprint = fingerprint(&key.to_public_key())?;
        Ok(KeyPair { signing: SigningKey::<Sha256>::new(key), fingerprint })
    }

    /// `SHA256:<base64>` of the public key.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// A signed token for `account`/`user`, valid from `now_s` for `lifetime_s` seconds (≤ 3600).
    pub fn jwt(&self, account: &str, user: &str, now_s: i64, lifetime_s: i64) -> String {
        let qualified = format!("{}.{}", claim_account(account), user.to_ascii_uppercase());
        let claims = Claims {
            iss: format!("{qualified}.{}", self.fingerprint),
            sub: qualified,
            iat: now_s,
            exp: now_s + lifetime_s.min(3600),
        };
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        // Serialising four plain fields cannot fail.
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let input = format!("{header}.{payload}");
        let signature = URL_SAFE_NO_PAD.encode(self.signing.sign(input.as_bytes()).to_bytes());
        format!("{input}.{signature}")
    }
}

/// Checks an RS256 JWT's signature against `public_pem` (SPKI PEM) and returns its claims.
///
/// # Errors
/// A message naming what is wrong (format, algorithm, signature).
pub fn verify(token: &str, public_pem: &str) -> Result<Claims, String> {
    let public = RsaPublicKey::from_public_key_pem(public_pem).map_err(|e| format!("public key: {e}"))?;
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err("not a JWT (three base64url parts)".into());
    };
    let header: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).map_err(|e| e.to_string())?)
        .map_err(|e| format!("header: {e}"))?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("RS256") {
        return Err("alg must be RS256".into());
    }
    let sig = rsa::pkcs1v15::Signature::try_from(URL_SAFE_NO_PAD.decode(s).map_err(|e| e.to_string())?.as_slice())
        .map_err(|e| format!("signature: {e}"))?;
    VerifyingKey::<Sha256>::new(public)
        .verify(format!("{h}.{p}").as_bytes(), &sig)
        .map_err(|_| "signature does not match the registered public key".to_string())?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).map_err(|e| e.to_string())?).map_err(|e| format!("claims: {e}"))
}
