//! The compliance registry, offerings (commit → settle → deliver), vesting grants and
//! transfer restrictions, as actions on the block overlay. Every check that fails
//! returns its own `RejectCode`; the overlay's journal rolls back anything the action
//! wrote before failing.
//!
//! Money flow of an offering:
//! - create: the creator's `Σ tranche.supply` moves into the offering's module account;
//! - commit / bid: the quote is *locked* on the investor's wallet (`LockKind::SaleEscrow`),
//!   never moved, so proceeds cannot reach the issuer before settlement;
//! - finalize: one pass over the commitments fixes the allocation rule per tranche and
//!   the exact totals (tokens sold, proceeds, refunds); no balance moves;
//! - claim (per entity, O(1), anyone may send it): the lock is released, the price paid
//!   moves to the module account, tokens move to the wallet (locked under the lot's
//!   schedule, stamped with its resale restriction); the rest simply stays with the
//!   investor, which is the refund;
//! - withdraw: the creator takes the proceeds received and the unsold tokens.

use crate::alloc::{self, Fill};
use crate::execute::Overlay;
use crate::objects::{
    module_account, Commitment, Counters, EntityRecord, Grant, GrantSource, ObjKey, Object, Offering, OfferingStatus,
    RegCfEntry, RegCfHistory, Rule, Settlement, TrancheState,
};
use crate::state::{Lock, LockKind, Restriction, RestrictionKind};
use crate::vesting;
use primitives::limits::ENTITY_WALLETS_MAX;
use primitives::sale::{
    Attestation, Exemption, InvestorClass, Mechanism, OfferingConfig, Resale, Schedule, TrancheConfig, UsPersons,
};
use primitives::{Address, Amount, AssetId, EntityId, RejectCode};

/// Most live Reg CF commitments one entity may have in its 12-month window.
pub const REG_CF_ENTRIES_MAX: usize = 64;

/// The reference of an escrow lock: one per (offering, tranche).
pub fn escrow_reference(offering: u64, tranche: u16) -> u64 {
    (offering << 16) | u64::from(tranche)
}

/// The per-commitment allocation under a settled rule: tokens and the quote paid; the
/// rest of the escrow is refunded. `finalize` sums exactly these, and `claim` pays them.
pub fn allocate(rule: &Rule, cfg: &TrancheConfig, per: Amount, c: &Commitment) -> Fill {
    let fixed_price = || match cfg.mechanism {
        Mechanism::FixedPrice { price, .. } => price,
        _ => unreachable!("pro-rata and water-fill rules only settle fixed-price tranches"),
    };
    match *rule {
        Rule::RefundAll => Fill::default(),
        Rule::ProRata { capacity, demand } => Fill::at(alloc::pro_rata(c.escrow, capacity, demand), fixed_price(), per),
        Rule::WaterFill { level } => Fill::at(c.escrow.min(level), fixed_price(), per),
        Rule::AsCommitted => Fill { tokens: c.quantity, paid: c.escrow },
        Rule::Clearing { price, rest, at_price } => {
            let tokens = alloc::bid_fill(c.price, c.quantity, (price, rest, at_price));
            Fill { tokens, paid: alloc::cost_of(tokens, price, per) }
        }
        Rule::Dutch { price, capacity } => {
            let accepted = c.escrow.min(Amount(capacity.0.saturating_sub(c.before.0)));
            Fill::at(accepted, price, per)
        }
    }
}

impl Overlay<'_> {
    fn require_compliance(&self, signer: Address) -> Result<(), RejectCode> {
        if self.roles().compliance == signer {
            Ok(())
        } else {
            Err(RejectCode::NotComplianceRole)
        }
    }

    pub(crate) fn entity(&self, id: EntityId) -> Option<&EntityRecord> {
        match self.obj(&ObjKey::Entity(id)) {
            Some(Object::Entity(e)) => Some(e),
            _ => None,
        }
    }

    fn wallet_entity(&self, wallet: &Address) -> Option<EntityId> {
        self.account(wallet).and_then(|a| a.entity)
    }

    pub(crate) fn attest_entity(&mut self, signer: Address, id: EntityId, att: &Attestation) -> Result<(), RejectCode> {
        self.require_compliance(signer)?;
        let now = self.now_ms();
        let record = match self.entity(id) {
            Some(e) => {
                EntityRecord { attestation: att.clone(), revoked: false, wallets: e.wallets.clone(), updated_ms: now }
            }
            None => EntityRecord { attestation: att.clone(), revoked: false, wallets: Vec::new(), updated_ms: now },
        };
        self.put_obj(ObjKey::Entity(id), Some(Object::Entity(record)));
        Ok(())
    }

    pub(crate) fn bind_wallet(&mut self, signer: Address, id: EntityId, wallet: Address) -> Result<(), RejectCode> {
        self.require_compliance(signer)?;
        let mut record = self.entity(id).ok_or(RejectCode::UnknownEntity)?.clone();
        match self.wallet_entity(&wallet) {
            Some(e) if e == id => return Ok(()),
            Some(_) => return Err(RejectCode::WalletBoundElsewhere),
            None => {}
        }
        if record.wallets.len() >= ENTITY_WALLETS_MAX {
            return Err(RejectCode::TooManyWallets);
        }
        let at = record.wallets.binary_search(&wallet).unwrap_err();
        record.wallets.insert(at, wallet);
        self.account_mut(wallet).entity = Some(id);
        self.put_obj(ObjKey::Entity(id), Some(Object::Entity(record)));
        Ok(())
    }

    pub(crate) fn unbind_wallet(&mut self, signer: Address, wallet: Address) -> Result<(), RejectCode> {
        self.require_compliance(signer)?;
        let id = self.wallet_entity(&wallet).ok_or(RejectCode::WalletNotVerified)?;
        let mut record = self.entity(id).ok_or(RejectCode::UnknownEntity)?.clone();
        record.wallets.retain(|w| *w != wallet);
        self.account_mut(wallet).entity = None;
        self.put_obj(ObjKey::Entity(id), Some(Object::Entity(record)));
        Ok(())
    }

    pub(crate) fn revoke_entity(&mut self, signer: Address, id: EntityId) -> Result<(), RejectCode> {
        self.require_compliance(signer)?;
        let mut record = self.entity(id).ok_or(RejectCode::UnknownEntity)?.clone();
        record.revoked = true;
        record.updated_ms = self.now_ms();
        self.put_obj(ObjKey::Entity(id), Some(Object::Entity(record)));
        Ok(())
    }

    fn counters(&self) -> Counters {
        match self.obj(&ObjKey::Counters) {
            Some(Object::Counters(c)) => c.clone(),
            _ => Counters::default(),
        }
    }

    /// Takes the next id from one of the counters (ids start at 1).
    pub(crate) fn next_id(&mut self, which: fn(&mut Counters) -> &mut u64) -> u64 {
        let mut c = self.counters();
        let counter = which(&mut c);
        *counter += 1;
        let id = *counter;
        self.put_obj(ObjKey::Counters, Some(Object::Counters(c)));
        id
    }

    fn offering(&self, id: u64) -> Result<Offering, RejectCode> {
        match self.obj(&ObjKey::Offering(id)) {
            Some(Object::Offering(o)) => Ok(o.clone()),
            _ => Err(RejectCode::UnknownOffering),
        }
    }

    fn tranche_state(&self, offering: u64, tranche: u16) -> TrancheState {
        match self.obj(&ObjKey::Tranche(offering, tranche)) {
            Some(Object::Tranche(t)) => t.clone(),
            _ => TrancheState::default(),
        }
    }

    fn commitment(&self, offering: u64, tranche: u16, entity: EntityId) -> Option<Commitment> {
        match self.obj(&ObjKey::Commitment(offering, tranche, entity)) {
            Some(Object::Commitment(c)) => Some(c.clone()),
            _ => None,
        }
    }

    pub(crate) fn create_offering(&mut self, signer: Address, config: &OfferingConfig) -> Result<(), RejectCode> {
        let asset = self.asset(&config.asset).ok_or(RejectCode::InvalidOffering)?;
        if asset.issuer != signer {
            return Err(RejectCode::NotAssetIssuer);
        }
        self.asset(&config.quote).ok_or(RejectCode::InvalidOffering)?;
        if config.tranches.iter().any(|t| t.closes_ms <= self.now_ms()) {
            return Err(RejectCode::TrancheClosed);
        }
        let id = self.next_id(|c| &mut c.next_offering);
        if id >= 1 << 48 {
            return Err(RejectCode::AmountOverflow);
        }
        let escrow = module_account("offering", id);
        let supply = config.total_supply();
        self.debit_releasing(signer, config.asset, supply)?;
        self.account_mut(escrow).credit(config.asset, supply)?;
        let offering = Offering {
            id,
            creator: signer,
            config: config.clone(),
            escrow,
            status: OfferingStatus::Open,
            proceeds: Amount::ZERO,
            tokens_sold: Amount::ZERO,
            proceeds_withdrawn: Amount::ZERO,
            tokens_returned: Amount::ZERO,
            created_ms: self.now_ms(),
            settled_ms: 0,
        };
        self.put_obj(ObjKey::Offering(id), Some(Object::Offering(offering)));
        Ok(())
    }

    /// Every compliance check of a purchase, in a fixed order; the first failure wins.
    fn check_eligible(&self, wallet: Address, cfg: &TrancheConfig) -> Result<(EntityId, EntityRecord), RejectCode> {
        let now = self.now_ms();
        let id = self.wallet_entity(&wallet).ok_or(RejectCode::WalletNotVerified)?;
        let rec = self.entity(id).ok_or(RejectCode::UnknownEntity)?;
        let a = &rec.attestation;
        if rec.revoked {
            return Err(RejectCode::EntityRevoked);
        }
        if now >= a.kyc_expires_ms {
            return Err(RejectCode::KycExpired);
        }
        if a.screening == primitives::sale::Screening::Hit {
            return Err(RejectCode::Sanctioned);
        }
        let e = &cfg.eligibility;
        let j = a.jurisdiction;
        if e.blocked.iter().any(|b| *b == j || *b == j.country()) {
            return Err(RejectCode::JurisdictionBlocked);
        }
        if !e.allowed.is_empty() && !e.allowed.iter().any(|x| *x == j || *x == j.country()) {
            return Err(RejectCode::JurisdictionBlocked);
        }
        match (e.us_persons, a.us_person) {
            (UsPersons::Excluded, true) => return Err(RejectCode::UsPersonExcluded),
            (UsPersons::Only, false) => return Err(RejectCode::UsPersonsOnly),
            _ => {}
        }
        if !e.classes.is_empty() && !e.classes.contains(&a.class) {
            return Err(RejectCode::InvestorClassNotAllowed);
        }
        if cfg.exemption == Exemption::RegD506c {
            if a.class == InvestorClass::Retail {
                return Err(RejectCode::InvestorClassNotAllowed);
            }
            let acc = a.accreditation.filter(|acc| acc.method.verifies()).ok_or(RejectCode::AccreditationRequired)?;
            if now >= acc.expires_ms {
                return Err(RejectCode::AccreditationExpired);
            }
        }
        Ok((id, rec.clone()))
    }

    fn check_window(&self, cfg: &TrancheConfig) -> Result<(), RejectCode> {
        let now = self.now_ms();
        if now < cfg.opens_ms {
            return Err(RejectCode::TrancheNotOpen);
        }
        if now >= cfg.closes_ms {
            return Err(RejectCode::TrancheClosed);
        }
        Ok(())
    }

    fn check_caps(cfg: &TrancheConfig, total: Amount) -> Result<(), RejectCode> {
        if total > cfg.max_per_entity {
            return Err(RejectCode::AboveEntityMax);
        }
        if total < cfg.min_per_entity {
            return Err(RejectCode::BelowMinimum);
        }
        Ok(())
    }

    /// Reg CF: the entity's live Reg CF commitments of the last 12 months plus `add`
    /// must stay within its limit (accredited and higher classes are unlimited).
    fn regcf_add(
        &mut self,
        id: EntityId,
        rec: &EntityRecord,
        offering: u64,
        tranche: u16,
        add: Amount,
    ) -> Result<(), RejectCode> {
        if rec.attestation.class >= InvestorClass::Accredited {
            return Ok(());
        }
        let limit = rec.attestation.regcf_limit.ok_or(RejectCode::RegCfLimitExceeded)?;
        let now = self.now_ms();
        let mut hist = match self.obj(&ObjKey::RegCf(id)) {
            Some(Object::RegCf(h)) => h.clone(),
            _ => RegCfHistory::default(),
        };
        hist.entries.retain(|e| vesting::add_months(e.at_ms, 12) > now);
        let used = hist.entries.iter().try_fold(Amount::ZERO, |s, e| s.checked_add(e.amount));
        let total = used.and_then(|u| u.checked_add(add)).ok_or(RejectCode::AmountOverflow)?;
        if total > limit || hist.entries.len() >= REG_CF_ENTRIES_MAX {
            return Err(RejectCode::RegCfLimitExceeded);
        }
        hist.entries.push(RegCfEntry { at_ms: now, offering, tranche, amount: add });
        self.put_obj(ObjKey::RegCf(id), Some(Object::RegCf(hist)));
        Ok(())
    }

    fn regcf_remove(&mut self, id: EntityId, offering: u64, tranche: u16) {
        if let Some(Object::RegCf(h)) = self.obj(&ObjKey::RegCf(id)) {
            let mut h = h.clone();
            h.entries.retain(|e| (e.offering, e.tranche) != (offering, tranche));
            let value = if h.entries.is_empty() { None } else { Some(Object::RegCf(h)) };
            self.put_obj(ObjKey::RegCf(id), value);
        }
    }

    fn open_tranche(&self, offering: u64, tranche: u16) -> Result<(Offering, TrancheConfig), RejectCode> {
        let off = self.offering(offering)?;
        if off.status != OfferingStatus::Open {
            return Err(RejectCode::OfferingFinalized);
        }
        let cfg = off.config.tranches.get(usize::from(tranche)).ok_or(RejectCode::UnknownTranche)?.clone();
        Ok((off, cfg))
    }

    pub(crate) fn commit(
        &mut self,
        signer: Address,
        offering: u64,
        tranche: u16,
        amount: Amount,
    ) -> Result<(), RejectCode> {
        let (off, cfg) = self.open_tranche(offering, tranche)?;
        if matches!(cfg.mechanism, Mechanism::BatchAuction { .. }) {
            return Err(RejectCode::WrongMechanism);
        }
        self.check_window(&cfg)?;
        let (entity, rec) = self.check_eligible(signer, &cfg)?;
        let key = ObjKey::Commitment(offering, tranche, entity);
        let existing = self.commitment(offering, tranche, entity);
        if let Some(c) = &existing {
            if c.wallet != signer {
                return Err(RejectCode::OtherWalletCommitted);
            }
        }
        let now = self.now_ms();
        let per = off.config.price_per;
        let mut ts = self.tranche_state(offering, tranche);
        let mut c = existing.clone().unwrap_or(Commitment {
            wallet: signer,
            escrow: Amount::ZERO,
            price: Amount::ZERO,
            quantity: Amount::ZERO,
            before: Amount::ZERO,
            committed_ms: now,
            claimed: false,
        });
        // What gets locked now.
        let add = match &cfg.mechanism {
            Mechanism::FixedPrice { .. } => {
                ts.demand = ts.demand.checked_add(amount).ok_or(RejectCode::AmountOverflow)?;
                amount
            }
            Mechanism::Tiered { tiers } => {
                let fill = alloc::tiered(tiers, ts.demand, amount, per);
                if fill.tokens.is_zero() {
                    return Err(RejectCode::SoldOut);
                }
                ts.demand = ts.demand.checked_add(fill.tokens).ok_or(RejectCode::AmountOverflow)?;
                c.quantity = c.quantity.checked_add(fill.tokens).ok_or(RejectCode::AmountOverflow)?;
                fill.paid
            }
            Mechanism::Dutch { start_price, reserve } => {
                if existing.is_some() {
                    return Err(RejectCode::AlreadyCommitted);
                }
                let price = alloc::dutch_price(*start_price, *reserve, cfg.opens_ms, cfg.closes_ms, now);
                if ts.dutch_end.is_some() || alloc::demand_meets_supply(ts.demand, cfg.supply, price, per) {
                    return Err(RejectCode::AuctionEnded);
                }
                c.before = ts.demand;
                ts.demand = ts.demand.checked_add(amount).ok_or(RejectCode::AmountOverflow)?;
                if alloc::demand_meets_supply(ts.demand, cfg.supply, price, per) {
                    ts.dutch_end = Some((now, price));
                }
                amount
            }
            Mechanism::BatchAuction { .. } => unreachable!("rejected above"),
        };
        c.escrow = c.escrow.checked_add(add).ok_or(RejectCode::AmountOverflow)?;
        Self::check_caps(&cfg, c.escrow)?;
        if cfg.exemption == Exemption::RegCf {
            self.regcf_add(entity, &rec, offering, tranche, add)?;
        }
        let lock = Lock {
            kind: LockKind::SaleEscrow,
            reference: escrow_reference(offering, tranche),
            asset: off.config.quote,
            amount: add,
        };
        self.account_mut(signer).add_lock(lock)?;
        ts.escrowed = ts.escrowed.checked_add(add).ok_or(RejectCode::AmountOverflow)?;
        if existing.is_none() {
            ts.commitments += 1;
        }
        self.put_obj(key, Some(Object::Commitment(c)));
        self.put_obj(ObjKey::Tranche(offering, tranche), Some(Object::Tranche(ts)));
        Ok(())
    }

    pub(crate) fn bid(
        &mut self,
        signer: Address,
        offering: u64,
        tranche: u16,
        price: Amount,
        quantity: Amount,
    ) -> Result<(), RejectCode> {
        let (off, cfg) = self.open_tranche(offering, tranche)?;
        let Mechanism::BatchAuction { reserve, ceiling, increment } = cfg.mechanism else {
            return Err(RejectCode::WrongMechanism);
        };
        self.check_window(&cfg)?;
        let (entity, rec) = self.check_eligible(signer, &cfg)?;
        if price < reserve || !price.0.is_multiple_of(increment.0) || ceiling.is_some_and(|c| price > c) {
            return Err(RejectCode::PriceOffGrid);
        }
        let per = off.config.price_per;
        let escrow = Amount(alloc::mul_div_ceil(quantity.0, price.0, per.0).ok_or(RejectCode::AmountOverflow)?);
        let existing = self.commitment(offering, tranche, entity);
        let (old_escrow, old_qty) = match &existing {
            Some(c) if c.wallet != signer => return Err(RejectCode::OtherWalletCommitted),
            Some(c) if price < c.price || quantity < c.quantity => return Err(RejectCode::BidLowered),
            Some(c) => (c.escrow, c.quantity),
            None => (Amount::ZERO, Amount::ZERO),
        };
        Self::check_caps(&cfg, escrow)?;
        let add = escrow.checked_sub(old_escrow).expect("raised price and quantity never lower the escrow");
        if cfg.exemption == Exemption::RegCf && !add.is_zero() {
            self.regcf_add(entity, &rec, offering, tranche, add)?;
        }
        if !add.is_zero() {
            let lock = Lock {
                kind: LockKind::SaleEscrow,
                reference: escrow_reference(offering, tranche),
                asset: off.config.quote,
                amount: add,
            };
            self.account_mut(signer).add_lock(lock)?;
        }
        let mut ts = self.tranche_state(offering, tranche);
        ts.escrowed = ts.escrowed.checked_add(add).ok_or(RejectCode::AmountOverflow)?;
        ts.demand = ts.demand.checked_add(Amount(quantity.0 - old_qty.0)).ok_or(RejectCode::AmountOverflow)?;
        if existing.is_none() {
            ts.commitments += 1;
        }
        let c = Commitment {
            wallet: signer,
            escrow,
            price,
            quantity,
            before: Amount::ZERO,
            committed_ms: existing.map_or(self.now_ms(), |c| c.committed_ms),
            claimed: false,
        };
        self.put_obj(ObjKey::Commitment(offering, tranche, entity), Some(Object::Commitment(c)));
        self.put_obj(ObjKey::Tranche(offering, tranche), Some(Object::Tranche(ts)));
        Ok(())
    }

    pub(crate) fn cancel_commitment(&mut self, signer: Address, offering: u64, tranche: u16) -> Result<(), RejectCode> {
        let (off, cfg) = self.open_tranche(offering, tranche)?;
        let deadline = cfg.cancel_deadline_ms().ok_or(RejectCode::CancellationClosed)?;
        if self.now_ms() > deadline {
            return Err(RejectCode::CancellationClosed);
        }
        let entity = self.wallet_entity(&signer).ok_or(RejectCode::WalletNotVerified)?;
        let c = self.commitment(offering, tranche, entity).ok_or(RejectCode::NoCommitment)?;
        if c.wallet != signer {
            return Err(RejectCode::OtherWalletCommitted);
        }
        let released = self.account_mut(signer).release_lock(
            LockKind::SaleEscrow,
            escrow_reference(offering, tranche),
            off.config.quote,
            c.escrow,
        );
        assert_eq!(released, c.escrow, "a commitment's escrow is locked on its wallet");
        let mut ts = self.tranche_state(offering, tranche);
        ts.escrowed = ts.escrowed.checked_sub(c.escrow).expect("escrowed is the sum of escrows");
        let demand_part = match cfg.mechanism {
            Mechanism::BatchAuction { .. } => c.quantity,
            _ => c.escrow, // fixed price (tiered and Dutch cannot be cancelled)
        };
        ts.demand = ts.demand.checked_sub(demand_part).expect("demand includes this commitment");
        ts.commitments -= 1;
        if cfg.exemption == Exemption::RegCf {
            self.regcf_remove(entity, offering, tranche);
        }
        self.put_obj(ObjKey::Commitment(offering, tranche, entity), None);
        self.put_obj(ObjKey::Tranche(offering, tranche), Some(Object::Tranche(ts)));
        Ok(())
    }

    /// Fixes each tranche's rule and the exact totals, in one pass over the commitments.
    pub(crate) fn finalize_offering(&mut self, signer: Address, offering: u64) -> Result<(), RejectCode> {
        let mut off = self.offering(offering)?;
        if off.creator != signer {
            return Err(RejectCode::NotOfferingCreator);
        }
        if off.status != OfferingStatus::Open {
            return Err(RejectCode::OfferingFinalized);
        }
        if self.now_ms() < off.config.closes_ms() {
            return Err(RejectCode::OfferingStillOpen);
        }
        let per = off.config.price_per;
        let mut settled = Vec::with_capacity(off.config.tranches.len());
        let mut proceeds = 0u128;
        for (t, cfg) in off.config.tranches.iter().enumerate() {
            let t = t as u16;
            let ts = self.tranche_state(offering, t);
            let (lo, hi) = ObjKey::commitments_of(offering, t);
            let commitments: Vec<&Commitment> = self
                .objects_in(lo, hi)
                .into_iter()
                .filter_map(|(_, o)| match o {
                    Object::Commitment(c) => Some(c),
                    _ => None,
                })
                .collect();
            let rule = match &cfg.mechanism {
                Mechanism::FixedPrice { price, fill: primitives::sale::Fill::ProRata } => {
                    Rule::ProRata { capacity: alloc::capacity(cfg.supply, *price, per), demand: ts.demand }
                }
                Mechanism::FixedPrice { price, fill: primitives::sale::Fill::WaterFill } => {
                    let mut sorted: Vec<Amount> = commitments.iter().map(|c| c.escrow).collect();
                    sorted.sort_unstable();
                    let level = alloc::water_level(&sorted, alloc::capacity(cfg.supply, *price, per));
                    Rule::WaterFill { level: level.unwrap_or(Amount(u128::MAX)) }
                }
                Mechanism::Tiered { .. } => Rule::AsCommitted,
                Mechanism::BatchAuction { reserve, .. } => {
                    let mut levels: std::collections::BTreeMap<Amount, u128> = std::collections::BTreeMap::new();
                    for c in &commitments {
                        let q = levels.entry(c.price).or_default();
                        *q = q.saturating_add(c.quantity.0);
                    }
                    let levels: Vec<(Amount, Amount)> = levels.into_iter().map(|(p, q)| (p, Amount(q))).collect();
                    let (price, rest, at_price) = alloc::clearing(&levels, cfg.supply, *reserve);
                    Rule::Clearing { price, rest, at_price }
                }
                Mechanism::Dutch { reserve, .. } => {
                    let price = match ts.dutch_end {
                        Some((_, p)) => p,
                        None => alloc::dutch_clock_price(ts.demand, cfg.supply, *reserve, per),
                    };
                    Rule::Dutch { price, capacity: alloc::capacity(cfg.supply, price, per) }
                }
            };
            let (mut tokens, mut paid, mut escrowed) = (0u128, 0u128, 0u128);
            for c in &commitments {
                let f = allocate(&rule, cfg, per, c);
                tokens += f.tokens.0;
                paid += f.paid.0;
                escrowed += c.escrow.0;
            }
            assert!(tokens <= cfg.supply.0, "tranche {t} of offering {offering} oversold");
            assert_eq!(escrowed, ts.escrowed.0, "escrow totals drifted");
            proceeds += paid;
            settled.push((
                ts,
                Settlement {
                    rule,
                    tokens_sold: Amount(tokens),
                    proceeds: Amount(paid),
                    refunds: Amount(escrowed - paid),
                },
            ));
        }
        let success = proceeds >= off.config.soft_cap.0;
        let (mut sold_total, mut proceeds_total) = (0u128, 0u128);
        for (t, (mut ts, mut s)) in settled.into_iter().enumerate() {
            if !success {
                s = Settlement {
                    rule: Rule::RefundAll,
                    tokens_sold: Amount::ZERO,
                    proceeds: Amount::ZERO,
                    refunds: ts.escrowed,
                };
            }
            sold_total += s.tokens_sold.0;
            proceeds_total += s.proceeds.0;
            ts.settlement = Some(s);
            self.put_obj(ObjKey::Tranche(offering, t as u16), Some(Object::Tranche(ts)));
        }
        off.status = if success { OfferingStatus::Settled } else { OfferingStatus::Failed };
        off.tokens_sold = Amount(sold_total);
        off.proceeds = Amount(proceeds_total);
        off.settled_ms = self.now_ms();
        self.put_obj(ObjKey::Offering(offering), Some(Object::Offering(off)));
        Ok(())
    }

    pub(crate) fn claim(&mut self, offering: u64, tranche: u16, entity: EntityId) -> Result<(), RejectCode> {
        let off = self.offering(offering)?;
        if off.status == OfferingStatus::Open {
            return Err(RejectCode::OfferingNotFinalized);
        }
        let cfg = off.config.tranches.get(usize::from(tranche)).ok_or(RejectCode::UnknownTranche)?;
        let mut c = self.commitment(offering, tranche, entity).ok_or(RejectCode::NoCommitment)?;
        if c.claimed {
            return Err(RejectCode::AlreadyClaimed);
        }
        if self.entity(entity).is_some_and(|e| e.attestation.screening == primitives::sale::Screening::Hit) {
            return Err(RejectCode::SanctionedParty);
        }
        let ts = self.tranche_state(offering, tranche);
        let rule = &ts.settlement.as_ref().expect("a finalized offering has settled every tranche").rule;
        let fill = allocate(rule, cfg, off.config.price_per, &c);
        let (quote, asset, wallet, now) = (off.config.quote, off.config.asset, c.wallet, self.now_ms());
        let released = self.account_mut(wallet).release_lock(
            LockKind::SaleEscrow,
            escrow_reference(offering, tranche),
            quote,
            c.escrow,
        );
        assert_eq!(released, c.escrow, "a commitment's escrow is locked on its wallet");
        if !fill.paid.is_zero() {
            self.account_mut(wallet).debit(quote, fill.paid).expect("the paid part was locked a moment ago");
            self.account_mut(off.escrow).credit(quote, fill.paid)?;
        }
        if !fill.tokens.is_zero() {
            self.account_mut(off.escrow).debit(asset, fill.tokens).expect("the escrow holds every unsold token");
            self.account_mut(wallet).credit(asset, fill.tokens)?;
            if let Some(schedule) = &cfg.lot.schedule {
                if vesting::vested(schedule, fill.tokens, now) < fill.tokens {
                    let source = GrantSource::Sale { offering, tranche };
                    self.lock_under_schedule(source, off.escrow, wallet, asset, fill.tokens, schedule.clone(), false)?;
                }
            }
            if let (Resale::NonUsOnlyDuringDcp, Exemption::RegS { dcp_ms }) = (cfg.lot.resale, cfg.exemption) {
                let until_ms = cfg.closes_ms.saturating_add(dcp_ms);
                if until_ms > now {
                    let acct = self.account_mut(wallet);
                    let r = Restriction { asset, until_ms, kind: RestrictionKind::NonUsRecipientsOnly };
                    match acct.restrictions.binary_search_by(|x| (x.asset, x.kind).cmp(&(r.asset, r.kind))) {
                        Ok(i) => acct.restrictions[i].until_ms = acct.restrictions[i].until_ms.max(until_ms),
                        Err(i) => acct.restrictions.insert(i, r),
                    }
                }
            }
        }
        c.claimed = true;
        self.put_obj(ObjKey::Commitment(offering, tranche, entity), Some(Object::Commitment(c)));
        Ok(())
    }

    pub(crate) fn withdraw_proceeds(&mut self, signer: Address, offering: u64) -> Result<(), RejectCode> {
        let mut off = self.offering(offering)?;
        if off.creator != signer {
            return Err(RejectCode::NotOfferingCreator);
        }
        if off.status == OfferingStatus::Open {
            return Err(RejectCode::OfferingNotFinalized);
        }
        let received = self.account(&off.escrow).map_or(Amount::ZERO, |a| a.balance(off.config.quote));
        if !received.is_zero() {
            self.account_mut(off.escrow).debit(off.config.quote, received).expect("its own balance");
            self.account_mut(signer).credit(off.config.quote, received)?;
            off.proceeds_withdrawn = off.proceeds_withdrawn.checked_add(received).ok_or(RejectCode::AmountOverflow)?;
        }
        let unsold = off
            .config
            .total_supply()
            .checked_sub(off.tokens_sold)
            .and_then(|u| u.checked_sub(off.tokens_returned))
            .expect("sold + returned ≤ supply");
        if !unsold.is_zero() {
            self.account_mut(off.escrow).debit(off.config.asset, unsold).expect("unsold tokens stay in the escrow");
            self.account_mut(signer).credit(off.config.asset, unsold)?;
            off.tokens_returned = off.tokens_returned.checked_add(unsold).expect("≤ supply");
        }
        self.put_obj(ObjKey::Offering(offering), Some(Object::Offering(off)));
        Ok(())
    }

    /// Locks `total` of `asset` (already credited to `beneficiary`) under `schedule`,
    /// and releases what has vested already.
    #[allow(clippy::too_many_arguments)]
    fn lock_under_schedule(
        &mut self,
        source: GrantSource,
        grantor: Address,
        beneficiary: Address,
        asset: AssetId,
        total: Amount,
        schedule: Schedule,
        revocable: bool,
    ) -> Result<u64, RejectCode> {
        let id = self.next_id(|c| &mut c.next_grant);
        let kind = lock_kind(source);
        self.account_mut(beneficiary).add_lock(Lock { kind, reference: id, asset, amount: total })?;
        let grant = Grant {
            id,
            source,
            grantor,
            beneficiary,
            asset,
            total,
            released: Amount::ZERO,
            schedule,
            revocable,
            revoked_ms: None,
        };
        self.put_obj(ObjKey::Grant(id), Some(Object::Grant(grant)));
        self.release_vested(id)?;
        Ok(id)
    }

    pub(crate) fn create_grant(
        &mut self,
        signer: Address,
        beneficiary: Address,
        asset: AssetId,
        amount: Amount,
        schedule: &Schedule,
        revocable: bool,
    ) -> Result<(), RejectCode> {
        self.asset(&asset).ok_or(RejectCode::UnknownAsset)?;
        self.debit_releasing(signer, asset, amount)?;
        self.account_mut(beneficiary).credit(asset, amount)?;
        self.lock_under_schedule(GrantSource::Grant, signer, beneficiary, asset, amount, schedule.clone(), revocable)?;
        Ok(())
    }

    fn grant(&self, id: u64) -> Result<Grant, RejectCode> {
        match self.obj(&ObjKey::Grant(id)) {
            Some(Object::Grant(g)) => Ok(g.clone()),
            _ => Err(RejectCode::UnknownGrant),
        }
    }

    pub(crate) fn revoke_grant(&mut self, signer: Address, id: u64) -> Result<(), RejectCode> {
        let mut g = self.grant(id)?;
        if g.grantor != signer {
            return Err(RejectCode::NotGrantor);
        }
        if !g.revocable || g.revoked_ms.is_some() {
            return Err(RejectCode::GrantNotRevocable);
        }
        let now = self.now_ms();
        let vested = vesting::vested(&g.schedule, g.total, now);
        let unvested = g.total.checked_sub(vested).expect("vested ≤ total");
        if !unvested.is_zero() {
            let b = self.account_mut(g.beneficiary);
            let released = b.release_lock(lock_kind(g.source), id, g.asset, unvested);
            assert_eq!(released, unvested, "the unvested part is still locked");
            b.debit(g.asset, unvested).expect("just unlocked");
            self.account_mut(g.grantor).credit(g.asset, unvested)?;
        }
        g.total = vested;
        g.revoked_ms = Some(now);
        self.put_obj(ObjKey::Grant(id), Some(Object::Grant(g)));
        self.release_vested(id)?;
        Ok(())
    }

    /// Unlocks what has vested of a grant; returns the amount unlocked.
    pub(crate) fn release_vested(&mut self, id: u64) -> Result<Amount, RejectCode> {
        let mut g = self.grant(id)?;
        let vested = match g.revoked_ms {
            Some(_) => g.total, // frozen at revocation
            None => vesting::vested(&g.schedule, g.total, self.now_ms()),
        };
        let releasable = vested.checked_sub(g.released).expect("released ≤ vested");
        if releasable.is_zero() {
            return Ok(Amount::ZERO);
        }
        let released = self.account_mut(g.beneficiary).release_lock(lock_kind(g.source), id, g.asset, releasable);
        assert_eq!(released, releasable, "a grant's unreleased part is locked");
        g.released = g.released.checked_add(releasable).expect("≤ total");
        self.put_obj(ObjKey::Grant(id), Some(Object::Grant(g)));
        Ok(releasable)
    }

    /// ERC-1404-style checks before a transfer: sanctioned or revoked parties, and a
    /// sender's distribution-compliance restriction on the asset.
    pub(crate) fn check_transfer_restrictions(
        &mut self,
        from: Address,
        to: Address,
        asset: AssetId,
    ) -> Result<(), RejectCode> {
        let now = self.now_ms();
        let (from_entity, restricted) = match self.account(&from) {
            Some(a) => (a.entity, a.restrictions.iter().any(|r| r.asset == asset)),
            None => (None, false),
        };
        let to_entity = self.account(&to).and_then(|a| a.entity);
        for e in [from_entity, to_entity].into_iter().flatten() {
            if self.entity(e).is_some_and(EntityRecord::blocked) {
                return Err(RejectCode::SanctionedParty);
            }
        }
        if restricted {
            let acct = self.account_mut(from);
            acct.restrictions.retain(|r| r.until_ms > now);
            if acct.restrictions.iter().any(|r| r.asset == asset && r.kind == RestrictionKind::NonUsRecipientsOnly) {
                let ok = to_entity
                    .and_then(|e| self.entity(e))
                    .is_some_and(|r| !r.blocked() && !r.attestation.us_person && now < r.attestation.kyc_expires_ms);
                if !ok {
                    return Err(RejectCode::RecipientIneligible);
                }
            }
        }
        Ok(())
    }

    /// Debits spendable funds; if locks stand in the way, first releases what has vested
    /// of the account's grants and lots in that asset. `locked` if the balance would
    /// cover the amount but locks still hold it.
    pub(crate) fn debit_releasing(&mut self, who: Address, asset: AssetId, amount: Amount) -> Result<(), RejectCode> {
        match self.account_mut(who).debit(asset, amount) {
            Err(RejectCode::InsufficientFunds) => {}
            other => return other,
        }
        let acct = self.account(&who).cloned().unwrap_or_default();
        if acct.balance(asset) < amount {
            return Err(RejectCode::InsufficientFunds);
        }
        let grants: Vec<u64> = acct
            .locks
            .iter()
            .filter(|l| l.asset == asset && matches!(l.kind, LockKind::Vesting | LockKind::SaleLockup))
            .map(|l| l.reference)
            .collect();
        for id in grants {
            self.release_vested(id)?;
        }
        self.account_mut(who).debit(asset, amount).map_err(|_| RejectCode::Locked)
    }
}

fn lock_kind(source: GrantSource) -> LockKind {
    match source {
        GrantSource::Grant => LockKind::Vesting,
        GrantSource::Sale { .. } => LockKind::SaleLockup,
    }
}
