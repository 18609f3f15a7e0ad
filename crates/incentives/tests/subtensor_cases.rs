//! subtensor's own epoch unit tests (pallets/subtensor/src/tests/epoch.rs and epoch_logs.rs at
//! commit 14bc6f9f), each translated into a yuma-ref-input/1 document with exactly what the
//! test asserts (tests/subtensor_cases/README.md says how each state was derived). Every case
//! runs through `run_document`, the code path of `tessera incentive epoch`.

use serde_json::Value;
use std::path::Path;

fn cell(out: &Value, epoch: usize, field: &str, i: usize, j: Option<u64>) -> f64 {
    let v = &out["epochs"][epoch]["sparse"][field][i];
    match j {
        // Bond rows in canonical form: a missing cell is a zero bond.
        Some(j) => {
            v.as_array().unwrap().iter().find(|c| c[0].as_u64() == Some(j)).map_or(0.0, |c| c[1].as_f64().unwrap())
        }
        None => v.as_f64().unwrap_or_else(|| panic!("{field}[{i}] is not a number: {v}")),
    }
}

fn operand(out: &Value, v: &Value) -> f64 {
    if let Some(x) = v.as_f64() {
        return x;
    }
    let epoch = v["epoch_index"].as_u64().unwrap() as usize;
    if let Some(fields) = v["sum_of"].as_array() {
        return fields
            .iter()
            .flat_map(|f| out["epochs"][epoch]["sparse"][f.as_str().unwrap()].as_array().unwrap().iter())
            .map(|x| x.as_f64().unwrap())
            .sum();
    }
    cell(out, epoch, v["field"].as_str().unwrap(), v["i"].as_u64().unwrap() as usize, v["j"].as_u64())
}

fn check_case(input: &Path) -> Vec<String> {
    let name = input.file_name().unwrap().to_string_lossy().replace(".input.json", "");
    let expect_path = input.with_file_name(format!("{name}.expect.json"));
    let expect: Value = serde_json::from_str(&std::fs::read_to_string(&expect_path).unwrap()).unwrap();
    let out =
        incentives::run_document(&std::fs::read_to_string(input).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut failures = Vec::new();
    let mut checked = 0;
    for e in expect["epochs"].as_array().unwrap() {
        let k = e["epoch_index"].as_u64().unwrap() as usize;
        let got = &out["epochs"][k]["sparse"];
        assert!(got.is_object(), "{name}: no output for epoch {k}");
        if let Some(exact) = e["exact"].as_object() {
            for (field, want) in exact {
                if field == "bonds_cells" {
                    for c in want.as_array().unwrap() {
                        let (i, j, v) = (c[0].as_u64().unwrap(), c[1].as_u64().unwrap(), c[2].as_f64().unwrap());
                        let g = cell(&out, k, "bonds_next", i as usize, Some(j));
                        checked += 1;
                        if g != v {
                            failures.push(format!("{name} epoch {k}: bond[{i}][{j}] = {g}, subtensor {v}"));
                        }
                    }
                    continue;
                }
                for (i, w) in want.as_array().unwrap().iter().enumerate() {
                    if w.is_null() {
                        continue;
                    }
                    checked += 1;
                    let g = &got[field][i];
                    let same = if field == "bonds_next" {
                        // Canonical rows: compare cell lists.
                        g == w
                    } else {
                        g.as_f64().zip(w.as_f64()).is_some_and(|(a, b)| a == b) || g == w
                    };
                    if !same {
                        failures.push(format!("{name} epoch {k}: {field}[{i}] = {g}, subtensor {w}"));
                    }
                }
            }
        }
        if let Some(approx) = e["approx"].as_object() {
            for (field, spec) in approx {
                let tol = spec["tolerance"].as_f64().unwrap();
                let scale = if field.ends_with("_u16") { 65535.0 } else { 1.0 };
                for (i, w) in spec["values"].as_array().unwrap().iter().enumerate() {
                    let Some(w) = w.as_f64() else { continue };
                    checked += 1;
                    let g = got[field][i].as_f64().unwrap() / scale;
                    if (g - w).abs() > tol {
                        failures
                            .push(format!("{name} epoch {k}: {field}[{i}]/{scale} = {g:.6}, subtensor {w} ± {tol}"));
                    }
                }
            }
        }
    }
    for r in expect["relations"].as_array().into_iter().flatten() {
        let (a, b) = (operand(&out, &r["lhs"]), operand(&out, &r["rhs"]));
        checked += 1;
        let ok = match r["op"].as_str().unwrap() {
            ">" => a > b,
            ">=" => a >= b,
            "<=" => a <= b,
            "==" => a == b,
            "abs_diff_le" => (a - b).abs() <= r["tolerance"].as_f64().unwrap(),
            op => panic!("{name}: unknown relation {op}"),
        };
        if !ok {
            failures.push(format!("{name}: relation {} failed ({a} vs {b})", r));
        }
    }
    assert!(checked > 0, "{name}: the expectation file checks nothing");
    failures
}

#[test]
fn subtensor_epoch_tests_give_the_same_results() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/subtensor_cases");
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".input.json"))
        .collect();
    inputs.sort();
    assert!(inputs.len() >= 19, "expected the translated subtensor cases in {}", dir.display());
    let failures: Vec<String> = inputs.iter().flat_map(|p| check_case(p)).collect();
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}
