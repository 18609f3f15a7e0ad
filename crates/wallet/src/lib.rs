//! Tessera wallet library: encrypted key files, transaction building and the HTTP API client.
pub mod keystore;
