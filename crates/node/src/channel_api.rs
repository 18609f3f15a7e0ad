//! Read endpoints of the provider registry and payment channels. Writes go through
//! `POST /v1/txs`.

use crate::api::{ApiError, ApiResult};
use crate::chain::Chain;
use api_types::{ChannelView, ProviderView};
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use ledger::objects::{ChannelRecord, ObjKey, Object, ProviderRecord};
use primitives::Address;
use std::sync::Arc;

pub fn routes() -> Router<Arc<Chain>> {
    Router::new()
        .route("/v1/providers", get(list_providers))
        .route("/v1/providers/{address}", get(get_provider))
        .route("/v1/channels/{id}", get(get_channel))
        .route("/v1/accounts/{address}/channels", get(account_channels))
}

fn provider_view(p: &ProviderRecord) -> ProviderView {
    ProviderView {
        address: p.address,
        endpoint: p.info.endpoint.clone(),
        models: p.info.models.clone(),
        stake: p.stake,
        status: if p.unbonding_until_ms.is_some() { "unbonding" } else { "active" }.into(),
        registered_ms: p.registered_ms,
        unbonding_until_ms: p.unbonding_until_ms,
    }
}

pub fn channel_view(c: &ChannelRecord, height: u64) -> ChannelView {
    ChannelView {
        id: c.id,
        sender: c.sender,
        recipient: c.recipient,
        signer: c.signer,
        nonce: c.nonce,
        escrowed: c.escrowed,
        deposited: c.deposited,
        claimed: c.claimed,
        reclaimed: c.reclaimed,
        expiry_height: c.expiry_height,
        opened_height: c.opened_height,
        expired: height >= c.expiry_height,
    }
}

fn parse_address(s: &str) -> ApiResult<Address> {
    s.parse().map_err(|e: primitives::AddressError| ApiError::bad_request("bad_address", e.to_string()))
}

async fn list_providers(State(chain): State<Arc<Chain>>) -> Json<Vec<ProviderView>> {
    let s = chain.state();
    let lo = ObjKey::Provider(Address([0; 32]));
    let hi = ObjKey::Provider(Address([0xff; 32]));
    Json(
        s.objects
            .range(lo..=hi)
            .filter_map(|(_, o)| match o {
                Object::Provider(p) => Some(provider_view(p)),
                _ => None,
            })
            .collect(),
    )
}

async fn get_provider(State(chain): State<Arc<Chain>>, Path(address): Path<String>) -> ApiResult<Json<ProviderView>> {
    let address = parse_address(&address)?;
    match chain.state().object(&ObjKey::Provider(address)) {
        Some(Object::Provider(p)) => Ok(Json(provider_view(p))),
        _ => Err(ApiError::not_found("unknown_provider", format!("{address} is not a registered provider"))),
    }
}

async fn get_channel(State(chain): State<Arc<Chain>>, Path(id): Path<String>) -> ApiResult<Json<ChannelView>> {
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError::bad_request("bad_id", format!("channel id must be an integer, got {id:?}")))?;
    let s = chain.state();
    match s.object(&ObjKey::Channel(id)) {
        Some(Object::Channel(c)) => Ok(Json(channel_view(c, s.height.0))),
        _ => Err(ApiError::not_found("unknown_channel", format!("no channel {id}"))),
    }
}

/// Channels the address sends on or receives from (a scan of all channels).
async fn account_channels(
    State(chain): State<Arc<Chain>>,
    Path(address): Path<String>,
) -> ApiResult<Json<Vec<ChannelView>>> {
    let address = parse_address(&address)?;
    let s = chain.state();
    let views = s
        .objects
        .range(ObjKey::Channel(0)..=ObjKey::Channel(u64::MAX))
        .filter_map(|(_, o)| match o {
            Object::Channel(c) if c.sender == address || c.recipient == address => Some(channel_view(c, s.height.0)),
            _ => None,
        })
        .collect();
    Ok(Json(views))
}
