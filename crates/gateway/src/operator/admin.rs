//! The operator's admin API, under `/admin/v1`, behind `Authorization: Bearer <admin token>`:
//!
//! - `POST /admin/v1/keys` (a [`KeySpec`]) → the key with its secret, shown this once;
//!   `GET /admin/v1/keys`, `GET /admin/v1/keys/{id}`, `PATCH /admin/v1/keys/{id}` (a
//!   [`KeyPatch`]), `POST /admin/v1/keys/{id}/rotate` (a new secret; the old one stops
//!   working), `DELETE /admin/v1/keys/{id}` (revoke; the record and its usage stay);
//! - `GET /admin/v1/accounts/{address}`: deposits, spending, reservations, balance, today's
//!   free quota use and stake;
//! - `GET /admin/v1/usage?key=ID&from=YYYY-MM-DD&to=YYYY-MM-DD`: usage per key, day, model;
//! - `GET /admin/v1/keys/{id}/requests?after=SEQ&limit=N`: the key's request log, oldest
//!   first, after sequence number SEQ.
//!
//! Errors use the same JSON shape as the OpenAI surface.

use super::meter::{date_of, day_from_date, KeyPatch, KeySpec, DAY_MS};
use super::Operator;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use openai::ApiError;
use primitives::Address;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

pub fn router(op: Arc<Operator>) -> Router {
    Router::new()
        .route("/admin/v1/keys", post(create_key).get(list_keys))
        .route("/admin/v1/keys/{id}", get(get_key).patch(update_key).delete(revoke_key))
        .route("/admin/v1/keys/{id}/rotate", post(rotate_key))
        .route("/admin/v1/keys/{id}/requests", get(key_requests))
        .route("/admin/v1/accounts/{address}", get(account))
        .route("/admin/v1/usage", get(usage))
        .with_state(op)
}

type Answer = Result<Json<Value>, Response>;

fn fail(e: ApiError) -> Response {
    crate::server::error_response(e)
}

fn check(op: &Operator, headers: &HeaderMap) -> Result<(), Response> {
    let given = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    match given {
        // Both sides hashed so the comparison's time says nothing about the token.
        Some(t) if blake3::hash(t.as_bytes()) == blake3::hash(op.admin_token.as_bytes()) => Ok(()),
        Some(_) => Err(fail(ApiError::unauthorized("invalid_admin_token", "the admin token is not valid"))),
        None => Err(fail(ApiError::unauthorized("missing_admin_token", "send Authorization: Bearer <admin token>"))),
    }
}

fn body<T: serde::de::DeserializeOwned>(bytes: &Bytes) -> Result<T, Response> {
    serde_json::from_slice(bytes).map_err(|e| fail(ApiError::invalid("body", format!("invalid JSON body: {e}"))))
}

async fn create_key(State(op): State<Arc<Operator>>, headers: HeaderMap, bytes: Bytes) -> Answer {
    check(&op, &headers)?;
    let spec: KeySpec = body(&bytes)?;
    let (view, secret) = op.meter.create_key(spec).map_err(fail)?;
    let mut v = serde_json::to_value(view).expect("serialisable");
    v["key"] = Value::String(secret);
    Ok(Json(v))
}

async fn list_keys(State(op): State<Arc<Operator>>, headers: HeaderMap) -> Answer {
    check(&op, &headers)?;
    Ok(Json(json!({ "keys": op.meter.keys() })))
}

async fn get_key(State(op): State<Arc<Operator>>, headers: HeaderMap, Path(id): Path<String>) -> Answer {
    check(&op, &headers)?;
    Ok(Json(serde_json::to_value(op.meter.key(&id).map_err(fail)?).expect("serialisable")))
}

async fn update_key(
    State(op): State<Arc<Operator>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Answer {
    check(&op, &headers)?;
    let patch: KeyPatch = body(&bytes)?;
    Ok(Json(serde_json::to_value(op.meter.update_key(&id, patch).map_err(fail)?).expect("serialisable")))
}

async fn rotate_key(State(op): State<Arc<Operator>>, headers: HeaderMap, Path(id): Path<String>) -> Answer {
    check(&op, &headers)?;
    let (view, secret) = op.meter.rotate_key(&id).map_err(fail)?;
    let mut v = serde_json::to_value(view).expect("serialisable");
    v["key"] = Value::String(secret);
    Ok(Json(v))
}

async fn revoke_key(State(op): State<Arc<Operator>>, headers: HeaderMap, Path(id): Path<String>) -> Answer {
    check(&op, &headers)?;
    Ok(Json(serde_json::to_value(op.meter.revoke_key(&id).map_err(fail)?).expect("serialisable")))
}

async fn account(State(op): State<Arc<Operator>>, headers: HeaderMap, Path(address): Path<String>) -> Answer {
    check(&op, &headers)?;
    let a: Address = address.parse().map_err(|e| fail(ApiError::invalid("address", format!("{address:?}: {e}"))))?;
    let mut v = serde_json::to_value(op.meter.account(&a)).expect("serialisable");
    v["staked"] = match op.staked(&a).await {
        Some(s) => Value::String(s.to_string()),
        None => Value::Null,
    };
    v["deposit_to"] = Value::String(op.address().to_string());
    Ok(Json(v))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageQuery {
    key: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

async fn usage(
    State(op): State<Arc<Operator>>,
    headers: HeaderMap,
    q: Result<Query<UsageQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    check(&op, &headers)?;
    let Query(q) = q.map_err(|e| fail(ApiError::invalid("query", e.body_text())))?;
    let today = u32::try_from(op.meter.now_ms() / DAY_MS).unwrap_or(u32::MAX);
    let day = |s: &Option<String>, name: &str, default: u32| match s {
        Some(d) => day_from_date(d).map_err(|e| fail(ApiError::invalid(name, e))),
        None => Ok(default),
    };
    let to = day(&q.to, "to", today)?;
    let from = day(&q.from, "from", to.saturating_sub(29))?;
    if from > to {
        return Err(fail(ApiError::invalid("from", "from is after to")));
    }
    let rows = op.meter.usage(q.key.as_deref(), from, to);
    Ok(Json(json!({ "from": date_of(from), "to": date_of(to), "rows": rows })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestsQuery {
    after: Option<u64>,
    limit: Option<usize>,
}

async fn key_requests(
    State(op): State<Arc<Operator>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    q: Result<Query<RequestsQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    check(&op, &headers)?;
    let Query(q) = q.map_err(|e| fail(ApiError::invalid("query", e.body_text())))?;
    op.meter.key(&id).map_err(fail)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let rows: Vec<Value> = op
        .meter
        .requests(&id, q.after.map_or(0, |a| a.saturating_add(1)), limit)
        .map_err(fail)?
        .into_iter()
        .map(|(seq, r)| {
            json!({
                "seq": seq, "at_ms": r.at_ms, "model": r.model, "provider": r.provider,
                "prompt_tokens": r.prompt_tokens, "completion_tokens": r.completion_tokens,
                "cost": r.cost, "free": r.free,
            })
        })
        .collect();
    Ok(Json(json!({ "key": id, "requests": rows })))
}
