//! Scoring rules: pure functions, so they can be tested and documented exactly.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How probes are scored (TOML `[scoring]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scoring {
    pub w_correctness: f64,
    pub w_latency: f64,
    pub w_price: f64,
    /// A call this fast (or faster) gets the full latency score.
    pub latency_target_ms: f64,
    /// Embedding cosine at or below this scores 0 for correctness.
    pub cosine_floor: f64,
    /// Weight of the newest round in the running score.
    pub ema_alpha: f64,
    /// Tokens a chat probe asks for.
    pub max_tokens: u32,
}

impl Default for Scoring {
    fn default() -> Self {
        Scoring {
            w_correctness: 0.6,
            w_latency: 0.2,
            w_price: 0.2,
            latency_target_ms: 2_000.0,
            cosine_floor: 0.95,
            ema_alpha: 0.5,
            max_tokens: 16,
        }
    }
}

/// What one probe measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Probe {
    /// Which probe (model and prompt), to compare prices across providers.
    pub key: String,
    pub ok: bool,
    pub correctness: f64,
    pub latency_ms: f64,
    /// TSR base units the provider billed.
    pub cost: u128,
}

impl Probe {
    pub fn failed(key: String) -> Probe {
        Probe { key, ok: false, correctness: 0.0, latency_ms: f64::INFINITY, cost: u128::MAX }
    }
}

/// Token-by-token agreement: the matching prefix over the longer sequence (1 when both are
/// empty).
pub fn token_agreement(reference: &[u32], got: &[u32]) -> f64 {
    let longest = reference.len().max(got.len());
    if longest == 0 {
        return 1.0;
    }
    let same = reference.iter().zip(got).take_while(|(a, b)| a == b).count();
    same as f64 / longest as f64
}

/// Cosine similarity mapped to 0..1: `floor` → 0, 1 → 1.
pub fn cosine_score(a: &[f32], b: &[f32], floor: f64) -> f64 {
    if a.len() != b.len() || a.is_empty() {
        return 0.0;
    }
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    let cos = dot / (na * nb);
    ((cos - floor) / (1.0 - floor)).clamp(0.0, 1.0)
}

impl Scoring {
    /// One round's score per provider from its probes; the price score compares each probe's
    /// cost with the cheapest successful one of the same key across providers.
    pub fn round(&self, probes: &BTreeMap<u16, Vec<Probe>>) -> BTreeMap<u16, f64> {
        let mut cheapest: BTreeMap<&str, u128> = BTreeMap::new();
        for p in probes.values().flatten().filter(|p| p.ok) {
            let c = cheapest.entry(&p.key).or_insert(u128::MAX);
            *c = (*c).min(p.cost);
        }
        let total = self.w_correctness + self.w_latency + self.w_price;
        let total = if total > 0.0 { total } else { 1.0 };
        probes
            .iter()
            .map(|(&uid, ps)| {
                let scores: Vec<f64> = ps
                    .iter()
                    .map(|p| {
                        if !p.ok {
                            return 0.0;
                        }
                        let latency = (self.latency_target_ms / p.latency_ms.max(1e-3)).min(1.0);
                        let price = match cheapest.get(p.key.as_str()) {
                            Some(&c) if p.cost > 0 => c as f64 / p.cost as f64,
                            _ => 1.0,
                        };
                        (self.w_correctness * p.correctness + self.w_latency * latency + self.w_price * price) / total
                    })
                    .collect();
                let mean = if scores.is_empty() { 0.0 } else { scores.iter().sum::<f64>() / scores.len() as f64 };
                (uid, mean)
            })
            .collect()
    }

    /// The running score after a round.
    pub fn update(&self, previous: Option<f64>, round: f64) -> f64 {
        match previous {
            Some(s) => (1.0 - self.ema_alpha) * s + self.ema_alpha * round,
            None => round,
        }
    }
}

/// Weights for `SetWeights`: the scores max-upscaled to 65535; uids scoring 0 are left out.
pub fn weights(scores: &BTreeMap<u16, f64>) -> (Vec<u16>, Vec<u16>) {
    let max = scores.values().copied().fold(0.0, f64::max);
    if max <= 0.0 {
        return (Vec::new(), Vec::new());
    }
    scores
        .iter()
        .filter(|(_, &s)| s > 0.0)
        .map(|(&uid, &s)| (uid, ((s / max) * 65_535.0).round().clamp(1.0, 65_535.0) as u16))
        .unzip()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(key: &str, correctness: f64, latency_ms: f64, cost: u128) -> Probe {
        Probe { key: key.into(), ok: true, correctness, latency_ms, cost }
    }

    #[test]
    fn agreement_counts_the_matching_prefix() {
        assert_eq!(token_agreement(&[1, 2, 3, 4], &[1, 2, 3, 4]), 1.0);
        assert_eq!(token_agreement(&[1, 2, 3, 4], &[1, 2, 9, 4]), 0.5);
        assert_eq!(token_agreement(&[1, 2], &[1, 2, 3, 4]), 0.5);
        assert_eq!(token_agreement(&[], &[]), 1.0);
    }

    #[test]
    fn cosine_maps_the_floor_to_zero() {
        assert!((cosine_score(&[1.0, 0.0], &[1.0, 0.0], 0.95) - 1.0).abs() < 1e-12);
        assert_eq!(cosine_score(&[1.0, 0.0], &[0.0, 1.0], 0.95), 0.0);
        assert_eq!(cosine_score(&[1.0], &[1.0, 2.0], 0.95), 0.0);
    }

    #[test]
    fn a_correct_cheap_fast_provider_beats_an_expensive_one_and_failures_score_zero() {
        let s = Scoring::default();
        let mut probes = BTreeMap::new();
        probes.insert(1, vec![probe("chat", 1.0, 100.0, 1_000), probe("embed", 1.0, 50.0, 10)]);
        probes.insert(2, vec![probe("chat", 1.0, 100.0, 5_000), probe("embed", 1.0, 50.0, 50)]);
        probes.insert(3, vec![Probe::failed("chat".into()), probe("embed", 0.0, 50.0, 10)]);
        let r = s.round(&probes);
        assert!((r[&1] - 1.0).abs() < 1e-12);
        assert!((r[&2] - (0.6 + 0.2 + 0.2 * 0.2)).abs() < 1e-12);
        assert!(r[&3] < 0.25);
        let (uids, w) = weights(&r);
        assert_eq!(uids, vec![1, 2, 3]);
        assert_eq!(w[0], 65_535);
        assert!(w[1] > w[2]);
        assert_eq!(s.update(Some(1.0), 0.0), 0.5);
        assert_eq!(weights(&BTreeMap::from([(4, 0.0)])), (vec![], vec![]));
    }
}
