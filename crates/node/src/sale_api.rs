//! Read endpoints of the sale, the compliance registry and vesting: offerings with their
//! tranches and settlement, commitments with their allocation, raise reports, entities,
//! grants and lots, and the cap table (JSON or CSV). Writes go through `POST /v1/txs`.

use crate::api::{ApiError, ApiResult};
use crate::chain::Chain;
use api_types::*;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use ledger::objects::{Commitment, Grant, GrantSource, ObjKey, Object, Offering, Rule};
use ledger::sale::allocate;
use ledger::{vesting, LockKind, State as LedgerState};
use primitives::sale::Mechanism;
use primitives::{Address, Amount, AssetId, EntityId};
use std::collections::BTreeMap;
use std::sync::Arc;

pub fn routes() -> Router<Arc<Chain>> {
    Router::new()
        .route("/v1/offerings", get(list_offerings))
        .route("/v1/offerings/{id}", get(get_offering))
        .route("/v1/offerings/{id}/report", get(offering_report))
        .route("/v1/offerings/{id}/tranches/{tranche}/commitments/{entity}", get(get_commitment))
        .route("/v1/entities/{id}", get(get_entity))
        .route("/v1/grants/{id}", get(get_grant))
        .route("/v1/accounts/{address}/grants", get(account_grants))
        .route("/v1/reports/captable", get(cap_table))
        .route("/v1/reports/audit", get(audit))
}

fn parse_u64(s: &str, what: &'static str) -> ApiResult<u64> {
    s.parse().map_err(|_| ApiError::bad_request("bad_id", format!("{what} must be an unsigned integer, got {s:?}")))
}

fn load_offering(state: &LedgerState, id: u64) -> ApiResult<Offering> {
    match state.object(&ObjKey::Offering(id)) {
        Some(Object::Offering(o)) => Ok(o.clone()),
        _ => Err(ApiError::not_found("unknown_offering", format!("no offering {id}"))),
    }
}

fn rule_view(rule: &Rule, mech: &Mechanism) -> (String, Option<Amount>) {
    let fixed = match mech {
        Mechanism::FixedPrice { price, .. } => Some(*price),
        _ => None,
    };
    match rule {
        Rule::RefundAll => ("refund_all".into(), None),
        Rule::ProRata { .. } => ("pro_rata".into(), fixed),
        Rule::WaterFill { .. } => ("water_fill".into(), fixed),
        Rule::AsCommitted => ("as_committed".into(), None),
        Rule::Clearing { price, .. } => ("clearing".into(), Some(*price)),
        Rule::Dutch { price, .. } => ("dutch".into(), Some(*price)),
    }
}

fn offering_view(state: &LedgerState, o: &Offering) -> OfferingView {
    let now = state.last_timestamp_ms;
    let tranches = o
        .config
        .tranches
        .iter()
        .enumerate()
        .map(|(i, cfg)| {
            let ts = match state.object(&ObjKey::Tranche(o.id, i as u16)) {
                Some(Object::Tranche(t)) => t.clone(),
                _ => Default::default(),
            };
            let current_price = match cfg.mechanism {
                Mechanism::Dutch { start_price, reserve } => Some(match ts.dutch_end {
                    Some((_, p)) => p,
                    None => ledger::alloc::dutch_price(start_price, reserve, cfg.opens_ms, cfg.closes_ms, now),
                }),
                _ => None,
            };
            TrancheView {
                index: i as u16,
                name: cfg.name.clone(),
                exemption: cfg.exemption.name().into(),
                mechanism: cfg.mechanism.name().into(),
                supply: cfg.supply,
                escrowed: ts.escrowed,
                demand: ts.demand,
                commitments: ts.commitments,
                current_price,
                settlement: ts.settlement.as_ref().map(|s| {
                    let (rule, price) = rule_view(&s.rule, &cfg.mechanism);
                    SettlementView { rule, price, tokens_sold: s.tokens_sold, proceeds: s.proceeds, refunds: s.refunds }
                }),
            }
        })
        .collect();
    OfferingView {
        id: o.id,
        creator: o.creator,
        escrow: o.escrow,
        status: o.status.name().into(),
        tokens_sold: o.tokens_sold,
        proceeds: o.proceeds,
        proceeds_withdrawn: o.proceeds_withdrawn,
        tokens_returned: o.tokens_returned,
        created_ms: o.created_ms,
        settled_ms: o.settled_ms,
        config: o.config.clone(),
        tranches,
    }
}

async fn list_offerings(State(chain): State<Arc<Chain>>) -> Json<Vec<OfferingView>> {
    let s = chain.state();
    let views = s
        .objects
        .range(ObjKey::Offering(0)..=ObjKey::Offering(u64::MAX))
        .filter_map(|(_, o)| match o {
            Object::Offering(o) => Some(offering_view(&s, o)),
            _ => None,
        })
        .collect();
    Json(views)
}

async fn get_offering(State(chain): State<Arc<Chain>>, Path(id): Path<String>) -> ApiResult<Json<OfferingView>> {
    let id = parse_u64(&id, "offering id")?;
    let s = chain.state();
    let o = load_offering(&s, id)?;
    Ok(Json(offering_view(&s, &o)))
}

/// What a claim of `c` delivers, once the tranche is settled.
fn allocation(state: &LedgerState, o: &Offering, tranche: u16, c: &Commitment) -> Option<AllocationView> {
    let Some(Object::Tranche(ts)) = state.object(&ObjKey::Tranche(o.id, tranche)) else {
        return None;
    };
    let s = ts.settlement.as_ref()?;
    let cfg = o.config.tranches.get(usize::from(tranche))?;
    let f = allocate(&s.rule, cfg, o.config.price_per, c);
    Some(AllocationView { tokens: f.tokens, paid: f.paid, refund: Amount(c.escrow.0 - f.paid.0) })
}

async fn get_commitment(
    State(chain): State<Arc<Chain>>,
    Path((id, tranche, entity)): Path<(String, String, String)>,
) -> ApiResult<Json<CommitmentView>> {
    let id = parse_u64(&id, "offering id")?;
    let tranche: u16 = tranche.parse().map_err(|_| ApiError::bad_request("bad_id", "tranche must be 0-65535"))?;
    let entity: EntityId = entity.parse().map_err(|e: String| ApiError::bad_request("bad_entity", e))?;
    let s = chain.state();
    let o = load_offering(&s, id)?;
    let Some(Object::Commitment(c)) = s.object(&ObjKey::Commitment(id, tranche, entity)) else {
        return Err(ApiError::not_found(
            "no_commitment",
            format!("entity {entity} has no commitment in {id}/{tranche}"),
        ));
    };
    Ok(Json(CommitmentView {
        offering: id,
        tranche,
        entity,
        wallet: c.wallet,
        escrow: c.escrow,
        price: c.price,
        quantity: c.quantity,
        claimed: c.claimed,
        allocation: allocation(&s, &o, tranche, c),
    }))
}

async fn offering_report(State(chain): State<Arc<Chain>>, Path(id): Path<String>) -> ApiResult<Json<OfferingReport>> {
    let id = parse_u64(&id, "offering id")?;
    let s = chain.state();
    let o = load_offering(&s, id)?;
    let mut rows: BTreeMap<(u16, String), RaiseRow> = BTreeMap::new();
    for t in 0..o.config.tranches.len() as u16 {
        let (lo, hi) = ObjKey::commitments_of(id, t);
        for (key, obj) in s.objects.range(lo..=hi) {
            let (ObjKey::Commitment(_, _, entity), Object::Commitment(c)) = (key, obj) else { continue };
            let jurisdiction = match s.object(&ObjKey::Entity(*entity)) {
                Some(Object::Entity(e)) => e.attestation.jurisdiction.to_string(),
                _ => "??".into(),
            };
            let row = rows.entry((t, jurisdiction.clone())).or_insert_with(|| RaiseRow {
                tranche: t,
                jurisdiction,
                entities: 0,
                committed: Amount::ZERO,
                tokens: Amount::ZERO,
                paid: Amount::ZERO,
                refunded: Amount::ZERO,
            });
            row.entities += 1;
            row.committed.0 += c.escrow.0;
            if let Some(a) = allocation(&s, &o, t, c) {
                row.tokens.0 += a.tokens.0;
                row.paid.0 += a.paid.0;
                row.refunded.0 += a.refund.0;
            }
        }
    }
    Ok(Json(OfferingReport { offering: id, status: o.status.name().into(), rows: rows.into_values().collect() }))
}

async fn get_entity(State(chain): State<Arc<Chain>>, Path(id): Path<String>) -> ApiResult<Json<EntityView>> {
    let id: EntityId = id.parse().map_err(|e: String| ApiError::bad_request("bad_entity", e))?;
    let s = chain.state();
    match s.object(&ObjKey::Entity(id)) {
        Some(Object::Entity(e)) => Ok(Json(EntityView {
            id,
            attestation: e.attestation.clone(),
            revoked: e.revoked,
            wallets: e.wallets.clone(),
            updated_ms: e.updated_ms,
        })),
        _ => Err(ApiError::not_found("unknown_entity", format!("no entity {id}"))),
    }
}

fn grant_view(now_ms: u64, g: &Grant) -> GrantView {
    let vested = match g.revoked_ms {
        Some(_) => g.total,
        None => vesting::vested(&g.schedule, g.total, now_ms),
    };
    GrantView {
        id: g.id,
        source: match g.source {
            GrantSource::Grant => "grant".into(),
            GrantSource::Sale { offering, tranche } => format!("sale:{offering}:{tranche}"),
        },
        grantor: g.grantor,
        beneficiary: g.beneficiary,
        asset: g.asset,
        total: g.total,
        vested,
        released: g.released,
        revocable: g.revocable,
        revoked_ms: g.revoked_ms,
        fully_vested_ms: vesting::end_ms(&g.schedule),
        schedule: g.schedule.clone(),
    }
}

async fn get_grant(State(chain): State<Arc<Chain>>, Path(id): Path<String>) -> ApiResult<Json<GrantView>> {
    let id = parse_u64(&id, "grant id")?;
    let s = chain.state();
    match s.object(&ObjKey::Grant(id)) {
        Some(Object::Grant(g)) => Ok(Json(grant_view(s.last_timestamp_ms, g))),
        _ => Err(ApiError::not_found("unknown_grant", format!("no grant {id}"))),
    }
}

/// The grants and sale lots still locked on an account (from its locks).
async fn account_grants(
    State(chain): State<Arc<Chain>>,
    Path(address): Path<String>,
) -> ApiResult<Json<Vec<GrantView>>> {
    let address: Address =
        address.parse().map_err(|e: primitives::AddressError| ApiError::bad_request("bad_address", e.to_string()))?;
    let s = chain.state();
    let Some(acct) = s.account(&address) else { return Ok(Json(Vec::new())) };
    let views = acct
        .locks
        .iter()
        .filter(|l| matches!(l.kind, LockKind::Vesting | LockKind::SaleLockup))
        .filter_map(|l| match s.object(&ObjKey::Grant(l.reference)) {
            Some(Object::Grant(g)) => Some(grant_view(s.last_timestamp_ms, g)),
            _ => None,
        })
        .collect();
    Ok(Json(views))
}

#[derive(serde::Deserialize)]
struct CapTableQuery {
    asset: Option<String>,
    format: Option<String>,
}

/// Holders of an asset, largest first (ties by address): balance, locked, vested, and the
/// holder's entity class and jurisdiction. `format=csv` for a spreadsheet.
async fn cap_table(State(chain): State<Arc<Chain>>, Query(q): Query<CapTableQuery>) -> ApiResult<Response> {
    let asset = match q.asset.as_deref() {
        None => AssetId::TSR,
        Some(a) => {
            a.parse().map_err(|e: primitives::AssetIdError| ApiError::bad_request("bad_asset", e.to_string()))?
        }
    };
    let s = chain.state();
    if s.asset(&asset).is_none() {
        return Err(ApiError::not_found("unknown_asset", format!("no asset {asset}")));
    }
    let now = s.last_timestamp_ms;
    let mut rows: Vec<CapTableRow> = s
        .accounts
        .iter()
        .filter(|(_, a)| !a.balance(asset).is_zero())
        .map(|(addr, a)| {
            let mut unvested = 0u128;
            for l in a.locks.iter().filter(|l| l.asset == asset) {
                if let Some(Object::Grant(g)) = s.object(&ObjKey::Grant(l.reference)) {
                    if matches!(l.kind, LockKind::Vesting | LockKind::SaleLockup) {
                        let v = grant_view(now, g);
                        unvested += v.total.0 - v.vested.0;
                    }
                }
            }
            let entity = a.entity.and_then(|e| match s.object(&ObjKey::Entity(e)) {
                Some(Object::Entity(r)) => {
                    Some((e, r.attestation.class.name().to_string(), r.attestation.jurisdiction.to_string()))
                }
                _ => None,
            });
            CapTableRow {
                address: *addr,
                balance: a.balance(asset),
                locked: a.locked(asset),
                vested: Amount(a.balance(asset).0.saturating_sub(unvested)),
                entity: entity.as_ref().map(|e| e.0),
                class: entity.as_ref().map(|e| e.1.clone()),
                jurisdiction: entity.map(|e| e.2),
            }
        })
        .collect();
    drop(s);
    rows.sort_by(|a, b| b.balance.cmp(&a.balance).then(a.address.as_bytes().cmp(b.address.as_bytes())));
    if q.format.as_deref() == Some("csv") {
        let mut csv = String::from("address,balance,locked,vested,entity,class,jurisdiction\n");
        for r in &rows {
            csv.push_str(&format!(
                "{},{},{},{},{},{},{}\n",
                r.address,
                r.balance,
                r.locked,
                r.vested,
                r.entity.map(|e| e.to_string()).unwrap_or_default(),
                r.class.clone().unwrap_or_default(),
                r.jurisdiction.clone().unwrap_or_default()
            ));
        }
        return Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response());
    }
    Ok(Json(rows).into_response())
}

/// Most blocks one audit query may scan.
pub const AUDIT_BLOCKS_MAX: u64 = 10_000;

#[derive(serde::Deserialize)]
struct AuditQuery {
    from: Option<u64>,
    to: Option<u64>,
    format: Option<String>,
}

/// The subject of an audited action, or `None` if the action is not audited.
fn audit_subject(action: &primitives::Action, rejected_code: Option<&str>) -> Option<String> {
    use primitives::Action as A;
    Some(match action {
        A::AttestEntity { entity, attestation } => format!(
            "entity {entity} {} {}{} screening {:?} ({})",
            attestation.jurisdiction,
            attestation.class.name(),
            if attestation.us_person { " us_person" } else { "" },
            attestation.screening,
            attestation.screening_list
        ),
        A::BindWallet { entity, wallet } => format!("entity {entity} wallet {wallet}"),
        A::UnbindWallet { wallet } => format!("wallet {wallet}"),
        A::RevokeEntity { entity } => format!("entity {entity}"),
        A::CreateOffering { config } => format!("offering {:?}", config.name),
        A::Commit { offering, tranche, amount } => format!("offering {offering}/{tranche} amount {amount}"),
        A::Bid { offering, tranche, price, quantity } => {
            format!("offering {offering}/{tranche} bid {quantity} at {price}")
        }
        A::CancelCommitment { offering, tranche } => format!("offering {offering}/{tranche}"),
        A::FinalizeOffering { offering } | A::WithdrawProceeds { offering } => format!("offering {offering}"),
        A::Claim { offering, tranche, entity } => format!("offering {offering}/{tranche} entity {entity}"),
        A::CreateGrant { beneficiary, asset, amount, revocable, .. } => {
            format!("to {beneficiary} {amount} {asset}{}", if *revocable { " revocable" } else { "" })
        }
        A::RevokeGrant { grant } | A::ReleaseVested { grant } => format!("grant {grant}"),
        A::Transfer { to, asset, amount }
            if matches!(rejected_code, Some("locked" | "recipient_ineligible" | "sanctioned_party")) =>
        {
            format!("to {to} {amount} {asset}")
        }
        _ => return None,
    })
}

/// The audit trail of compliance decisions in blocks `from..=to` (default: the last
/// 1,000 blocks), from the stored receipts. `format=csv` for a spreadsheet.
async fn audit(State(chain): State<Arc<Chain>>, Query(q): Query<AuditQuery>) -> ApiResult<Response> {
    let tip = chain.state().height.0;
    let to = q.to.unwrap_or(tip).min(tip);
    let from = q.from.unwrap_or(to.saturating_sub(999)).max(1);
    if from > to + 1 {
        return Err(ApiError::bad_request("bad_range", format!("from {from} is after to {to}")));
    }
    if to.saturating_sub(from) >= AUDIT_BLOCKS_MAX {
        return Err(ApiError::bad_request(
            "range_too_large",
            format!("at most {AUDIT_BLOCKS_MAX} blocks per query; page with from/to"),
        ));
    }
    let c = chain.clone();
    let rows = tokio::task::spawn_blocking(move || -> Result<Vec<AuditRow>, storage::StoreError> {
        let mut rows = Vec::new();
        c.blocks().for_each_in(primitives::Height(from), primitives::Height(to), |stored| {
            let h = &stored.block.header;
            for (stx, r) in stored.block.txs.iter().zip(&stored.receipts) {
                let (status, code) = match r.outcome {
                    primitives::Outcome::Success => ("success", None),
                    primitives::Outcome::Rejected(code) => ("rejected", Some(code.code())),
                };
                if let Some(subject) = audit_subject(&stx.tx.action, code) {
                    rows.push(AuditRow {
                        height: h.height,
                        timestamp_ms: h.timestamp_ms,
                        tx_hash: r.tx_id,
                        signer: stx.tx.signer,
                        action: stx.tx.action.kind().into(),
                        subject,
                        status: status.into(),
                        code: code.map(str::to_string),
                    });
                }
            }
            Ok::<_, storage::StoreError>(())
        })?;
        Ok(rows)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    if q.format.as_deref() == Some("csv") {
        let mut csv = String::from("height,timestamp_ms,tx_hash,signer,action,subject,status,code\n");
        for r in &rows {
            csv.push_str(&format!(
                "{},{},{},{},{},\"{}\",{},{}\n",
                r.height.0,
                r.timestamp_ms,
                r.tx_hash,
                r.signer,
                r.action,
                r.subject.replace('"', "\"\""),
                r.status,
                r.code.clone().unwrap_or_default()
            ));
        }
        return Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response());
    }
    Ok(Json(rows).into_response())
}
