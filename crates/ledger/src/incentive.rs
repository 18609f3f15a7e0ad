//! Provider incentives on the ledger: emission, neuron slots, weights, staking and the
//! Yuma-consensus epoch every `tempo` blocks (shared/design/INCENTIVES.md; the epoch itself is
//! the `incentives` crate, bit-exact with subtensor's production path).
//!
//! * Emission: each block mints the scheduled reward (halving by emitted share of the cap)
//!   into the incentive pool, a module account. Registration fees go to the same pool. An
//!   epoch distributes what the pool holds: providers' incentive is paid to their accounts,
//!   evaluators' dividends to their stake pools. Rounding dust stays for the next epoch, so
//!   paid + pool = emitted + fees, always.
//! * Staking: one mechanism for everything stake is used for (evaluator permits, dividends,
//!   and the gateway's stake-for-access). Each evaluator has a share-based pool: delegators
//!   hold shares, dividends raise the pool's TSR without new shares (auto-compounding, O(1)
//!   per evaluator per epoch), the evaluator's take is minted to it as shares. Unstaked TSR
//!   returns to the delegator locked (`LockKind::Unbonding`, reference = release height).

use crate::alloc::{mul_div, mul_div_ceil};
use crate::execute::Overlay;
use crate::objects::{module_account, Delegation, NeuronRecord, ObjKey, Object, StakePool, SubnetRecord, WeightCommit};
use crate::state::{Lock, LockKind};
use incentives::{run_epoch, Params, SubnetState};
use primitives::incentive::{block_emission, weight_commit_hash, IncentiveParams, BPS, WEIGHT_COMMITS_MAX};
use primitives::{Address, Amount, AssetId, Hash, RejectCode};

/// The module account that holds emitted and recycled TSR until an epoch pays it out.
pub fn incentive_pool_account() -> Address {
    module_account("incentive pool", 0)
}

/// The module account that holds every staked TSR.
pub fn stake_account() -> Address {
    module_account("stake", 0)
}

/// The registration fee at `height`: halved every `burn_half_life` blocks since it was last
/// set, linearly between halvings, and kept within `[burn_min, burn_max]`.
pub fn current_burn(p: &IncentiveParams, subnet: &SubnetRecord, height: u64) -> Amount {
    let elapsed = height.saturating_sub(subnet.burn_height);
    let halvings = elapsed / p.burn_half_life;
    let rest = (elapsed % p.burn_half_life) as u128;
    let halved = if halvings >= 128 { 0 } else { subnet.burn.0 >> halvings };
    let h2 = 2 * p.burn_half_life as u128;
    let v = mul_div(halved, h2 - rest, h2).unwrap_or(0);
    Amount(v.clamp(p.burn_min_base_units.0, p.burn_max_base_units.0))
}

/// The network's record in a committed state (the initial one before any block).
pub fn subnet_record(state: &crate::State, p: &IncentiveParams) -> SubnetRecord {
    match state.object(&ObjKey::Subnet) {
        Some(Object::Subnet(s)) => s.clone(),
        _ => SubnetRecord::initial(p),
    }
}

/// Which epoch `height` is in (commit-reveal windows count in these).
fn epoch_index(height: u64, p: &IncentiveParams) -> u64 {
    height / p.tempo as u64
}

/// The epoch parameters for the ledger's network.
pub fn epoch_params(p: &IncentiveParams, emission: u64) -> Params {
    Params {
        kappa: p.kappa,
        bonds_penalty: p.bonds_penalty,
        bonds_moving_average: p.bonds_moving_average,
        tempo: p.tempo,
        activity_cutoff_factor_milli: p.activity_cutoff_factor_milli,
        max_allowed_validators: p.max_validators,
        stake_threshold: p.stake_threshold_base_units,
        yuma3_enabled: p.yuma3,
        liquid_alpha_enabled: p.liquid_alpha,
        alpha_low: p.alpha_low,
        alpha_high: p.alpha_high,
        alpha_sigmoid_steepness: p.alpha_sigmoid_steepness,
        tao_weight: 0,
        rao_emission: emission,
        commit_reveal_enabled: p.commit_reveal,
        owner_uid: None,
    }
}

/// The TSR value of `shares` of a pool (floor).
pub fn share_value(pool: &StakePool, shares: u128) -> Amount {
    if pool.shares == 0 {
        return Amount::ZERO;
    }
    Amount(mul_div(shares, pool.total.0, pool.shares).unwrap_or(0))
}

impl Overlay<'_> {
    fn incentive_params(&self) -> Result<IncentiveParams, RejectCode> {
        self.base.params.incentives.clone().ok_or(RejectCode::IncentivesDisabled)
    }

    pub(crate) fn subnet(&self, p: &IncentiveParams) -> SubnetRecord {
        match self.obj(&ObjKey::Subnet) {
            Some(Object::Subnet(s)) => s.clone(),
            _ => SubnetRecord::initial(p),
        }
    }

    fn put_subnet(&mut self, s: SubnetRecord) {
        self.put_obj(ObjKey::Subnet, Some(Object::Subnet(s)));
    }

    fn neuron_ref(&self, uid: u16) -> &NeuronRecord {
        match self.obj(&ObjKey::Neuron(uid)) {
            Some(Object::Neuron(n)) => n,
            _ => panic!("uid {uid} below n has a neuron record"),
        }
    }

    fn neuron(&self, uid: u16) -> NeuronRecord {
        self.neuron_ref(uid).clone()
    }

    fn put_neuron(&mut self, n: NeuronRecord) {
        self.put_obj(ObjKey::Neuron(n.uid), Some(Object::Neuron(n)));
    }

    fn uid_of(&self, who: &Address) -> Option<u16> {
        match self.obj(&ObjKey::NeuronOf(*who)) {
            Some(Object::Uid(u)) => Some(*u),
            _ => None,
        }
    }

    fn stake_pool(&self, evaluator: &Address) -> Option<StakePool> {
        match self.obj(&ObjKey::StakePool(*evaluator)) {
            Some(Object::StakePool(p)) => Some(p.clone()),
            _ => None,
        }
    }

    fn delegation(&self, staker: Address, evaluator: Address) -> u128 {
        match self.obj(&ObjKey::Delegation(staker, evaluator)) {
            Some(Object::Delegation(d)) => d.shares,
            _ => 0,
        }
    }

    fn put_delegation(&mut self, staker: Address, evaluator: Address, shares: u128) {
        let object = (shares > 0).then_some(Object::Delegation(Delegation { shares }));
        self.put_obj(ObjKey::Delegation(staker, evaluator), object);
    }

    fn move_tsr(&mut self, from: Address, to: Address, amount: Amount) -> Result<(), RejectCode> {
        self.account_mut(from).debit(AssetId::TSR, amount)?;
        self.account_mut(to).credit(AssetId::TSR, amount)
    }

    pub(crate) fn register_neuron(&mut self, signer: Address, max_burn: Amount) -> Result<(), RejectCode> {
        let p = self.incentive_params()?;
        if self.uid_of(&signer).is_some() {
            return Err(RejectCode::NeuronExists);
        }
        let height = self.height();
        let mut subnet = self.subnet(&p);
        let burn = current_burn(&p, &subnet, height);
        if burn > max_burn {
            return Err(RejectCode::BurnAboveLimit);
        }
        let uid = if subnet.n < p.max_uids {
            subnet.n += 1;
            subnet.n - 1
        } else {
            let uid = self.neuron_to_prune(&p, subnet.n, height).ok_or(RejectCode::NoSlotAvailable)?;
            self.replace_neuron(uid, subnet.n);
            uid
        };
        self.debit_releasing(signer, AssetId::TSR, burn)?;
        self.account_mut(incentive_pool_account()).credit(AssetId::TSR, burn)?;
        let raised = mul_div(burn.0, p.burn_increase_permille as u128, 1000).unwrap_or(u128::MAX);
        subnet.burn = Amount(raised.clamp(p.burn_min_base_units.0, p.burn_max_base_units.0));
        subnet.burn_height = height;
        subnet.fees = subnet.fees.checked_add(burn).ok_or(RejectCode::AmountOverflow)?;
        self.put_subnet(subnet);
        self.put_neuron(NeuronRecord::new(uid, signer, height));
        self.put_obj(ObjKey::NeuronOf(signer), Some(Object::Uid(uid)));
        if self.stake_pool(&signer).is_none() {
            let pool = StakePool { total: Amount::ZERO, shares: 0, take_bps: p.default_take_bps };
            self.put_obj(ObjKey::StakePool(signer), Some(Object::StakePool(pool)));
        }
        Ok(())
    }

    /// INCENTIVES.md §7: the lowest-emission neuron past immunity (ties: earlier
    /// registration, then lower uid) while more than `min_non_immune_uids` are past it;
    /// otherwise the lowest-emission immune one.
    fn neuron_to_prune(&self, p: &IncentiveParams, n: u16, height: u64) -> Option<u16> {
        let mut immune_best: Option<(u64, u64, u16)> = None;
        let mut other_best: Option<(u64, u64, u16)> = None;
        let mut non_immune = 0usize;
        for uid in 0..n {
            let nr = self.neuron_ref(uid);
            let key = (nr.emission, nr.registered_height, uid);
            if height.saturating_sub(nr.registered_height) < p.immunity_period {
                immune_best = Some(immune_best.map_or(key, |b| b.min(key)));
            } else {
                non_immune += 1;
                other_best = Some(other_best.map_or(key, |b| b.min(key)));
            }
        }
        if non_immune > p.min_non_immune_uids as usize {
            other_best.map(|k| k.2)
        } else {
            immune_best.or(other_best).map(|k| k.2)
        }
    }

    /// A new key takes `uid`: the old key's registration goes, and every weight pointing at
    /// the uid is set to 0 (the entry stays, as in subtensor), so the new key inherits no
    /// score. The epoch's outdated-weights and recent-registration masks do the rest.
    fn replace_neuron(&mut self, uid: u16, n: u16) {
        let old = self.neuron_ref(uid).hotkey;
        self.put_obj(ObjKey::NeuronOf(old), None);
        for other in 0..n {
            if self.neuron_ref(other).weights.iter().any(|c| c.0 == uid && c.1 != 0) {
                let mut nr = self.neuron(other);
                nr.weights.iter_mut().filter(|c| c.0 == uid).for_each(|c| c.1 = 0);
                self.put_neuron(nr);
            }
        }
    }

    pub(crate) fn set_weights(&mut self, signer: Address, uids: &[u16], weights: &[u16]) -> Result<(), RejectCode> {
        let p = self.incentive_params()?;
        if p.commit_reveal {
            return Err(RejectCode::CommitRevealRequired);
        }
        let mut nr = self.weight_setter(&p, signer, uids)?;
        // The rate limit runs from the last accepted weights; registration counts as one.
        let height = self.height();
        if height.saturating_sub(nr.last_update) < p.weights_rate_limit {
            return Err(RejectCode::WeightsRateLimited);
        }
        nr.weights = uids.iter().copied().zip(incentives::epoch::max_upscale(weights)).collect();
        nr.last_update = height;
        self.put_neuron(nr);
        Ok(())
    }

    /// The signer's neuron, if it may set these weights: known uids, and a validator permit
    /// and the minimum number of entries unless it is a single self-weight.
    fn weight_setter(&self, p: &IncentiveParams, signer: Address, uids: &[u16]) -> Result<NeuronRecord, RejectCode> {
        let uid = self.uid_of(&signer).ok_or(RejectCode::NotNeuron)?;
        let subnet = self.subnet(p);
        if uids.iter().any(|&u| u >= subnet.n) {
            return Err(RejectCode::UnknownUid);
        }
        let nr = self.neuron_ref(uid);
        if uids != [uid] {
            if !nr.validator_permit {
                return Err(RejectCode::NoValidatorPermit);
            }
            if uids.len() < p.min_allowed_weights.min(subnet.n) as usize {
                return Err(RejectCode::TooFewWeights);
            }
        }
        Ok(nr.clone())
    }

    fn epoch_index(&self, p: &IncentiveParams) -> u64 {
        epoch_index(self.height(), p)
    }

    pub(crate) fn commit_weights(&mut self, signer: Address, hash: Hash) -> Result<(), RejectCode> {
        let p = self.incentive_params()?;
        if !p.commit_reveal {
            return Err(RejectCode::CommitRevealDisabled);
        }
        let uid = self.uid_of(&signer).ok_or(RejectCode::NotNeuron)?;
        let mut nr = self.neuron(uid);
        let epoch = self.epoch_index(&p);
        nr.commits.retain(|c| !c.expired(epoch, p.reveal_period_epochs));
        if nr.commits.len() >= WEIGHT_COMMITS_MAX {
            return Err(RejectCode::TooManyCommits);
        }
        let height = self.height();
        if height.saturating_sub(nr.last_commit) < p.weights_rate_limit {
            return Err(RejectCode::WeightsRateLimited);
        }
        nr.commits.push(WeightCommit { hash, epoch, block: height });
        nr.last_commit = height;
        self.put_neuron(nr);
        Ok(())
    }

    pub(crate) fn reveal_weights(
        &mut self,
        signer: Address,
        uids: &[u16],
        weights: &[u16],
        salt: &Hash,
    ) -> Result<(), RejectCode> {
        let p = self.incentive_params()?;
        if !p.commit_reveal {
            return Err(RejectCode::CommitRevealDisabled);
        }
        let mut nr = self.weight_setter(&p, signer, uids)?;
        let epoch = self.epoch_index(&p);
        let hash = weight_commit_hash(&signer, uids, weights, salt);
        let i = nr
            .commits
            .iter()
            .position(|c| c.hash == hash && !c.expired(epoch, p.reveal_period_epochs))
            .ok_or(RejectCode::NoMatchingCommit)?;
        let commit = nr.commits.remove(i);
        if epoch < commit.epoch + p.reveal_period_epochs {
            return Err(RejectCode::RevealTooEarly);
        }
        nr.weights = uids.iter().copied().zip(incentives::epoch::max_upscale(weights)).collect();
        // As in subtensor: the weights count as set at the commit.
        nr.last_update = commit.block;
        self.put_neuron(nr);
        Ok(())
    }

    pub(crate) fn stake(&mut self, signer: Address, evaluator: Address, amount: Amount) -> Result<(), RejectCode> {
        self.incentive_params()?;
        let mut pool = self.stake_pool(&evaluator).ok_or(RejectCode::NotEvaluator)?;
        let minted = if pool.shares == 0 || pool.total.is_zero() {
            amount.0
        } else {
            mul_div(amount.0, pool.shares, pool.total.0).ok_or(RejectCode::AmountOverflow)?
        };
        if minted == 0 {
            return Err(RejectCode::InsufficientStake);
        }
        self.debit_releasing(signer, AssetId::TSR, amount)?;
        self.account_mut(stake_account()).credit(AssetId::TSR, amount)?;
        pool.total = pool.total.checked_add(amount).ok_or(RejectCode::AmountOverflow)?;
        pool.shares = pool.shares.checked_add(minted).ok_or(RejectCode::AmountOverflow)?;
        let held = self.delegation(signer, evaluator);
        self.put_delegation(signer, evaluator, held + minted);
        self.put_obj(ObjKey::StakePool(evaluator), Some(Object::StakePool(pool)));
        Ok(())
    }

    pub(crate) fn unstake(&mut self, signer: Address, evaluator: Address, amount: Amount) -> Result<(), RejectCode> {
        let p = self.incentive_params()?;
        let mut pool = self.stake_pool(&evaluator).ok_or(RejectCode::NotEvaluator)?;
        let held = self.delegation(signer, evaluator);
        if share_value(&pool, held) < amount {
            return Err(RejectCode::InsufficientStake);
        }
        // Round the shares burned up, so the pool never pays out more than it holds.
        let burned = mul_div_ceil(amount.0, pool.shares, pool.total.0).ok_or(RejectCode::AmountOverflow)?;
        debug_assert!(burned <= held);
        pool.shares -= burned;
        pool.total = pool.total.checked_sub(amount).expect("amount <= the delegator's value <= total");
        self.put_delegation(signer, evaluator, held - burned);
        self.put_obj(ObjKey::StakePool(evaluator), Some(Object::StakePool(pool)));
        self.move_tsr(stake_account(), signer, amount)?;
        let release = self.height().saturating_add(p.unbonding_blocks);
        self.account_mut(signer).add_lock(Lock {
            kind: LockKind::Unbonding,
            reference: release,
            asset: AssetId::TSR,
            amount,
        })
    }

    pub(crate) fn withdraw_unstaked(&mut self, signer: Address) -> Result<(), RejectCode> {
        self.incentive_params()?;
        let height = self.height();
        let due: Vec<Lock> = self
            .account(&signer)
            .map(|a| {
                a.locks.iter().filter(|l| l.kind == LockKind::Unbonding && l.reference <= height).copied().collect()
            })
            .unwrap_or_default();
        if due.is_empty() {
            return Err(RejectCode::NothingUnbonded);
        }
        let acct = self.account_mut(signer);
        for l in due {
            acct.release_lock(l.kind, l.reference, l.asset, l.amount);
        }
        Ok(())
    }

    pub(crate) fn set_take(&mut self, signer: Address, take_bps: u16) -> Result<(), RejectCode> {
        let p = self.incentive_params()?;
        let mut pool = self.stake_pool(&signer).ok_or(RejectCode::NotEvaluator)?;
        if take_bps > p.max_take_bps {
            return Err(RejectCode::TakeTooHigh);
        }
        pool.take_bps = take_bps;
        self.put_obj(ObjKey::StakePool(signer), Some(Object::StakePool(pool)));
        Ok(())
    }

    /// After the block's transactions: mint this block's emission into the pool and, every
    /// `tempo` blocks, run the epoch and pay it out.
    pub(crate) fn end_block(&mut self) {
        let Some(p) = self.base.params.incentives.clone() else {
            return;
        };
        let height = self.height();
        let mut subnet = self.subnet(&p);
        let e = block_emission(p.block_reward_base_units, subnet.emitted, p.emission_cap_base_units);
        if !e.is_zero() {
            let mut tsr = self.asset(&AssetId::TSR).expect("TSR exists").clone();
            tsr.supply = tsr.supply.checked_add(e).expect("emission is capped far below 2^128");
            self.put_asset(tsr);
            self.account_mut(incentive_pool_account()).credit(AssetId::TSR, e).expect("the pool holds one asset");
            subnet.emitted = subnet.emitted.checked_add(e).expect("capped");
            self.put_subnet(subnet.clone());
        }
        if height.is_multiple_of(p.tempo as u64) && subnet.n > 0 {
            self.run_epoch(&p, subnet);
        }
    }

    fn run_epoch(&mut self, p: &IncentiveParams, mut subnet: SubnetRecord) {
        let height = self.height();
        let pool_account = incentive_pool_account();
        let available = self.account(&pool_account).map_or(Amount::ZERO, |a| a.balance(AssetId::TSR));
        let emission = u64::try_from(available.0).unwrap_or(u64::MAX);
        let mut neurons: Vec<NeuronRecord> = (0..subnet.n).map(|uid| self.neuron(uid)).collect();
        let pools: Vec<Option<StakePool>> = neurons.iter().map(|nr| self.stake_pool(&nr.hotkey)).collect();
        let n = neurons.len();
        let epoch = epoch_index(height, p);
        let commit_block = neurons
            .iter()
            .map(|nr| nr.commits.iter().filter(|c| !c.expired(epoch, p.reveal_period_epochs)).map(|c| c.block).min())
            .collect();
        // The rows move into the epoch's input (weights come back below, bonds are replaced).
        let mut state = SubnetState {
            alpha_stake: pools
                .iter()
                .map(|pool| pool.as_ref().map_or(0, |pl| u64::try_from(pl.total.0).unwrap_or(u64::MAX)))
                .collect(),
            tao_stake: vec![0; n],
            validator_permit: neurons.iter().map(|nr| nr.validator_permit).collect(),
            last_update: neurons.iter().map(|nr| nr.last_update).collect(),
            block_at_registration: neurons.iter().map(|nr| nr.registered_height).collect(),
            weights: neurons.iter_mut().map(|nr| std::mem::take(&mut nr.weights)).collect(),
            bonds: neurons.iter_mut().map(|nr| std::mem::take(&mut nr.bonds)).collect(),
            last_mechanism_step_block: subnet.last_epoch_height,
            commit_block,
        };
        let result = run_epoch(&epoch_params(p, emission), &state, height);

        let mut paid = Amount::ZERO;
        for (i, mut nr) in neurons.into_iter().enumerate() {
            let server = Amount(result.server_emission[i] as u128);
            let validator = Amount(result.validator_emission[i] as u128);
            if !server.is_zero() {
                self.move_tsr(pool_account, nr.hotkey, server).expect("the epoch pays at most what the pool holds");
            }
            if !validator.is_zero() {
                self.pay_dividends(nr.hotkey, validator);
            }
            paid = paid.checked_add(server).and_then(|v| v.checked_add(validator)).expect("at most the pool");
            nr.weights = std::mem::take(&mut state.weights[i]);
            nr.bonds.clone_from(&result.bonds_next[i]);
            nr.validator_permit = result.new_validator_permit[i];
            nr.active = result.active[i];
            nr.stake_weight = result.stake[i].to_u16_proportion();
            nr.consensus = result.consensus[i].to_u16_proportion();
            nr.incentive = result.incentive[i].to_u16_proportion();
            nr.dividends = result.dividends[i].to_u16_proportion();
            nr.validator_trust = result.validator_trust[i].to_u16_proportion();
            nr.emission = result.combined_emission[i];
            nr.last_incentive_paid = server;
            nr.last_dividends_paid = validator;
            self.put_neuron(nr);
        }
        subnet.last_epoch_height = height;
        subnet.epochs += 1;
        subnet.last_epoch_paid = paid;
        subnet.paid = subnet.paid.checked_add(paid).expect("at most emitted + fees");
        self.put_subnet(subnet);
    }

    /// An evaluator's dividends go into its stake pool: its take as new shares for itself,
    /// the rest raising the value of every share (its delegators', its own).
    fn pay_dividends(&mut self, evaluator: Address, amount: Amount) {
        self.move_tsr(incentive_pool_account(), stake_account(), amount).expect("the epoch pays at most the pool");
        let mut pool = self.stake_pool(&evaluator).unwrap_or(StakePool { total: Amount::ZERO, shares: 0, take_bps: 0 });
        let take = if pool.shares == 0 {
            amount
        } else {
            Amount(mul_div(amount.0, pool.take_bps as u128, BPS as u128).expect("bps <= 1"))
        };
        pool.total = pool.total.checked_add(Amount(amount.0 - take.0)).expect("bounded by supply");
        let minted = if pool.shares == 0 || pool.total.is_zero() {
            take.0
        } else {
            mul_div(take.0, pool.shares, pool.total.0).expect("bounded")
        };
        pool.total = pool.total.checked_add(take).expect("bounded by supply");
        pool.shares += minted;
        let held = self.delegation(evaluator, evaluator);
        self.put_delegation(evaluator, evaluator, held + minted);
        self.put_obj(ObjKey::StakePool(evaluator), Some(Object::StakePool(pool)));
    }
}

/// The module's invariants, checked with the state's (`State::check_invariants`):
/// * the incentive pool holds exactly what was emitted and received in fees, less what
///   epochs paid, and emission never passed the cap;
/// * the stake account holds exactly the pools' totals, and each pool's shares are the sum of
///   its delegations;
/// * uids `0..n` each have a neuron whose key maps back to it.
pub fn check_invariants(state: &crate::State) -> Result<(), String> {
    let Some(p) = &state.params.incentives else {
        return Ok(());
    };
    let tsr = |a: &Address| state.account(a).map_or(0, |acct| acct.balance(AssetId::TSR).0);
    if let Some(Object::Subnet(s)) = state.object(&ObjKey::Subnet) {
        if s.emitted > p.emission_cap_base_units {
            return Err("emission passed its cap".into());
        }
        let inflow = s.emitted.0 + s.fees.0;
        if tsr(&incentive_pool_account()) + s.paid.0 != inflow {
            return Err(format!(
                "incentive pool {} + paid {} != emitted {} + fees {}",
                tsr(&incentive_pool_account()),
                s.paid,
                s.emitted,
                s.fees
            ));
        }
        for uid in 0..s.n {
            let Some(Object::Neuron(nr)) = state.object(&ObjKey::Neuron(uid)) else {
                return Err(format!("uid {uid} has no neuron"));
            };
            if state.object(&ObjKey::NeuronOf(nr.hotkey)) != Some(&Object::Uid(uid)) {
                return Err(format!("neuron {uid}'s key does not map back to it"));
            }
        }
    } else if tsr(&incentive_pool_account()) != 0 {
        return Err("the incentive pool holds TSR before any emission".into());
    }
    let mut pools = std::collections::BTreeMap::new();
    let mut delegated: std::collections::BTreeMap<Address, u128> = std::collections::BTreeMap::new();
    let (lo, hi) = (ObjKey::StakePool(Address([0; 32])), ObjKey::Delegation(Address([0xff; 32]), Address([0xff; 32])));
    for (k, o) in state.objects.range(lo..=hi) {
        match (k, o) {
            (ObjKey::StakePool(a), Object::StakePool(pl)) => {
                pools.insert(*a, pl.clone());
            }
            (ObjKey::Delegation(_, e), Object::Delegation(d)) => *delegated.entry(*e).or_default() += d.shares,
            _ => {}
        }
    }
    let total: u128 = pools.values().map(|pl| pl.total.0).sum();
    if total != tsr(&stake_account()) {
        return Err(format!("stake account holds {} but pools total {total}", tsr(&stake_account())));
    }
    for (a, pl) in &pools {
        if delegated.get(a).copied().unwrap_or(0) != pl.shares {
            return Err(format!("pool {a}: shares {} != delegations", pl.shares));
        }
    }
    Ok(())
}
