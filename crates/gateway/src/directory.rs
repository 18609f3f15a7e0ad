//! Which providers serve which model, and in what order to try them: providers that just
//! failed cool down for a while and go last; providers with mostly failures lately come
//! after the healthy ones; then higher incentive first (what the evaluators' consensus pays
//! for), then lower price, then lower measured latency. A request may ask for `sort:
//! "price"` or `"latency"` instead (OpenRouter's names). Outcomes come from real calls and
//! from the health checks (`GET {endpoint}/models`).

use api_types::ProviderView;
use parking_lot::RwLock;
use primitives::Address;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use wallet::client::Client;

/// How long a provider that failed is skipped.
pub const COOL_DOWN: Duration = Duration::from_secs(30);

#[derive(Clone, Debug)]
pub struct Entry {
    pub provider: ProviderView,
    /// The provider's incentive from the last epoch (0..1; 0 when not a neuron).
    pub incentive: f64,
}

/// What the gateway has measured of a provider.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Health {
    /// Exponentially weighted time to the answer's headers, µs (0: not measured yet).
    pub latency_us: f64,
    /// Exponentially weighted share of failed calls and checks (0..1).
    pub error_rate: f64,
    pub outcomes: u64,
}

/// Weight of the newest outcome in the moving averages.
const EWMA: f64 = 0.2;
/// Error rate above which a provider counts as unhealthy.
const UNHEALTHY: f64 = 0.5;

impl Health {
    fn unhealthy(&self) -> bool {
        self.outcomes >= 2 && self.error_rate > UNHEALTHY
    }
}

#[derive(Default)]
pub struct Directory {
    entries: RwLock<Vec<Entry>>,
    cooling: RwLock<BTreeMap<Address, Instant>>,
    health: RwLock<BTreeMap<Address, Health>>,
}

/// A request's routing preferences (OpenRouter's `provider` object, as far as it applies).
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct Preferences {
    /// Provider addresses to try first, in this order.
    #[serde(default)]
    pub order: Vec<String>,
    /// Only these providers when set.
    #[serde(default)]
    pub only: Vec<String>,
    /// Whether to fall back to other providers when the ordered ones fail (default true).
    #[serde(default)]
    pub allow_fallbacks: Option<bool>,
    /// Highest acceptable prices, TSR base units per million tokens.
    #[serde(default)]
    pub max_price: Option<MaxPrice>,
    /// "price" (cheapest first) or "latency" (fastest measured first) instead of the
    /// default order.
    #[serde(default)]
    pub sort: Option<Sort>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sort {
    Price,
    Latency,
}

#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct MaxPrice {
    pub prompt: Option<u128>,
    pub completion: Option<u128>,
}

impl Directory {
    /// Re-reads the registered providers and the network's incentives from the node.
    pub async fn refresh(&self, client: &Client) -> anyhow::Result<()> {
        let providers = client.providers().await?;
        let incentive: BTreeMap<Address, f64> = match client.network().await {
            Ok(net) => net.neurons.into_iter().map(|n| (n.hotkey, n.incentive)).collect(),
            Err(_) => BTreeMap::new(), // a chain without the incentive module
        };
        let entries = providers
            .into_iter()
            .filter(|p| p.status == "active")
            .map(|p| Entry { incentive: incentive.get(&p.address).copied().unwrap_or(0.0), provider: p })
            .collect();
        *self.entries.write() = entries;
        Ok(())
    }

    /// Every model some provider serves.
    pub fn models(&self) -> Vec<String> {
        let mut m: Vec<String> =
            self.entries.read().iter().flat_map(|e| e.provider.models.iter().map(|o| o.model.clone())).collect();
        m.sort();
        m.dedup();
        m
    }

    pub fn cool_down(&self, p: &Address) {
        self.cooling.write().insert(*p, Instant::now() + COOL_DOWN);
    }

    /// Records a call's or a health check's outcome: the time to the answer's headers, or a
    /// failure.
    pub fn record(&self, p: &Address, outcome: Result<Duration, ()>) {
        let mut health = self.health.write();
        let h = health.entry(*p).or_default();
        match outcome {
            Ok(d) => {
                let us = d.as_secs_f64() * 1e6;
                h.latency_us = if h.latency_us == 0.0 { us } else { h.latency_us + EWMA * (us - h.latency_us) };
                h.error_rate -= EWMA * h.error_rate;
            }
            Err(()) => h.error_rate += EWMA * (1.0 - h.error_rate),
        }
        h.outcomes += 1;
    }

    pub fn health(&self, p: &Address) -> Health {
        self.health.read().get(p).copied().unwrap_or_default()
    }

    /// Every registered provider's endpoint, for the health checks.
    pub fn endpoints(&self) -> Vec<(Address, String)> {
        self.entries.read().iter().map(|e| (e.provider.address, e.provider.endpoint.clone())).collect()
    }

    /// Checks every provider once (`GET {endpoint}/models`): a failure cools it down.
    pub async fn check_health(&self, http: &reqwest::Client) {
        let checks = self.endpoints().into_iter().map(|(address, endpoint)| async move {
            let url = format!("{}/models", endpoint.trim_end_matches('/'));
            let started = Instant::now();
            let ok =
                matches!(http.get(&url).timeout(Duration::from_secs(5)).send().await, Ok(r) if r.status().is_success());
            (address, ok.then(|| started.elapsed()).ok_or(()))
        });
        for (address, outcome) in futures_util::future::join_all(checks).await {
            if outcome.is_err() {
                self.cool_down(&address);
            }
            self.record(&address, outcome);
        }
    }

    /// The providers to try for `model`, best first. Cooling providers go last (tried only
    /// when nothing else is left).
    pub fn candidates(&self, model: &str, prefs: &Preferences) -> Vec<ProviderView> {
        let now = Instant::now();
        let cooling = self.cooling.read();
        let health = self.health.read();
        let mut list: Vec<(bool, usize, Entry)> = self
            .entries
            .read()
            .iter()
            .filter_map(|e| {
                let offer = e.provider.models.iter().find(|o| o.model == model)?;
                let addr = e.provider.address.to_string();
                if !prefs.only.is_empty() && !prefs.only.contains(&addr) {
                    return None;
                }
                if let Some(m) = &prefs.max_price {
                    if m.prompt.is_some_and(|x| offer.input_price_per_mtok.0 > x)
                        || m.completion.is_some_and(|x| offer.output_price_per_mtok.0 > x)
                    {
                        return None;
                    }
                }
                let rank = prefs.order.iter().position(|o| *o == addr).unwrap_or(usize::MAX);
                if rank == usize::MAX && prefs.allow_fallbacks == Some(false) && !prefs.order.is_empty() {
                    return None;
                }
                let cool = cooling.get(&e.provider.address).is_some_and(|t| *t > now);
                Some((cool, rank, e.clone()))
            })
            .collect();
        let price = |e: &Entry| {
            e.provider
                .models
                .iter()
                .find(|o| o.model == model)
                .map_or(u128::MAX, |o| o.input_price_per_mtok.0.saturating_add(o.output_price_per_mtok.0))
        };
        let h = |e: &Entry| health.get(&e.provider.address).copied().unwrap_or_default();
        // Unmeasured providers sort as the slowest, so measured fast ones go first.
        let latency = |e: &Entry| match h(e).latency_us {
            l if l > 0.0 => l,
            _ => f64::INFINITY,
        };
        list.sort_by(|a, b| {
            let head = (a.0, a.1, h(&a.2).unhealthy()).cmp(&(b.0, b.1, h(&b.2).unhealthy()));
            let by_incentive = || b.2.incentive.total_cmp(&a.2.incentive);
            let by_price = || price(&a.2).cmp(&price(&b.2));
            let by_latency = || latency(&a.2).total_cmp(&latency(&b.2));
            let rest = match prefs.sort {
                None => by_incentive().then_with(by_price).then_with(by_latency),
                Some(Sort::Price) => by_price().then_with(by_incentive).then_with(by_latency),
                Some(Sort::Latency) => by_latency().then_with(by_incentive).then_with(by_price),
            };
            head.then(rest).then(a.2.provider.address.cmp(&b.2.provider.address))
        });
        list.into_iter().map(|(_, _, e)| e.provider).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use primitives::channel::ModelOffer;
    use primitives::Amount;

    fn entry(b: u8, incentive: f64, price: u128) -> Entry {
        Entry {
            provider: ProviderView {
                address: Address([b; 32]),
                endpoint: format!("http://127.0.0.1:{}/v1", 9000 + b as u16),
                models: vec![ModelOffer {
                    model: "m".into(),
                    input_price_per_mtok: Amount(price),
                    output_price_per_mtok: Amount(price),
                }],
                stake: Amount(1),
                status: "active".into(),
                registered_ms: 0,
                unbonding_until_ms: None,
            },
            incentive,
        }
    }

    #[test]
    fn incentive_first_then_price_preferences_and_cool_down() {
        let d = Directory::default();
        *d.entries.write() = vec![entry(1, 0.2, 10), entry(2, 0.7, 50), entry(3, 0.2, 5)];
        let order = |d: &Directory, p: &Preferences| -> Vec<u8> {
            d.candidates("m", p).iter().map(|p| p.address.0[0]).collect()
        };
        assert_eq!(order(&d, &Preferences::default()), vec![2, 3, 1]);
        assert!(d.candidates("other", &Preferences::default()).is_empty());
        let first = Preferences { order: vec![Address([1; 32]).to_string()], ..Default::default() };
        assert_eq!(order(&d, &first), vec![1, 2, 3]);
        let only = Preferences { order: first.order.clone(), allow_fallbacks: Some(false), ..Default::default() };
        assert_eq!(order(&d, &only), vec![1]);
        let cheap =
            Preferences { max_price: Some(MaxPrice { prompt: Some(10), completion: None }), ..Default::default() };
        assert_eq!(order(&d, &cheap), vec![3, 1]);
        d.cool_down(&Address([2; 32]));
        assert_eq!(order(&d, &Preferences::default()), vec![3, 1, 2], "a cooling provider goes last");
    }

    #[test]
    fn measured_latency_and_errors_steer_the_order() {
        let d = Directory::default();
        *d.entries.write() = vec![entry(1, 0.0, 10), entry(2, 0.0, 10), entry(3, 0.0, 20)];
        let order = |p: &Preferences| -> Vec<u8> { d.candidates("m", p).iter().map(|p| p.address.0[0]).collect() };
        // Equal incentive and price: the faster measured provider first.
        d.record(&Address([1; 32]), Ok(Duration::from_millis(40)));
        d.record(&Address([2; 32]), Ok(Duration::from_millis(10)));
        d.record(&Address([3; 32]), Ok(Duration::from_millis(1)));
        assert_eq!(order(&Preferences::default()), vec![2, 1, 3]);
        let fastest = Preferences { sort: Some(Sort::Latency), ..Default::default() };
        assert_eq!(order(&fastest), vec![3, 2, 1]);
        // Mostly failures lately: after the healthy ones, until it recovers.
        for _ in 0..4 {
            d.record(&Address([2; 32]), Err(()));
        }
        assert!(d.health(&Address([2; 32])).error_rate > 0.5);
        assert_eq!(order(&Preferences::default()), vec![1, 3, 2]);
        for _ in 0..4 {
            d.record(&Address([2; 32]), Ok(Duration::from_millis(10)));
        }
        assert_eq!(order(&Preferences::default()), vec![2, 1, 3]);
        let sort: Preferences = serde_json::from_str(r#"{"sort": "price"}"#).unwrap();
        assert_eq!(sort.sort, Some(Sort::Price));
        assert!(serde_json::from_str::<Preferences>(r#"{"sort": "vibes"}"#).is_err());
    }
}
