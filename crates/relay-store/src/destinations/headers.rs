//! A destination's custom headers at rest. Tenants put credentials there (`Authorization: Bearer
//! …`), so the credential-like ones are secrets: [`seal`] splits a header map into the ordinary
//! headers, stored in clear in `destinations.headers`, and the credential-like ones, sealed with
//! the master key as one JSON object in `destinations.sealed_headers`; [`open`] merges them back.
//!
//! Invariant: a header that [`is_credential`] never reaches the database in clear through
//! [`seal`]. Rows written before sealing existed may still hold such headers in clear; [`open`]
//! reads them as well, so deliveries carry every header either way.

use std::collections::BTreeMap;

use relay_core::secret::{MasterKey, Secret, SecretError};

pub use relay_core::headers::is_credential;

/// Custom headers as they are stored.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct StoredHeaders {
    /// The ordinary headers, stored in clear.
    pub plain: BTreeMap<String, String>,
    /// The credential-like headers as sealed JSON; `None` when there are none.
    pub sealed: Option<Vec<u8>>,
}

impl std::fmt::Debug for StoredHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredHeaders")
            .field("plain", &self.plain)
            .field("sealed", &self.sealed.as_ref().map(|_| "<sealed>"))
            .finish()
    }
}

/// Splits `headers` for storage, sealing the credential-like ones with `key`.
pub fn seal(key: &MasterKey, headers: &BTreeMap<String, String>) -> StoredHeaders {
    let (credentials, plain): (BTreeMap<_, _>, BTreeMap<_, _>) =
        headers.clone().into_iter().partition(|(name, _)| is_credential(name));
    let sealed = (!credentials.is_empty()).then(|| {
        let json = serde_json::to_string(&credentials).expect("a map of strings serialises");
        key.seal(&Secret::new(json))
    });
    StoredHeaders { plain, sealed }
}

/// Every custom header of a destination: the plain ones merged with the opened sealed ones.
pub fn open(
    key: &MasterKey,
    plain: &BTreeMap<String, String>,
    sealed: Option<&[u8]>,
) -> Result<BTreeMap<String, String>, SecretError> {
    let mut all = plain.clone();
    if let Some(sealed) = sealed {
        let json = key.open(sealed)?;
        let credentials: BTreeMap<String, String> =
            serde_json::from_str(json.expose()).map_err(|_| SecretError::Undecryptable)?;
        all.extend(credentials);
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> MasterKey {
        MasterKey::from_base64(&MasterKey::generate_base64()).unwrap()
    }

    #[test]
    fn credential_names_are_recognised_in_any_case() {
        for name in [
            "Authorization",
            "PROXY-AUTHORIZATION",
            "cookie",
            "X-Api-Key",
            "X-Auth-Token",
            "X-Client-Secret",
            "X-Password",
            "X-Hub-Signature",
            "X-Session-Id",
        ] {
            assert!(is_credential(name), "{name}");
        }
        for name in ["X-Team", "Accept", "X-Request-Source", "Set-Mode"] {
            assert!(!is_credential(name), "{name}");
        }
    }

    #[test]
    fn sealing_keeps_credentials_out_of_the_clear_and_opens_back_whole() {
        let key = key();
        let headers: BTreeMap<String, String> = [
            ("Authorization", "Bearer sk_live_abcdefgh1234"),
            ("X-Team", "payments"),
            ("X-Api-Key", "key-0123456789wxyz"),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
        let stored = seal(&key, &headers);
        assert_eq!(stored.plain.keys().collect::<Vec<_>>(), ["X-Team"]);
        let sealed = stored.sealed.as_deref().unwrap();
        assert!(!String::from_utf8_lossy(sealed).contains("sk_live"));
        assert!(!format!("{stored:?}").contains("sk_live"));
        assert_eq!(open(&key, &stored.plain, Some(sealed)).unwrap(), headers);
        assert_eq!(open(&self::key(), &stored.plain, Some(sealed)), Err(SecretError::Undecryptable));

        let ordinary = seal(&key, &BTreeMap::from([("X-Team".to_owned(), "a".to_owned())]));
        assert_eq!(ordinary.sealed, None);
        assert_eq!(open(&key, &ordinary.plain, None).unwrap()["X-Team"], "a");
    }
}
