//! Offering config files (TOML) as people write them: decimal amounts in whole units of
//! the asset and the quote, dates in UTC, percentages. `to_config` turns one into the
//! ledger's `OfferingConfig` (base units, milliseconds, basis points) given the two
//! assets' decimals. Examples: `examples/offerings/*.toml`.

use ledger::vesting::parse_utc;
use primitives::sale::{
    CliffKind, Eligibility, Exemption, Fill, InvestorClass, LotRule, Mechanism, OfferingConfig, Region, Resale,
    Schedule, SchedulePart, Tier, TrancheConfig, UsPersons,
};
use primitives::{Amount, AssetId};
use serde::Deserialize;

const DAY_MS: u64 = 86_400_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfferingFile {
    pub name: String,
    pub asset: AssetId,
    pub quote: AssetId,
    /// Prices are quoted per this many tokens (decimal) [default: 1].
    #[serde(default)]
    pub price_per: Option<String>,
    /// Quote raised below which everyone is refunded [default: 0].
    #[serde(default)]
    pub soft_cap: Option<String>,
    #[serde(rename = "tranche")]
    pub tranches: Vec<TrancheFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrancheFile {
    pub name: String,
    /// none, reg_d_506c, reg_s, reg_cf
    #[serde(default = "none")]
    pub exemption: String,
    /// Reg S distribution-compliance period.
    #[serde(default)]
    pub dcp_days: Option<u64>,
    /// Tokens offered (decimal).
    pub supply: String,
    pub opens: String,
    pub closes: String,
    #[serde(default)]
    pub cancel_until: Option<String>,
    /// Quote per entity (decimal).
    #[serde(default)]
    pub min_per_entity: Option<String>,
    pub max_per_entity: String,
    #[serde(default)]
    pub allowed: Vec<Region>,
    #[serde(default)]
    pub blocked: Vec<Region>,
    #[serde(default)]
    pub us_persons: UsPersons,
    #[serde(default)]
    pub classes: Vec<InvestorClass>,
    pub mechanism: MechanismFile,
    #[serde(default)]
    pub lot: LotFile,
}

fn none() -> String {
    "none".into()
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum MechanismFile {
    FixedPrice {
        price: String,
        #[serde(default)]
        fill: Fill,
    },
    Tiered {
        tiers: Vec<TierFile>,
    },
    BatchAuction {
        reserve: String,
        increment: String,
        #[serde(default)]
        ceiling: Option<String>,
    },
    Dutch {
        start_price: String,
        reserve: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierFile {
    /// Cumulative tokens sold at the end of the tier.
    pub up_to: String,
    pub price: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LotFile {
    /// Nothing transferable before this date (a lockup).
    #[serde(default)]
    pub lockup_until: Option<String>,
    #[serde(default)]
    pub vesting: Option<ScheduleFile>,
    #[serde(default)]
    pub resale: Resale,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScheduleFile {
    Continuous {
        start: String,
        #[serde(default)]
        tge_percent: Option<String>,
        #[serde(default)]
        cliff_days: u64,
        duration_days: u64,
        #[serde(default)]
        cliff: CliffKind,
    },
    Monthly {
        start: String,
        #[serde(default)]
        tge_percent: Option<String>,
        #[serde(default)]
        cliff_months: u32,
        months: u32,
        #[serde(default)]
        cliff: CliffKind,
    },
    Tranches {
        start: String,
        parts: Vec<PartFile>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartFile {
    pub months: u32,
    pub percent: String,
}

fn amount(what: &str, s: &str, decimals: u8) -> Result<Amount, String> {
    Amount::from_decimal_str(s, decimals).map_err(|e| format!("{what} {s:?}: {e}"))
}

fn date(what: &str, s: &str) -> Result<u64, String> {
    parse_utc(s).map_err(|e| format!("{what}: {e}"))
}

/// "12.5" percent → 1250 basis points.
pub fn percent_to_bps(what: &str, s: &str) -> Result<u16, String> {
    let bps = Amount::from_decimal_str(s, 2).map_err(|e| format!("{what} {s:?}: {e}"))?;
    if bps.0 > 10_000 {
        return Err(format!("{what} {s:?} is above 100%"));
    }
    Ok(bps.0 as u16)
}

impl ScheduleFile {
    pub fn to_schedule(&self) -> Result<Schedule, String> {
        let tge = |p: &Option<String>| p.as_deref().map_or(Ok(0), |p| percent_to_bps("tge_percent", p));
        let s = match self {
            ScheduleFile::Continuous { start, tge_percent, cliff_days, duration_days, cliff } => Schedule::Continuous {
                start_ms: date("vesting start", start)?,
                tge_bps: tge(tge_percent)?,
                cliff_ms: cliff_days.saturating_mul(DAY_MS),
                duration_ms: duration_days.saturating_mul(DAY_MS),
                cliff: *cliff,
            },
            ScheduleFile::Monthly { start, tge_percent, cliff_months, months, cliff } => Schedule::Monthly {
                start_ms: date("vesting start", start)?,
                tge_bps: tge(tge_percent)?,
                cliff_months: *cliff_months,
                months: *months,
                cliff: *cliff,
            },
            ScheduleFile::Tranches { start, parts } => Schedule::Tranches {
                start_ms: date("vesting start", start)?,
                parts: parts
                    .iter()
                    .map(|p| Ok(SchedulePart { months: p.months, bps: percent_to_bps("percent", &p.percent)? }))
                    .collect::<Result<_, String>>()?,
            },
        };
        s.check()?;
        Ok(s)
    }
}

impl OfferingFile {
    pub fn parse(text: &str) -> Result<OfferingFile, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// The ledger's config, with amounts in base units given the assets' decimals.
    pub fn to_config(&self, asset_decimals: u8, quote_decimals: u8) -> Result<OfferingConfig, String> {
        let per = amount("price_per", self.price_per.as_deref().unwrap_or("1"), asset_decimals)?;
        let price = |what: &str, s: &str| amount(what, s, quote_decimals);
        let tokens = |what: &str, s: &str| amount(what, s, asset_decimals);
        let mut tranches = Vec::with_capacity(self.tranches.len());
        for t in &self.tranches {
            let ctx = |e: String| format!("tranche {:?}: {e}", t.name);
            let exemption = match t.exemption.as_str() {
                "none" => Exemption::None,
                "reg_d_506c" => Exemption::RegD506c,
                "reg_s" => Exemption::RegS {
                    dcp_ms: t.dcp_days.ok_or_else(|| ctx("reg_s needs dcp_days".into()))?.saturating_mul(DAY_MS),
                },
                "reg_cf" => Exemption::RegCf,
                other => return Err(ctx(format!("unknown exemption {other:?} (none, reg_d_506c, reg_s, reg_cf)"))),
            };
            let mechanism = match &t.mechanism {
                MechanismFile::FixedPrice { price: p, fill } => {
                    Mechanism::FixedPrice { price: price("price", p).map_err(ctx)?, fill: *fill }
                }
                MechanismFile::Tiered { tiers } => Mechanism::Tiered {
                    tiers: tiers
                        .iter()
                        .map(|x| Ok(Tier { up_to: tokens("up_to", &x.up_to)?, price: price("price", &x.price)? }))
                        .collect::<Result<_, String>>()
                        .map_err(ctx)?,
                },
                MechanismFile::BatchAuction { reserve, increment, ceiling } => Mechanism::BatchAuction {
                    reserve: price("reserve", reserve).map_err(ctx)?,
                    increment: price("increment", increment).map_err(ctx)?,
                    ceiling: ceiling.as_deref().map(|c| price("ceiling", c)).transpose().map_err(ctx)?,
                },
                MechanismFile::Dutch { start_price, reserve } => Mechanism::Dutch {
                    start_price: price("start_price", start_price).map_err(ctx)?,
                    reserve: price("reserve", reserve).map_err(ctx)?,
                },
            };
            let schedule = match (&t.lot.lockup_until, &t.lot.vesting) {
                (Some(_), Some(_)) => return Err(ctx("give lockup_until or vesting, not both".into())),
                (Some(until), None) => Some(Schedule::lockup(date("lockup_until", until).map_err(ctx)?)),
                (None, Some(v)) => Some(v.to_schedule().map_err(ctx)?),
                (None, None) => None,
            };
            tranches.push(TrancheConfig {
                name: t.name.clone(),
                exemption,
                eligibility: Eligibility {
                    allowed: t.allowed.clone(),
                    blocked: t.blocked.clone(),
                    us_persons: t.us_persons,
                    classes: t.classes.clone(),
                },
                supply: tokens("supply", &t.supply).map_err(ctx)?,
                mechanism,
                min_per_entity: t
                    .min_per_entity
                    .as_deref()
                    .map_or(Ok(Amount::ZERO), |m| price("min_per_entity", m))
                    .map_err(ctx)?,
                max_per_entity: price("max_per_entity", &t.max_per_entity).map_err(ctx)?,
                opens_ms: date("opens", &t.opens).map_err(ctx)?,
                closes_ms: date("closes", &t.closes).map_err(ctx)?,
                cancel_until_ms: t.cancel_until.as_deref().map(|c| date("cancel_until", c)).transpose().map_err(ctx)?,
                lot: LotRule { schedule, resale: t.lot.resale },
            });
        }
        let config = OfferingConfig {
            name: self.name.clone(),
            asset: self.asset,
            quote: self.quote,
            price_per: per,
            soft_cap: self.soft_cap.as_deref().map_or(Ok(Amount::ZERO), |s| amount("soft_cap", s, quote_decimals))?,
            tranches,
        };
        config.check()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every example in the repository parses, converts and passes the ledger's checks,
    /// and fits in one transaction.
    #[test]
    fn examples_are_valid() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/offerings");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let file = OfferingFile::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let config = file.to_config(9, 6).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let action = primitives::Action::CreateOffering { config };
            let bytes = primitives::codec::encode(&action);
            assert!(bytes.len() < primitives::limits::TX_BYTES_MAX - 200, "{} too large", path.display());
            n += 1;
        }
        assert!(n >= 3, "expected the three example offerings in {}", dir.display());
    }

    #[test]
    fn amounts_and_dates_convert_exactly() {
        let file = OfferingFile::parse(
            r#"
            name = "t"
            asset = "TSR"
            quote = "USD"
            soft_cap = "1000"
            [[tranche]]
            name = "public"
            supply = "1000000.5"
            opens = "2027-01-01"
            closes = "2027-02-01T12:00:00Z"
            max_per_entity = "50000"
            mechanism = { kind = "fixed_price", price = "0.38" }
            lot = { vesting = { kind = "monthly", start = "2027-03-01", months = 12, tge_percent = "12.5" } }
            "#,
        )
        .unwrap();
        let c = file.to_config(9, 6).unwrap();
        assert_eq!(c.price_per, Amount(1_000_000_000));
        assert_eq!(c.soft_cap, Amount(1_000_000_000));
        let t = &c.tranches[0];
        assert_eq!(t.supply, Amount(1_000_000_500_000_000));
        assert_eq!(t.mechanism, Mechanism::FixedPrice { price: Amount(380_000), fill: Fill::ProRata });
        assert_eq!(t.closes_ms - t.opens_ms, 31 * DAY_MS + 12 * 3_600_000);
        assert!(matches!(t.lot.schedule, Some(Schedule::Monthly { tge_bps: 1250, months: 12, .. })));
        let bad = OfferingFile::parse(&"x".repeat(3));
        assert!(bad.is_err());
        let e = OfferingFile::parse(
            r#"
            name = "t"
            asset = "TSR"
            quote = "USD"
            [[tranche]]
            name = "p"
            exemption = "reg_s"
            supply = "1"
            opens = "2027-01-01"
            closes = "2027-02-01"
            max_per_entity = "1"
            mechanism = { kind = "fixed_price", price = "0.0000001" }
            "#,
        )
        .unwrap()
        .to_config(9, 6)
        .unwrap_err();
        assert!(e.contains("dcp_days"), "{e}");
    }
}
