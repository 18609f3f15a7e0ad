//! The provider registry and payment channels, as actions on the block overlay.
//!
//! A channel's escrow is a lock on the sender's account; a claim releases part of the lock
//! and moves that much to the recipient. Every claim and reclaim bumps the channel's
//! nonce, so a voucher can be redeemed at most once, and vouchers signed before a claim
//! are void after it. As in SingularityNET's MultiPartyEscrow, the recipient may still
//! claim after the expiry height until the sender reclaims.

use crate::execute::Overlay;
use crate::objects::{ChannelRecord, ObjKey, Object, ProviderRecord};
use crate::state::{Lock, LockKind};
use primitives::channel::{ChannelClaim, ProviderInfo, Voucher};
use primitives::{Address, Amount, AssetId, RejectCode};

/// Lock reference of a provider's stake.
pub const PROVIDER_STAKE_REFERENCE: u64 = 0;
/// How long a deregistered provider's stake stays locked (block time): 7 days.
pub const PROVIDER_UNBONDING_MS: u64 = 7 * 86_400_000;

impl Overlay<'_> {
    fn provider(&self, who: &Address) -> Option<ProviderRecord> {
        match self.obj(&ObjKey::Provider(*who)) {
            Some(Object::Provider(p)) => Some(p.clone()),
            _ => None,
        }
    }

    fn lock_stake(&mut self, who: Address, amount: Amount) -> Result<(), RejectCode> {
        let lock = Lock { kind: LockKind::Stake, reference: PROVIDER_STAKE_REFERENCE, asset: AssetId::TSR, amount };
        self.account_mut(who).add_lock(lock)
    }

    pub(crate) fn register_provider(
        &mut self,
        signer: Address,
        info: &ProviderInfo,
        stake: Amount,
    ) -> Result<(), RejectCode> {
        if self.provider(&signer).is_some() {
            return Err(RejectCode::ProviderExists);
        }
        self.lock_stake(signer, stake)?;
        let record = ProviderRecord {
            address: signer,
            info: info.clone(),
            stake,
            registered_ms: self.now_ms(),
            unbonding_until_ms: None,
        };
        self.put_obj(ObjKey::Provider(signer), Some(Object::Provider(record)));
        Ok(())
    }

    pub(crate) fn update_provider(
        &mut self,
        signer: Address,
        info: &ProviderInfo,
        add: Amount,
    ) -> Result<(), RejectCode> {
        let mut p = self.provider(&signer).ok_or(RejectCode::NotProvider)?;
        if p.unbonding_until_ms.is_some() {
            return Err(RejectCode::ProviderUnbonding);
        }
        if !add.is_zero() {
            self.lock_stake(signer, add)?;
            p.stake = p.stake.checked_add(add).ok_or(RejectCode::AmountOverflow)?;
        }
        p.info = info.clone();
        self.put_obj(ObjKey::Provider(signer), Some(Object::Provider(p)));
        Ok(())
    }

    pub(crate) fn deregister_provider(&mut self, signer: Address) -> Result<(), RejectCode> {
        let mut p = self.provider(&signer).ok_or(RejectCode::NotProvider)?;
        if p.unbonding_until_ms.is_some() {
            return Err(RejectCode::ProviderUnbonding);
        }
        p.unbonding_until_ms = Some(self.now_ms().saturating_add(PROVIDER_UNBONDING_MS));
        self.put_obj(ObjKey::Provider(signer), Some(Object::Provider(p)));
        Ok(())
    }

    pub(crate) fn withdraw_provider_stake(&mut self, signer: Address) -> Result<(), RejectCode> {
        let p = self.provider(&signer).ok_or(RejectCode::NotProvider)?;
        let until = p.unbonding_until_ms.ok_or(RejectCode::ProviderActive)?;
        if self.now_ms() < until {
            return Err(RejectCode::UnbondingNotOver);
        }
        let released =
            self.account_mut(signer).release_lock(LockKind::Stake, PROVIDER_STAKE_REFERENCE, AssetId::TSR, p.stake);
        assert_eq!(released, p.stake, "a provider's stake is locked on its account");
        self.put_obj(ObjKey::Provider(signer), None);
        Ok(())
    }

    fn channel(&self, id: u64) -> Result<ChannelRecord, RejectCode> {
        match self.obj(&ObjKey::Channel(id)) {
            Some(Object::Channel(c)) => Ok(c.clone()),
            _ => Err(RejectCode::UnknownChannel),
        }
    }

    fn put_channel(&mut self, c: ChannelRecord) {
        debug_assert_eq!(
            c.deposited.0,
            c.claimed.0 + c.reclaimed.0 + c.escrowed.0,
            "deposited = claimed + reclaimed + escrowed"
        );
        self.put_obj(ObjKey::Channel(c.id), Some(Object::Channel(c)));
    }

    fn escrow_lock(id: u64, amount: Amount) -> Lock {
        Lock { kind: LockKind::ChannelEscrow, reference: id, asset: AssetId::TSR, amount }
    }

    pub(crate) fn open_channel(
        &mut self,
        signer: Address,
        recipient: Address,
        voucher_signer: Option<Address>,
        amount: Amount,
        expiry_height: u64,
    ) -> Result<(), RejectCode> {
        if expiry_height <= self.height() {
            return Err(RejectCode::ExpiryNotLater);
        }
        let id = self.next_id(|c| &mut c.next_channel);
        self.account_mut(signer).add_lock(Self::escrow_lock(id, amount))?;
        self.put_channel(ChannelRecord {
            id,
            sender: signer,
            recipient,
            signer: voucher_signer.unwrap_or(signer),
            nonce: 0,
            escrowed: amount,
            deposited: amount,
            claimed: Amount::ZERO,
            reclaimed: Amount::ZERO,
            expiry_height,
            opened_height: self.height(),
        });
        Ok(())
    }

    pub(crate) fn fund_channel(&mut self, signer: Address, id: u64, amount: Amount) -> Result<(), RejectCode> {
        let mut c = self.channel(id)?;
        if c.sender != signer {
            return Err(RejectCode::NotChannelSender);
        }
        self.account_mut(signer).add_lock(Self::escrow_lock(id, amount))?;
        c.escrowed = c.escrowed.checked_add(amount).ok_or(RejectCode::AmountOverflow)?;
        c.deposited = c.deposited.checked_add(amount).ok_or(RejectCode::AmountOverflow)?;
        self.put_channel(c);
        Ok(())
    }

    pub(crate) fn extend_channel(&mut self, signer: Address, id: u64, expiry_height: u64) -> Result<(), RejectCode> {
        let mut c = self.channel(id)?;
        if c.sender != signer {
            return Err(RejectCode::NotChannelSender);
        }
        if expiry_height <= c.expiry_height || expiry_height <= self.height() {
            return Err(RejectCode::ExpiryNotLater);
        }
        c.expiry_height = expiry_height;
        self.put_channel(c);
        Ok(())
    }

    /// All claims apply or none does (the overlay's journal rolls back a partial batch).
    pub(crate) fn claim_channels(&mut self, signer: Address, claims: &[ChannelClaim]) -> Result<(), RejectCode> {
        let chain_id = self.base.params.chain_id.clone();
        for claim in claims {
            let mut c = self.channel(claim.channel)?;
            if c.recipient != signer {
                return Err(RejectCode::NotChannelRecipient);
            }
            let voucher =
                Voucher { chain_id: chain_id.clone(), channel: c.id, nonce: c.nonce, amount: claim.voucher_amount };
            if crypto::verify_digest(&c.signer, &voucher.signing_hash(), &claim.signature).is_err() {
                return Err(RejectCode::BadVoucherSignature);
            }
            if claim.amount > c.escrowed {
                return Err(RejectCode::VoucherExceedsEscrow);
            }
            if claim.amount > claim.voucher_amount {
                return Err(RejectCode::VoucherExceedsEscrow);
            }
            let sender = self.account_mut(c.sender);
            let released = sender.release_lock(LockKind::ChannelEscrow, c.id, AssetId::TSR, claim.amount);
            assert_eq!(released, claim.amount, "the escrow is locked on the sender");
            sender.debit(AssetId::TSR, claim.amount).expect("just unlocked");
            self.account_mut(signer).credit(AssetId::TSR, claim.amount)?;
            c.escrowed = c.escrowed.checked_sub(claim.amount).expect("checked above");
            c.claimed = c.claimed.checked_add(claim.amount).expect("≤ deposited");
            if claim.send_back && !c.escrowed.is_zero() {
                let back = c.escrowed;
                let released =
                    self.account_mut(c.sender).release_lock(LockKind::ChannelEscrow, c.id, AssetId::TSR, back);
                assert_eq!(released, back, "the escrow is locked on the sender");
                c.reclaimed = c.reclaimed.checked_add(back).expect("≤ deposited");
                c.escrowed = Amount::ZERO;
            }
            c.nonce += 1;
            self.put_channel(c);
        }
        Ok(())
    }

    pub(crate) fn reclaim_channel(&mut self, signer: Address, id: u64) -> Result<(), RejectCode> {
        let mut c = self.channel(id)?;
        if c.sender != signer {
            return Err(RejectCode::NotChannelSender);
        }
        if self.height() < c.expiry_height {
            return Err(RejectCode::ChannelNotExpired);
        }
        if c.escrowed.is_zero() {
            return Err(RejectCode::ChannelEmpty);
        }
        let back = c.escrowed;
        let released = self.account_mut(signer).release_lock(LockKind::ChannelEscrow, id, AssetId::TSR, back);
        assert_eq!(released, back, "the escrow is locked on the sender");
        c.reclaimed = c.reclaimed.checked_add(back).expect("≤ deposited");
        c.escrowed = Amount::ZERO;
        c.nonce += 1;
        self.put_channel(c);
        Ok(())
    }
}
