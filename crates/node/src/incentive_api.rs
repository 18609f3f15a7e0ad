//! Read endpoints of the incentive network (the metagraph) and of staking. Writes go through
//! `POST /v1/txs`.

use crate::api::{ApiError, ApiResult};
use crate::chain::Chain;
use api_types::{DelegationView, NetworkView, NeuronView, StakeView, UnbondingView};
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use ledger::incentive::{current_burn, incentive_pool_account, share_value, subnet_record};
use ledger::objects::{NeuronRecord, ObjKey, Object, StakePool};
use ledger::LockKind;
use primitives::incentive::{block_emission, IncentiveParams};
use primitives::{Address, Amount, AssetId};
use std::sync::Arc;

pub fn routes() -> Router<Arc<Chain>> {
    Router::new()
        .route("/v1/network", get(network))
        .route("/v1/network/neurons/{uid}", get(neuron))
        .route("/v1/accounts/{address}/stake", get(account_stake))
}

fn params(s: &ledger::State) -> ApiResult<IncentiveParams> {
    s.params.incentives.clone().ok_or_else(|| {
        ApiError::not_found("incentives_disabled", "this chain's genesis has no [incentives] section".to_string())
    })
}

fn pool_of(s: &ledger::State, who: &Address) -> Option<StakePool> {
    match s.object(&ObjKey::StakePool(*who)) {
        Some(Object::StakePool(p)) => Some(p.clone()),
        _ => None,
    }
}

fn proportion(v: u16) -> f64 {
    (v as f64 / 65_535.0 * 1e6).round() / 1e6
}

fn neuron_view(s: &ledger::State, p: &IncentiveParams, nr: &NeuronRecord, detail: bool) -> NeuronView {
    let pool = pool_of(s, &nr.hotkey);
    let is_provider = matches!(s.object(&ObjKey::Provider(nr.hotkey)), Some(Object::Provider(_)));
    let role = if nr.validator_permit {
        "evaluator"
    } else if is_provider {
        "provider"
    } else {
        "neuron"
    };
    NeuronView {
        uid: nr.uid,
        hotkey: nr.hotkey,
        role: role.into(),
        validator_permit: nr.validator_permit,
        active: nr.active,
        immune: s.height.0.saturating_sub(nr.registered_height) < p.immunity_period,
        stake: pool.as_ref().map_or(Amount::ZERO, |pl| pl.total),
        take_bps: pool.as_ref().map_or(0, |pl| pl.take_bps),
        stake_weight: proportion(nr.stake_weight),
        validator_trust: proportion(nr.validator_trust),
        consensus: proportion(nr.consensus),
        incentive: proportion(nr.incentive),
        dividends: proportion(nr.dividends),
        emission: nr.emission,
        last_incentive_paid: nr.last_incentive_paid,
        last_dividends_paid: nr.last_dividends_paid,
        registered_height: nr.registered_height,
        last_update: nr.last_update,
        weights: detail.then(|| nr.weights.clone()),
        bonds: detail.then(|| nr.bonds.clone()),
    }
}

fn neuron_record(s: &ledger::State, uid: u16) -> Option<&NeuronRecord> {
    match s.object(&ObjKey::Neuron(uid)) {
        Some(Object::Neuron(nr)) => Some(nr),
        _ => None,
    }
}

async fn network(State(chain): State<Arc<Chain>>) -> ApiResult<Json<NetworkView>> {
    let s = chain.state();
    let p = params(&s)?;
    let sub = subnet_record(&s, &p);
    let height = s.height.0;
    let tempo = p.tempo as u64;
    Ok(Json(NetworkView {
        height,
        n: sub.n,
        max_uids: p.max_uids,
        max_validators: p.max_validators,
        tempo: p.tempo,
        weights_rate_limit: p.weights_rate_limit,
        commit_reveal: p.commit_reveal,
        reveal_period_epochs: p.reveal_period_epochs,
        epochs: sub.epochs,
        last_epoch_height: sub.last_epoch_height,
        next_epoch_height: (height / tempo + 1) * tempo,
        block_emission: block_emission(p.block_reward_base_units, sub.emitted, p.emission_cap_base_units),
        emitted: sub.emitted,
        emission_cap: p.emission_cap_base_units,
        pool: s.account(&incentive_pool_account()).map_or(Amount::ZERO, |a| a.balance(AssetId::TSR)),
        last_epoch_paid: sub.last_epoch_paid,
        paid: sub.paid,
        registration_fee: current_burn(&p, &sub, height + 1),
        neurons: (0..sub.n).filter_map(|uid| neuron_record(&s, uid)).map(|nr| neuron_view(&s, &p, nr, false)).collect(),
    }))
}

async fn neuron(State(chain): State<Arc<Chain>>, Path(uid): Path<String>) -> ApiResult<Json<NeuronView>> {
    let uid: u16 =
        uid.parse().map_err(|_| ApiError::bad_request("bad_uid", format!("{uid:?} is not a uid (0-65535)")))?;
    let s = chain.state();
    let p = params(&s)?;
    let nr = neuron_record(&s, uid)
        .filter(|_| uid < subnet_record(&s, &p).n)
        .ok_or_else(|| ApiError::not_found("unknown_uid", format!("uid {uid} is not registered")))?;
    Ok(Json(neuron_view(&s, &p, nr, true)))
}

/// Every delegation of `who` with its current value, and its unbonding TSR. This is the
/// stake the gateway's stake-for-access counts.
pub fn stake_of(s: &ledger::State, who: Address) -> StakeView {
    let lo = ObjKey::Delegation(who, Address([0; 32]));
    let hi = ObjKey::Delegation(who, Address([0xff; 32]));
    let mut delegations = Vec::new();
    let mut staked = Amount::ZERO;
    for (k, o) in s.objects.range(lo..=hi) {
        if let (ObjKey::Delegation(_, evaluator), Object::Delegation(d)) = (k, o) {
            let value = pool_of(s, evaluator).map_or(Amount::ZERO, |pl| share_value(&pl, d.shares));
            staked = staked.checked_add(value).unwrap_or(Amount::MAX);
            delegations.push(DelegationView { evaluator: *evaluator, shares: Amount(d.shares), value });
        }
    }
    let unbonding = s
        .account(&who)
        .map(|a| {
            a.locks
                .iter()
                .filter(|l| l.kind == LockKind::Unbonding)
                .map(|l| UnbondingView { amount: l.amount, release_height: l.reference })
                .collect()
        })
        .unwrap_or_default();
    StakeView { address: who, staked, delegations, unbonding }
}

async fn account_stake(State(chain): State<Arc<Chain>>, Path(address): Path<String>) -> ApiResult<Json<StakeView>> {
    let who: Address =
        address.parse().map_err(|e: primitives::AddressError| ApiError::bad_request("bad_address", e.to_string()))?;
    Ok(Json(stake_of(&chain.state(), who)))
}
