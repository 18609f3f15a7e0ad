//! The behaviours Yuma consensus exists for, through `run_document` (the code path of
//! `tessera incentive epoch`): a cabal below kappa cannot pay its own provider, one above it
//! can; a cheating evaluator is clipped; inactive evaluators lose their say; no weights
//! fall back to stake; permits rotate to the top stakes; the same input gives the same
//! output.

use incentives::run_document;
use serde_json::{json, Value};

/// uids 0..v are evaluators (stake `stakes`), v..v+m providers; `rows[i]` = evaluator i's
/// weights on providers (by provider index).
fn doc(stakes: &[u64], providers: usize, rows: &[Vec<u16>], epochs: usize, params: Value) -> Value {
    let v = stakes.len();
    let n = v + providers;
    let mut alpha = stakes.to_vec();
    alpha.resize(n, 0);
    let weights: Vec<Value> = (0..n)
        .map(|i| match rows.get(i) {
            Some(r) => json!(r.iter().enumerate().map(|(j, w)| json!([v + j, w])).collect::<Vec<_>>()),
            None => json!([]),
        })
        .collect();
    json!({
        "schema": "yuma-ref-input/1",
        "name": "scenario",
        "n": n,
        "params": params,
        "state": {
            "alpha_stake": alpha,
            "validator_permit": (0..n).map(|i| i < v).collect::<Vec<_>>(),
            "last_update": vec![100; n],
            "block_at_registration": vec![1; n],
            "weights": weights,
            "bonds": vec![json!([]); n],
        },
        "epochs": (0..epochs).map(|k| json!({"current_block": 200 + k as u64})).collect::<Vec<_>>(),
    })
}

fn run(d: &Value) -> Value {
    run_document(&d.to_string()).unwrap()
}

fn field(out: &Value, epoch: usize, name: &str) -> Vec<f64> {
    let v = &out["epochs"][epoch]["sparse"][name];
    let arr = if v.is_object() { &v["float"] } else { v };
    arr.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

#[test]
fn a_cabal_below_kappa_cannot_pay_its_own_provider() {
    // Honest evaluators (60 %) rate provider 0; a cabal (40 %) rates only its provider 1.
    let rows = vec![vec![65535, 0], vec![65535, 0], vec![65535, 0], vec![0, 65535], vec![0, 65535]];
    let out = run(&doc(&[20, 20, 20, 20, 20], 2, &rows, 3, json!({})));
    let inc = field(&out, 2, "incentive");
    assert_eq!(inc[6], 0.0, "the cabal's provider is below consensus");
    assert!(inc[5] > 0.99);
    let trust = field(&out, 2, "validator_trust");
    assert!(trust[0] > 0.99 && trust[3] == 0.0, "{trust:?}");
    let divs = field(&out, 2, "dividends");
    assert!(divs[0] > 0.3 && divs[3] < 1e-6, "{divs:?}");
}

#[test]
fn a_cabal_above_kappa_takes_the_consensus() {
    let rows = vec![vec![65535, 0], vec![65535, 0], vec![0, 65535], vec![0, 65535], vec![0, 65535]];
    let out = run(&doc(&[20, 20, 20, 20, 20], 2, &rows, 3, json!({})));
    let inc = field(&out, 2, "incentive");
    assert!(inc[6] > 0.99 && inc[5] == 0.0, "{inc:?}");
}

#[test]
fn a_cheating_evaluator_is_clipped_and_earns_less() {
    // Equal stakes; evaluator 2 inflates provider 1 far above what the others give it.
    let rows = vec![vec![60000, 20000], vec![60000, 20000], vec![20000, 65535]];
    let out = run(&doc(&[100, 100, 100], 2, &rows, 4, json!({"yuma3_enabled": true})));
    let cons = field(&out, 3, "consensus");
    let trust = field(&out, 3, "validator_trust");
    assert!(trust[2] < trust[0], "the cheater's weights are clipped: {trust:?}");
    let divs = field(&out, 3, "dividends");
    assert!(divs[2] < divs[0], "{divs:?}");
    assert!(cons[4] < 0.5, "provider 1's consensus stays at the honest level: {cons:?}");
}

#[test]
fn no_weights_fall_back_to_stake() {
    let out = run(&doc(&[10, 30], 1, &[], 1, json!({})));
    let e = out["epochs"][0]["sparse"]["validator_emission"].as_array().unwrap().clone();
    assert_eq!(e[0].as_u64().unwrap(), 250_000_000);
    assert_eq!(e[1].as_u64().unwrap(), 750_000_000);
    assert_eq!(out["epochs"][0]["sparse"]["server_emission"][2], 0);
}

#[test]
fn inactive_evaluators_lose_their_say() {
    // Evaluator 1 (more stake) last updated long ago: past the activity cutoff, so only
    // evaluator 0's view counts.
    let mut d = doc(&[10, 30], 2, &[vec![65535, 0], vec![0, 65535]], 1, json!({"tempo": 100}));
    // Cutoff = 13889 · 100 / 1000 = 1388 blocks: at block 1500, 1400 is recent, 50 is not.
    d["state"]["last_update"] = json!([1_400, 50, 0, 0]);
    d["epochs"][0]["current_block"] = json!(1_500);
    let out = run(&d);
    assert_eq!(out["epochs"][0]["sparse"]["active"], json!([true, false, false, false]));
    let inc = field(&out, 0, "incentive");
    assert!(inc[2] > 0.99 && inc[3] == 0.0, "{inc:?}");
}

#[test]
fn permits_rotate_to_the_top_stakes() {
    let mut d = doc(&[30, 20, 10], 1, &[vec![1], vec![1], vec![1]], 2, json!({"max_allowed_validators": 2}));
    d["epochs"][1]["alpha_stake"] = json!([5, 20, 30, 0]);
    let out = run(&d);
    assert_eq!(out["epochs"][0]["sparse"]["new_validator_permit"], json!([true, true, false, false]));
    assert_eq!(out["epochs"][1]["sparse"]["new_validator_permit"], json!([false, true, true, false]));
    // Epoch 1 used the permits written by epoch 0: uid 2 had none, so its weights did not count.
    assert_eq!(out["epochs"][1]["sparse"]["validator_permit_used"], json!([true, true, false, false]));
}

#[test]
fn the_same_input_gives_the_same_output() {
    let rows = vec![vec![100, 7, 65535], vec![3, 65535, 9], vec![65535, 1, 1]];
    let d = doc(&[7, 11, 13], 3, &rows, 5, json!({"yuma3_enabled": true, "liquid_alpha_enabled": true}));
    assert_eq!(run(&d), run(&d));
}

#[test]
fn malformed_documents_are_errors_not_panics() {
    let good = doc(&[10, 30], 1, &[vec![1], vec![2]], 1, json!({}));
    let cases: Vec<(Value, &str)> = vec![
        (
            {
                let mut d = good.clone();
                d["schema"] = json!("other/1");
                d
            },
            "schema",
        ),
        (
            {
                let mut d = good.clone();
                d["state"]["last_update"] = json!([1, 2]);
                d
            },
            "last_update",
        ),
        (
            {
                let mut d = good.clone();
                d["state"]["weights"][0] = json!([[2, 1], [2, 5]]);
                d
            },
            "twice",
        ),
        (
            {
                let mut d = good.clone();
                d["epochs"][0]["set_weights"] = json!([{"uid": 9, "block": 1, "row": [[0, 1]]}]);
                d
            },
            "uid 9",
        ),
        (
            {
                let mut d = good.clone();
                d["params"]["no_such"] = json!(1);
                d
            },
            "no_such",
        ),
        (
            {
                let mut d = good.clone();
                d["epochs"][0]["alpha_stake"] = json!([1]);
                d
            },
            "alpha_stake",
        ),
    ];
    for (d, needle) in cases {
        let e = run_document(&d.to_string()).expect_err(needle).to_string();
        assert!(e.contains(needle), "{needle}: {e}");
    }
    assert!(run_document("{").is_err());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]

    /// Any parameter values (including tempo 0, kappa 0, no permits, odd alpha ranges) run
    /// without a panic and give proportions that stay in range.
    #[test]
    fn any_parameters_run(kappa in 0u16.., penalty in 0u16.., bma in 0u64..2_000_000, tempo in 0u16..,
                          validators in 0u16..4, y3 in proptest::bool::ANY, la in proptest::bool::ANY,
                          lo in 0u16.., hi in 0u16.., steep in proptest::num::i16::ANY, emission in 0u64..) {
        let d = doc(&[5, 0, 9], 2, &[vec![3, 0], vec![65535, 1], vec![0, 0]], 3, json!({
            "kappa": kappa, "bonds_penalty": penalty, "bonds_moving_average": bma, "tempo": tempo,
            "max_allowed_validators": validators, "yuma3_enabled": y3, "liquid_alpha_enabled": la,
            "alpha_low": lo, "alpha_high": hi, "alpha_sigmoid_steepness": steep, "rao_emission": emission,
        }));
        let out = run(&d);
        for k in 0..3 {
            for f in ["incentive_u16", "dividends_u16", "consensus_u16"] {
                let v = &out["epochs"][k]["sparse"][f];
                proptest::prop_assert!(v.as_array().unwrap().iter().all(|x| x.as_u64().unwrap() <= 65_535));
            }
        }
    }
}
