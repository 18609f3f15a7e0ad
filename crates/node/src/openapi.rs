//! The OpenAPI 3.1 description of the HTTP API, served at `/v1/openapi.json`.
//! Hand-written; a test checks that it parses and names every route the router serves.

pub const DOCUMENT: &str = include_str!("openapi.json");
