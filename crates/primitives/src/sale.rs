//! Types of the compliant sale, the compliance registry and vesting, as they appear in
//! transactions: entity attestations, offering and tranche configurations, sale
//! mechanisms, lot rules and vesting schedules. The rules that act on them live in the
//! `ledger` crate (`ledger::sale`, `ledger::alloc`, `ledger::vesting`).
//!
//! Prices are integers: quote-asset base units per `price_per` token base units, where
//! `price_per` is fixed per offering (usually one whole token, 10^decimals).

use crate::limits::{
    OFFERING_NAME_BYTES_MAX, OFFERING_TRANCHES_MAX, SANCTIONS_LIST_BYTES_MAX, SCHEDULE_PARTS_MAX, TIERS_MAX,
    TRANCHE_LIST_MAX,
};
use crate::{Amount, AssetId, Hash};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A verified person or company, as the compliance role knows it: an opaque id (the
/// compliance provider's reference, hashed), never personal data.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, BorshSerialize, BorshDeserialize)]
pub struct EntityId(pub [u8; 32]);

impl EntityId {
    /// The id of an off-ledger reference (a KYC case number, a CRM id): its blake3 hash,
    /// so the reference itself never reaches the ledger.
    pub fn from_reference(reference: &str) -> EntityId {
        EntityId(Hash::domain("tessera 2026-11 entity id", &[reference.as_bytes()]).0)
    }
}

impl fmt::Display for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EntityId({})", &hex::encode(&self.0[..8]))
    }
}

impl FromStr for EntityId {
    type Err = String;
    /// 64 hex characters.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| "an entity id is 64 hex characters".to_string())?;
        Ok(EntityId(out))
    }
}

impl Serialize for EntityId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for EntityId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str> as Deserialize>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An ISO 3166-1 alpha-2 country code ("US") or an ISO 3166-2 subdivision ("UA-43",
/// Crimea), upper case, at most 6 characters.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Region {
    len: u8,
    bytes: [u8; 6],
}

impl Region {
    pub fn new(code: &str) -> Result<Region, String> {
        let b = code.as_bytes();
        let country_ok = b.len() >= 2 && b[..2].iter().all(u8::is_ascii_uppercase);
        let sub_ok = b.len() == 2
            || (b.len() >= 4 && b[2] == b'-' && b[3..].iter().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
        if !(country_ok && sub_ok && b.len() <= 6) {
            return Err(format!("{code:?} is not an ISO 3166 code (\"US\", or a subdivision such as \"UA-43\")"));
        }
        let mut bytes = [0u8; 6];
        bytes[..b.len()].copy_from_slice(b);
        Ok(Region { len: b.len() as u8, bytes })
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len as usize]).expect("checked ASCII")
    }

    /// The country part ("UA" of "UA-43").
    pub fn country(&self) -> Region {
        let mut bytes = [0u8; 6];
        bytes[..2].copy_from_slice(&self.bytes[..2]);
        Region { len: 2, bytes }
    }

    pub fn is_subdivision(&self) -> bool {
        self.len > 2
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Region({})", self.as_str())
    }
}

impl BorshSerialize for Region {
    fn serialize<W: std::io::Write>(&self, w: &mut W) -> std::io::Result<()> {
        BorshSerialize::serialize(&self.as_str().to_string(), w)
    }
}

impl BorshDeserialize for Region {
    fn deserialize_reader<R: std::io::Read>(r: &mut R) -> std::io::Result<Self> {
        let s = String::deserialize_reader(r)?;
        Region::new(&s).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
}

impl Serialize for Region {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Region {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str> as Deserialize>::deserialize(d)?;
        Region::new(&s).map_err(serde::de::Error::custom)
    }
}

impl FromStr for Region {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Region::new(s)
    }
}

/// Investor class, from least to most qualified. Append-only.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[borsh(use_discriminant = false)]
pub enum InvestorClass {
    Retail,
    /// Rule 501(a) accredited investor.
    Accredited,
    /// Investment Company Act qualified purchaser.
    QualifiedPurchaser,
    Institutional,
}

impl InvestorClass {
    pub const ALL: [InvestorClass; 4] = [
        InvestorClass::Retail,
        InvestorClass::Accredited,
        InvestorClass::QualifiedPurchaser,
        InvestorClass::Institutional,
    ];

    pub fn name(self) -> &'static str {
        match self {
            InvestorClass::Retail => "retail",
            InvestorClass::Accredited => "accredited",
            InvestorClass::QualifiedPurchaser => "qualified_purchaser",
            InvestorClass::Institutional => "institutional",
        }
    }
}

impl FromStr for InvestorClass {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        InvestorClass::ALL.into_iter().find(|c| c.name() == s).ok_or_else(|| {
            format!("unknown investor class {s:?} (retail, accredited, qualified_purchaser, institutional)")
        })
    }
}

/// How accreditation was verified (Rule 506(c) "reasonable steps"). Append-only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[borsh(use_discriminant = false)]
pub enum AccreditationMethod {
    /// The investor's own representation only (enough for 506(b), not for 506(c)).
    SelfCertified,
    /// Tax forms for the last two years and a representation.
    Income,
    /// Bank, brokerage and credit-report evidence of net worth.
    NetWorth,
    /// Series 7, 65 or 82 licence in good standing.
    ProfessionalLicense,
    /// Written confirmation from a CPA, attorney, broker-dealer or RIA.
    ThirdPartyLetter,
    /// The March 2025 no-action path: minimum investment plus written representations.
    MinimumInvestment,
}

impl AccreditationMethod {
    /// Whether the method counts as verification for Rule 506(c).
    pub fn verifies(self) -> bool {
        self != AccreditationMethod::SelfCertified
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accreditation {
    pub method: AccreditationMethod,
    /// Unix milliseconds after which the verification no longer counts.
    #[serde(with = "crate::serde_u64")]
    pub expires_ms: u64,
}

/// Sanctions-screening result. Append-only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[borsh(use_discriminant = false)]
pub enum Screening {
    Clear,
    /// A match on a sanctions list (names or listed addresses): blocked everywhere.
    Hit,
}

/// What the compliance role attests about an entity. Replaces any earlier attestation.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attestation {
    /// Residence (persons) or place of organisation (companies); a subdivision where it
    /// matters for sanctions ("UA-43").
    pub jurisdiction: Region,
    /// Regulation S "U.S. person".
    pub us_person: bool,
    pub class: InvestorClass,
    #[serde(default)]
    pub accreditation: Option<Accreditation>,
    /// Unix milliseconds after which KYC/KYB must be renewed.
    #[serde(with = "crate::serde_u64")]
    pub kyc_expires_ms: u64,
    pub screening: Screening,
    /// The sanctions-list version the screening used (audit trail).
    pub screening_list: String,
    /// The entity's Reg CF 12-month investment limit in the quote asset's base units,
    /// from `regcf_investment_limit`. Accredited (and higher) classes are unlimited;
    /// for retail, `None` means no limit was assessed, so no Reg CF purchase.
    #[serde(default)]
    pub regcf_limit: Option<Amount>,
}

impl Attestation {
    pub fn check(&self) -> Result<(), String> {
        if self.screening_list.len() > SANCTIONS_LIST_BYTES_MAX {
            return Err(format!("screening list version longer than {SANCTIONS_LIST_BYTES_MAX} bytes"));
        }
        Ok(())
    }
}

/// Reg CF investor limit over 12 months (17 CFR 227.100(a)(2), amounts as adjusted in
/// 2022): accredited investors are unlimited (`None`); otherwise, if annual income or
/// net worth is below $124,000, the greater of $2,500 and 5% of the greater of the two;
/// if both are at least $124,000, 10% of the greater, at most $124,000. `dollar` is the
/// number of quote base units in one US dollar; inputs and output are in base units.
pub fn regcf_investment_limit(income: Amount, net_worth: Amount, accredited: bool, dollar: Amount) -> Option<Amount> {
    if accredited {
        return None;
    }
    let d = dollar.0;
    let threshold = 124_000u128.saturating_mul(d);
    let greater = income.0.max(net_worth.0);
    let limit = if income.0 < threshold || net_worth.0 < threshold {
        (2_500u128.saturating_mul(d)).max(greater / 20)
    } else {
        (greater / 10).min(threshold)
    };
    Some(Amount(limit))
}

/// The securities exemption a tranche is sold under. Append-only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[borsh(use_discriminant = false)]
pub enum Exemption {
    /// Not a securities offering (e.g. a utility sale outside the US).
    None,
    /// Rule 506(c): accredited investors only, verified (not self-certified).
    RegD506c,
    /// Regulation S: offshore, no U.S. persons; lots carry the distribution-compliance
    /// period during which they may only go to non-U.S. persons.
    RegS {
        #[serde(with = "crate::serde_u64")]
        dcp_ms: u64,
    },
    /// Regulation CF: per-investor 12-month limit, cancellation until 48 hours before
    /// the close.
    RegCf,
}

impl Exemption {
    pub fn name(self) -> &'static str {
        match self {
            Exemption::None => "none",
            Exemption::RegD506c => "reg_d_506c",
            Exemption::RegS { .. } => "reg_s",
            Exemption::RegCf => "reg_cf",
        }
    }
}

/// Whether U.S. persons may buy in a tranche. Append-only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[borsh(use_discriminant = false)]
pub enum UsPersons {
    #[default]
    Allowed,
    Excluded,
    Only,
}

/// Who may buy in a tranche (checked at every commitment, on the entity's current
/// attestation).
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Eligibility {
    /// Countries allowed; empty = every country not blocked.
    #[serde(default)]
    pub allowed: Vec<Region>,
    /// Countries or subdivisions blocked (a country blocks all its subdivisions).
    #[serde(default)]
    pub blocked: Vec<Region>,
    #[serde(default)]
    pub us_persons: UsPersons,
    /// Classes allowed; empty = any.
    #[serde(default)]
    pub classes: Vec<InvestorClass>,
}

/// How a tranche allocates. Append-only.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[borsh(use_discriminant = false)]
pub enum Mechanism {
    /// One price; when oversubscribed, scaled down pro rata (or water-filled).
    FixedPrice { price: Amount, fill: Fill },
    /// Prices step up at cumulative quantities sold; each commitment is filled at commit
    /// time in arrival order, split across tiers, and the unfilled money refunded.
    Tiered { tiers: Vec<Tier> },
    /// Sealed-in-escrow limit bids (price, quantity) on a price grid; one clearing price;
    /// bids at the clearing price share the rest pro rata. Bids may only be raised.
    BatchAuction {
        reserve: Amount,
        #[serde(default)]
        ceiling: Option<Amount>,
        increment: Amount,
    },
    /// Descending clock from `start_price` to `reserve` across the window; ends when
    /// committed money buys the supply at the current price; one clearing price.
    Dutch { start_price: Amount, reserve: Amount },
}

impl Mechanism {
    pub fn name(&self) -> &'static str {
        match self {
            Mechanism::FixedPrice { fill: Fill::ProRata, .. } => "fixed_price_pro_rata",
            Mechanism::FixedPrice { fill: Fill::WaterFill, .. } => "fixed_price_water_fill",
            Mechanism::Tiered { .. } => "tiered",
            Mechanism::BatchAuction { .. } => "batch_auction",
            Mechanism::Dutch { .. } => "dutch_auction",
        }
    }
}

/// Oversubscription rule of a fixed-price tranche. Append-only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[borsh(use_discriminant = false)]
pub enum Fill {
    /// accepted_i = ⌊c_i · K / D⌋.
    #[default]
    ProRata,
    /// Max-min fair: accepted_i = min(c_i, L) with Σ = K.
    WaterFill,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Cumulative token base units sold at the end of this tier.
    pub up_to: Amount,
    pub price: Amount,
}

/// Resale restriction stamped on every lot of a tranche. Append-only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[borsh(use_discriminant = false)]
pub enum Resale {
    #[default]
    Free,
    /// Until the lot's distribution-compliance period ends, its holder may transfer the
    /// asset only to wallets of verified non-U.S. persons.
    NonUsOnlyDuringDcp,
}

/// A vesting or lockup schedule for `total` base units. See `ledger::vesting`.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[borsh(use_discriminant = false)]
pub enum Schedule {
    /// `tge_bps` of the total at `start_ms`; the rest linear per millisecond until
    /// `start_ms + duration_ms`; nothing of the rest before the cliff.
    Continuous {
        #[serde(with = "crate::serde_u64")]
        start_ms: u64,
        #[serde(default)]
        tge_bps: u16,
        #[serde(default, with = "crate::serde_u64")]
        cliff_ms: u64,
        #[serde(with = "crate::serde_u64")]
        duration_ms: u64,
        #[serde(default)]
        cliff: CliffKind,
    },
    /// As `Continuous`, counted in whole UTC calendar months from `start_ms`
    /// (31 Jan + 1 month = 28/29 Feb).
    Monthly {
        #[serde(with = "crate::serde_u64")]
        start_ms: u64,
        #[serde(default)]
        tge_bps: u16,
        #[serde(default)]
        cliff_months: u32,
        months: u32,
        #[serde(default)]
        cliff: CliffKind,
    },
    /// Fixed fractions at fixed month offsets from `start_ms`; the fractions sum to
    /// 10,000 basis points.
    Tranches {
        #[serde(with = "crate::serde_u64")]
        start_ms: u64,
        parts: Vec<SchedulePart>,
    },
}

/// What happens at the cliff. Append-only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[borsh(use_discriminant = false)]
pub enum CliffKind {
    /// At the cliff, everything linear since the start vests at once (25% at month 12 of 48).
    #[default]
    CatchUp,
    /// The linear clock starts at the cliff (0 at month 12, then 1/36 per month).
    FromZero,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulePart {
    pub months: u32,
    pub bps: u16,
}

impl Schedule {
    /// A plain lockup: nothing until `until_ms`, everything then.
    pub fn lockup(until_ms: u64) -> Schedule {
        Schedule::Continuous {
            start_ms: until_ms,
            tge_bps: 10_000,
            cliff_ms: 0,
            duration_ms: 0,
            cliff: CliffKind::CatchUp,
        }
    }

    pub fn check(&self) -> Result<(), String> {
        match self {
            Schedule::Continuous { tge_bps, cliff_ms, duration_ms, .. } => {
                if *tge_bps > 10_000 {
                    return Err("tge_bps is at most 10000".into());
                }
                if cliff_ms > duration_ms {
                    return Err("the cliff cannot be longer than the duration".into());
                }
                if *duration_ms == 0 && *tge_bps != 10_000 {
                    return Err("a zero-duration schedule must unlock 10000 bps at its start".into());
                }
            }
            Schedule::Monthly { tge_bps, cliff_months, months, .. } => {
                if *tge_bps > 10_000 {
                    return Err("tge_bps is at most 10000".into());
                }
                if *months == 0 || *months > 1200 {
                    return Err("months must be 1 to 1200".into());
                }
                if cliff_months > months {
                    return Err("the cliff cannot be longer than the duration".into());
                }
            }
            Schedule::Tranches { parts, .. } => {
                if parts.is_empty() || parts.len() > SCHEDULE_PARTS_MAX {
                    return Err(format!("a tranche schedule has 1 to {SCHEDULE_PARTS_MAX} parts"));
                }
                if parts.windows(2).any(|w| w[0].months >= w[1].months) {
                    return Err("schedule parts must be in strictly increasing month order".into());
                }
                if parts.iter().map(|p| u32::from(p.bps)).sum::<u32>() != 10_000 {
                    return Err("schedule parts must sum to 10000 bps".into());
                }
                if parts.iter().any(|p| p.months > 1200) {
                    return Err("a part is at most 1200 months out".into());
                }
            }
        }
        Ok(())
    }
}

/// What every lot delivered from a tranche carries.
#[derive(Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LotRule {
    /// Lockup or vesting of the delivered tokens; `None` = free at delivery.
    #[serde(default)]
    pub schedule: Option<Schedule>,
    #[serde(default)]
    pub resale: Resale,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrancheConfig {
    pub name: String,
    pub exemption: Exemption,
    #[serde(default)]
    pub eligibility: Eligibility,
    /// Token base units offered in this tranche.
    pub supply: Amount,
    pub mechanism: Mechanism,
    /// Per entity, in quote base units (for bids: the escrow, price × quantity).
    #[serde(default)]
    pub min_per_entity: Amount,
    pub max_per_entity: Amount,
    #[serde(with = "crate::serde_u64")]
    pub opens_ms: u64,
    #[serde(with = "crate::serde_u64")]
    pub closes_ms: u64,
    /// Investors may cancel until this time (Reg CF: 48 hours before the close). `None`:
    /// commitments are firm (except Reg CF, where the rule applies regardless).
    #[serde(default, with = "crate::serde_u64::option")]
    pub cancel_until_ms: Option<u64>,
    #[serde(default)]
    pub lot: LotRule,
}

/// Reg CF investors may cancel until 48 hours before the offering deadline.
pub const REG_CF_CANCEL_BEFORE_CLOSE_MS: u64 = 48 * 3_600_000;

impl TrancheConfig {
    /// The last time an investor may cancel, if ever.
    pub fn cancel_deadline_ms(&self) -> Option<u64> {
        match self.exemption {
            Exemption::RegCf => Some(self.closes_ms.saturating_sub(REG_CF_CANCEL_BEFORE_CLOSE_MS)),
            _ => self.cancel_until_ms,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfferingConfig {
    pub name: String,
    /// The asset sold; the creator must hold `Σ tranche.supply` of it, which moves into
    /// the offering's escrow at creation.
    pub asset: AssetId,
    /// The asset paid in (e.g. the custodian's USD).
    pub quote: AssetId,
    /// Prices are quote base units per this many token base units.
    pub price_per: Amount,
    /// Quote raised across tranches below which everyone is refunded.
    #[serde(default)]
    pub soft_cap: Amount,
    pub tranches: Vec<TrancheConfig>,
}

impl OfferingConfig {
    /// Checks that need no state. Every error names the field.
    pub fn check(&self) -> Result<(), String> {
        if self.name.is_empty() || self.name.len() > OFFERING_NAME_BYTES_MAX {
            return Err(format!("name must be 1-{OFFERING_NAME_BYTES_MAX} bytes"));
        }
        if self.asset == self.quote {
            return Err("asset and quote must differ".into());
        }
        if self.price_per.is_zero() {
            return Err("price_per must be positive".into());
        }
        if self.tranches.is_empty() || self.tranches.len() > OFFERING_TRANCHES_MAX {
            return Err(format!("an offering has 1 to {OFFERING_TRANCHES_MAX} tranches"));
        }
        let mut total = Amount::ZERO;
        for (i, t) in self.tranches.iter().enumerate() {
            t.check().map_err(|e| format!("tranche {i} ({}): {e}", t.name))?;
            total = total.checked_add(t.supply).ok_or("total supply overflows")?;
        }
        Ok(())
    }

    pub fn total_supply(&self) -> Amount {
        self.tranches.iter().fold(Amount::ZERO, |a, t| a.checked_add(t.supply).expect("checked in check()"))
    }

    /// When the last tranche closes: the earliest time the offering can be finalized.
    pub fn closes_ms(&self) -> u64 {
        self.tranches.iter().map(|t| t.closes_ms).max().unwrap_or(0)
    }
}

impl TrancheConfig {
    pub fn check(&self) -> Result<(), String> {
        if self.name.is_empty() || self.name.len() > OFFERING_NAME_BYTES_MAX {
            return Err(format!("name must be 1-{OFFERING_NAME_BYTES_MAX} bytes"));
        }
        if self.supply.is_zero() {
            return Err("supply must be positive".into());
        }
        if self.closes_ms <= self.opens_ms {
            return Err("closes_ms must be after opens_ms".into());
        }
        if self.max_per_entity.is_zero() || self.max_per_entity < self.min_per_entity {
            return Err("max_per_entity must be positive and at least min_per_entity".into());
        }
        let e = &self.eligibility;
        if e.allowed.len() > TRANCHE_LIST_MAX || e.blocked.len() > TRANCHE_LIST_MAX {
            return Err(format!("allowed and blocked lists hold at most {TRANCHE_LIST_MAX} codes"));
        }
        match self.exemption {
            Exemption::RegD506c => {
                if e.us_persons == UsPersons::Excluded {
                    return Err("a Reg D tranche cannot exclude U.S. persons".into());
                }
                if e.classes.contains(&InvestorClass::Retail) {
                    return Err("Reg D 506(c) sells to accredited investors only; remove retail".into());
                }
            }
            Exemption::RegS { .. } => {
                if e.us_persons != UsPersons::Excluded {
                    return Err("a Reg S tranche must set us_persons = \"excluded\"".into());
                }
            }
            Exemption::RegCf => {
                if matches!(self.mechanism, Mechanism::Tiered { .. } | Mechanism::Dutch { .. }) {
                    return Err("Reg CF needs cancellable commitments: use fixed_price or batch_auction".into());
                }
            }
            Exemption::None => {}
        }
        if self.cancel_until_ms.is_some()
            && matches!(self.mechanism, Mechanism::Tiered { .. } | Mechanism::Dutch { .. })
        {
            return Err("tiered and Dutch tranches fill in arrival order, so commitments cannot be cancelled".into());
        }
        match &self.mechanism {
            Mechanism::FixedPrice { price, .. } => {
                if price.is_zero() {
                    return Err("price must be positive".into());
                }
            }
            Mechanism::Tiered { tiers } => {
                if tiers.is_empty() || tiers.len() > TIERS_MAX {
                    return Err(format!("1 to {TIERS_MAX} tiers"));
                }
                if tiers.windows(2).any(|w| w[0].up_to >= w[1].up_to || w[0].price > w[1].price) {
                    return Err("tiers must have increasing up_to and non-decreasing prices".into());
                }
                if tiers.iter().any(|t| t.price.is_zero() || t.up_to.is_zero()) {
                    return Err("tier prices and sizes must be positive".into());
                }
                if tiers.last().map(|t| t.up_to) != Some(self.supply) {
                    return Err("the last tier's up_to must equal the tranche supply".into());
                }
            }
            Mechanism::BatchAuction { reserve, ceiling, increment } => {
                if reserve.is_zero() || increment.is_zero() {
                    return Err("reserve and increment must be positive".into());
                }
                if reserve.0 % increment.0 != 0 {
                    return Err("the reserve must lie on the increment grid".into());
                }
                if let Some(c) = ceiling {
                    if c < reserve || c.0 % increment.0 != 0 {
                        return Err("the ceiling must be on the grid and at least the reserve".into());
                    }
                }
            }
            Mechanism::Dutch { start_price, reserve } => {
                if reserve.is_zero() || start_price < reserve {
                    return Err("Dutch auction needs 0 < reserve <= start_price".into());
                }
            }
        }
        if let Some(s) = &self.lot.schedule {
            s.check()?;
        }
        Ok(())
    }
}
