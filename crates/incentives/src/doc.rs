//! The `yuma-ref-input/1` and `yuma-ref-expected/1` documents of shared/design/INCENTIVES-IO.md:
//! a subnet's state, its parameters and a sequence of epochs in; every intermediate and output
//! of each epoch out (under `sparse`, the production path Tessera implements).

use serde::Deserialize;
use serde_json::{json, Value};

use crate::epoch::{max_upscale, run_epoch, BondRowAction, EpochResult, Params, Row, SubnetState};
use crate::fixed::I32F32;

#[derive(Debug, thiserror::Error)]
pub enum DocError {
    #[error("input is not valid JSON for yuma-ref-input/1: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unsupported schema {0:?}: expected \"yuma-ref-input/1\"")]
    Schema(String),
    #[error("{0}")]
    Invalid(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputDoc {
    schema: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    #[allow(dead_code)]
    description: String,
    n: u16,
    #[serde(default)]
    params: ParamsDoc,
    state: StateDoc,
    #[serde(default)]
    epochs: Vec<EpochDoc>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ParamsDoc {
    kappa: Option<u16>,
    bonds_penalty: Option<u16>,
    bonds_moving_average: Option<u64>,
    tempo: Option<u16>,
    activity_cutoff_factor_milli: Option<u32>,
    max_allowed_validators: Option<u16>,
    stake_threshold: Option<u64>,
    yuma3_enabled: Option<bool>,
    liquid_alpha_enabled: Option<bool>,
    alpha_low: Option<u16>,
    alpha_high: Option<u16>,
    alpha_sigmoid_steepness: Option<i16>,
    tao_weight: Option<u64>,
    rao_emission: Option<u64>,
    commit_reveal_enabled: Option<bool>,
    owner_uid: Option<u16>,
}

impl ParamsDoc {
    fn into_params(self) -> Params {
        let d = Params::default();
        Params {
            kappa: self.kappa.unwrap_or(d.kappa),
            bonds_penalty: self.bonds_penalty.unwrap_or(d.bonds_penalty),
            bonds_moving_average: self.bonds_moving_average.unwrap_or(d.bonds_moving_average),
            tempo: self.tempo.unwrap_or(d.tempo),
            activity_cutoff_factor_milli: self.activity_cutoff_factor_milli.unwrap_or(d.activity_cutoff_factor_milli),
            max_allowed_validators: self.max_allowed_validators.unwrap_or(d.max_allowed_validators),
            stake_threshold: self.stake_threshold.unwrap_or(d.stake_threshold),
            yuma3_enabled: self.yuma3_enabled.unwrap_or(d.yuma3_enabled),
            liquid_alpha_enabled: self.liquid_alpha_enabled.unwrap_or(d.liquid_alpha_enabled),
            alpha_low: self.alpha_low.unwrap_or(d.alpha_low),
            alpha_high: self.alpha_high.unwrap_or(d.alpha_high),
            alpha_sigmoid_steepness: self.alpha_sigmoid_steepness.unwrap_or(d.alpha_sigmoid_steepness),
            tao_weight: self.tao_weight.unwrap_or(d.tao_weight),
            rao_emission: self.rao_emission.unwrap_or(d.rao_emission),
            commit_reveal_enabled: self.commit_reveal_enabled.unwrap_or(d.commit_reveal_enabled),
            owner_uid: self.owner_uid,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateDoc {
    alpha_stake: Vec<u64>,
    tao_stake: Option<Vec<u64>>,
    validator_permit: Vec<bool>,
    last_update: Vec<u64>,
    block_at_registration: Vec<u64>,
    weights: Vec<Row<u16>>,
    bonds: Vec<Row<u16>>,
    #[serde(default)]
    last_mechanism_step_block: u64,
    commit_block: Option<Vec<Option<u64>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EpochDoc {
    current_block: u64,
    #[serde(default)]
    replace_neuron: Vec<ReplaceNeuron>,
    reset_bonds: Option<Vec<u16>>,
    validator_permit: Option<Vec<bool>>,
    commit_block: Option<Vec<Option<u64>>>,
    weights: Option<Vec<Row<u16>>>,
    last_update: Option<Vec<u64>>,
    alpha_stake: Option<Vec<u64>>,
    tao_stake: Option<Vec<u64>>,
    block_at_registration: Option<Vec<u64>>,
    last_mechanism_step_block: Option<u64>,
    #[serde(default)]
    set_weights: Vec<SetWeights>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplaceNeuron {
    uid: u16,
    block: u64,
    alpha_stake: Option<u64>,
    tao_stake: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetWeights {
    uid: u16,
    block: u64,
    row: Row<u16>,
}

fn check_len<T>(field: &str, v: &[T], n: usize) -> Result<(), DocError> {
    if v.len() != n {
        return Err(DocError::Invalid(format!("{field} has {} entries, expected n = {n}", v.len())));
    }
    Ok(())
}

fn check_uid(field: &str, uid: u16, n: usize) -> Result<usize, DocError> {
    if uid as usize >= n {
        return Err(DocError::Invalid(format!("{field}: uid {uid} is not below n = {n}")));
    }
    Ok(uid as usize)
}

/// Runs every epoch of an input document and returns the output document.
pub fn run_document(input: &str) -> Result<Value, DocError> {
    let doc: InputDoc = serde_json::from_str(input)?;
    if doc.schema != "yuma-ref-input/1" {
        return Err(DocError::Schema(doc.schema));
    }
    let n = doc.n as usize;
    let params = doc.params.into_params();
    let st = doc.state;
    let mut state = SubnetState {
        tao_stake: st.tao_stake.unwrap_or_else(|| vec![0; n]),
        alpha_stake: st.alpha_stake,
        validator_permit: st.validator_permit,
        last_update: st.last_update,
        block_at_registration: st.block_at_registration,
        weights: st.weights,
        bonds: st.bonds,
        last_mechanism_step_block: st.last_mechanism_step_block,
        commit_block: st.commit_block.unwrap_or_else(|| vec![None; n]),
    };
    check_len("state.alpha_stake", &state.alpha_stake, n)?;
    state.check().map_err(|e| DocError::Invalid(format!("state: {e}")))?;

    let mut epochs = Vec::with_capacity(doc.epochs.len());
    for (k, e) in doc.epochs.into_iter().enumerate() {
        let ctx = |msg: String| DocError::Invalid(format!("epochs[{k}]: {msg}"));
        for r in &e.replace_neuron {
            let uid = check_uid("replace_neuron", r.uid, n).map_err(|e| ctx(e.to_string()))?;
            state.block_at_registration[uid] = r.block;
            state.last_update[uid] = r.block;
            state.weights[uid].clear();
            state.bonds[uid].clear();
            for row in state.weights.iter_mut() {
                for cell in row.iter_mut().filter(|c| c.0 == r.uid) {
                    cell.1 = 0;
                }
            }
            state.validator_permit[uid] = false;
            state.alpha_stake[uid] = r.alpha_stake.unwrap_or(0);
            state.tao_stake[uid] = r.tao_stake.unwrap_or(0);
        }
        if let Some(uids) = &e.reset_bonds {
            for &uid in uids {
                for row in state.bonds.iter_mut() {
                    row.retain(|c| c.0 != uid);
                }
            }
        }
        if let Some(v) = e.validator_permit {
            state.validator_permit = v;
        }
        if let Some(v) = e.commit_block {
            state.commit_block = v;
        }
        if let Some(v) = e.weights {
            state.weights = v;
        }
        if let Some(v) = e.last_update {
            state.last_update = v;
        }
        if let Some(v) = e.alpha_stake {
            state.alpha_stake = v;
        }
        if let Some(v) = e.tao_stake {
            state.tao_stake = v;
        }
        if let Some(v) = e.block_at_registration {
            state.block_at_registration = v;
        }
        if let Some(v) = e.last_mechanism_step_block {
            state.last_mechanism_step_block = v;
        }
        let mut applied = Vec::with_capacity(e.set_weights.len());
        for sw in &e.set_weights {
            let uid = check_uid("set_weights", sw.uid, n).map_err(|e| ctx(e.to_string()))?;
            let values: Vec<u16> = sw.row.iter().map(|c| c.1).collect();
            let stored: Row<u16> = sw.row.iter().map(|c| c.0).zip(max_upscale(&values)).collect();
            applied.push(json!({"uid": sw.uid, "block": sw.block, "stored_row": stored}));
            state.weights[uid] = stored;
            state.last_update[uid] = sw.block;
        }
        check_len("alpha_stake", &state.alpha_stake, n).map_err(|e| ctx(e.to_string()))?;
        state.check().map_err(ctx)?;

        let result = run_epoch(&params, &state, e.current_block);
        result.persist(&mut state);
        epochs.push(json!({
            "epoch_index": k,
            "current_block": e.current_block,
            "activity_cutoff_blocks": result.activity_cutoff_blocks,
            "applied_set_weights": applied,
            "sparse": outputs(&result),
        }));
    }
    Ok(json!({
        "schema": "yuma-ref-expected/1",
        "name": doc.name,
        "reference": {
            "subtensor_commit": "14bc6f9f",
            "functions": "epoch_mechanism (production sparse path), reimplemented by Tessera's incentives crate",
            "fixed_point_crate": "substrate-fixed 0.6.0 semantics (I32F32, I64F64, I96F32) on raw integers",
        },
        "n": doc.n,
        "epochs": epochs,
    }))
}

fn f(v: &[I32F32]) -> Value {
    json!({
        "bits": v.iter().map(|x| x.bits()).collect::<Vec<_>>(),
        "float": v.iter().map(|x| x.to_f64()).collect::<Vec<_>>(),
    })
}

fn u16s(v: &[I32F32]) -> Vec<u16> {
    v.iter().map(|x| x.to_u16_proportion()).collect()
}

fn canonical(rows: &[Row<u16>]) -> Vec<Row<u16>> {
    rows.iter()
        .map(|row| {
            let mut r: Row<u16> = row.iter().copied().filter(|c| c.1 != 0).collect();
            r.sort_unstable_by_key(|c| c.0);
            r
        })
        .collect()
}

/// The `OUTPUTS` object of one epoch.
pub fn outputs(r: &EpochResult) -> Value {
    let ema: Vec<Vec<Value>> = r
        .ema_bonds
        .iter()
        .map(|(cols, vals)| {
            let mut cells: Vec<(u16, I32F32)> =
                cols.iter().copied().zip(vals.iter().copied()).filter(|c| c.1 != I32F32::ZERO).collect();
            cells.sort_unstable_by_key(|c| c.0);
            cells.into_iter().map(|(j, v)| json!([j, v.bits(), v.to_f64()])).collect()
        })
        .collect();
    json!({
        "raw_stake": r.raw_stake,
        "active": r.active,
        "stake": f(&r.stake),
        "stake_u16": u16s(&r.stake),
        "active_stake": f(&r.active_stake),
        "validator_permit_used": r.validator_permit_used,
        "new_validator_permit": r.new_validator_permit,
        "consensus": f(&r.consensus),
        "consensus_u16": u16s(&r.consensus),
        "validator_trust": f(&r.validator_trust),
        "validator_trust_u16": u16s(&r.validator_trust),
        "incentive": f(&r.incentive),
        "incentive_u16": u16s(&r.incentive),
        "dividends": f(&r.dividends),
        "dividends_u16": u16s(&r.dividends),
        "normalized_server_emission": f(&r.normalized_server_emission),
        "normalized_validator_emission": f(&r.normalized_validator_emission),
        "normalized_combined_emission": f(&r.normalized_combined_emission),
        "server_emission": r.server_emission,
        "validator_emission": r.validator_emission,
        "combined_emission": r.combined_emission,
        "bond_row_action": r.bond_row_action.iter().map(|a| match a {
            BondRowAction::Set => "set",
            BondRowAction::Clear => "clear",
        }).collect::<Vec<_>>(),
        "bonds_next": canonical(&r.bonds_next),
        "ema_bonds": ema,
    })
}
