//! Shared by the ledger's integration tests: a chain driven block by block, with every
//! block verified independently and the full invariant scan after it.
#![allow(dead_code)]

use crypto::SigningKey;
use ledger::objects::{ObjKey, Object, OfferingStatus, TrancheState};
use ledger::{propose, verify, BlockContext, Genesis, GenesisAsset, GenesisBalance, GenesisRoles, Signatures, State};
use primitives::sale::*;
use primitives::{Action, Address, Amount, AssetId, EntityId, Outcome, SignedTransaction, Transaction};

pub const FEE: u128 = 10;
pub const ISSUER: u8 = 0;
pub const COMPLIANCE: u8 = 1;
pub const CUSTODIAN: u8 = 2;
pub const TREASURY: u8 = 3;
pub const DAY: u64 = 86_400_000;
pub const T0: u64 = 1_800_000_000_000;

pub fn key(i: u8) -> SigningKey {
    SigningKey::from_seed([i + 1; 32])
}

pub fn addr(i: u8) -> Address {
    key(i).address()
}

pub fn usd() -> AssetId {
    AssetId::new("USD").unwrap()
}

pub fn entity(i: u8) -> EntityId {
    EntityId::from_reference(&format!("kyc-case-{i}"))
}

pub struct Chain {
    pub state: State,
}

impl Chain {
    /// Issuer 0 holds 1,000,000 TSR base units; investors 10..40 hold TSR for fees and
    /// 100,000 USD base units each.
    pub fn new() -> Chain {
        Chain::with_incentives(None)
    }

    /// Like `new`, with the incentive module configured.
    pub fn with_incentives(incentives: Option<primitives::incentive::IncentiveParams>) -> Chain {
        let mut balances =
            vec![GenesisBalance { address: addr(ISSUER), asset: AssetId::TSR, amount_base_units: Amount(1_000_000) }];
        for i in [COMPLIANCE, CUSTODIAN].into_iter().chain(10..40) {
            balances.push(GenesisBalance { address: addr(i), asset: AssetId::TSR, amount_base_units: Amount(10_000) });
        }
        for i in 10..40 {
            balances.push(GenesisBalance { address: addr(i), asset: usd(), amount_base_units: Amount(100_000) });
        }
        let state = Genesis {
            chain_id: "sale-test".into(),
            genesis_time_ms: T0,
            fee_base_units: Amount(FEE),
            block_interval_ms: 100,
            issuer: addr(ISSUER),
            roles: GenesisRoles {
                compliance: Some(addr(COMPLIANCE)),
                custodian: Some(addr(CUSTODIAN)),
                treasury: Some(addr(TREASURY)),
            },
            assets: vec![
                GenesisAsset { symbol: AssetId::TSR, decimals: 9, max_supply_base_units: None, issuer: None },
                GenesisAsset { symbol: usd(), decimals: 6, max_supply_base_units: None, issuer: Some(addr(CUSTODIAN)) },
            ],
            balances,
            incentives,
            validators: Vec::new(),
        }
        .to_state()
        .unwrap();
        Chain { state }
    }

    /// One block at time `at_ms` with `txs` (signer, action), nonces from the state;
    /// verified independently, committed, invariants checked. Returns the outcomes.
    pub fn block(&mut self, at_ms: u64, txs: Vec<(u8, Action)>) -> Vec<Outcome> {
        let mut nonces = std::collections::BTreeMap::new();
        let signed: Vec<SignedTransaction> = txs
            .into_iter()
            .map(|(signer, action)| {
                let n = nonces.entry(signer).or_insert_with(|| self.state.nonce(&addr(signer)));
                let k = key(signer);
                let stx = k.sign_tx(Transaction {
                    chain_id: "sale-test".into(),
                    signer: k.address(),
                    nonce: *n,
                    fee: Amount(FEE),
                    expiry_height: None,
                    action,
                });
                *n += 1;
                stx
            })
            .collect();
        let n = signed.len();
        let ctx = BlockContext {
            height: self.state.height.next(),
            parent_hash: self.state.last_block_hash,
            timestamp_ms: at_ms.max(self.state.last_timestamp_ms),
            proposer: addr(ISSUER),
        };
        let executed = propose(&self.state, ctx, signed.into_iter().map(|t| (t.id(), t)), 100_000);
        assert!(
            executed.dropped.is_empty(),
            "dropped: {:?}",
            executed.dropped.iter().map(|d| &d.2).collect::<Vec<_>>()
        );
        assert_eq!(executed.receipts.len(), n);
        let verified = verify(&self.state, &executed.block, Signatures::Check).expect("own block verifies");
        assert_eq!(verified.lthash, executed.lthash);
        self.state.commit(&executed);
        self.state.check_invariants().unwrap();
        executed.receipts.iter().map(|r| r.outcome).collect()
    }

    pub fn one(&mut self, at_ms: u64, signer: u8, action: Action) -> Outcome {
        self.block(at_ms, vec![(signer, action)])[0]
    }

    pub fn ok(&mut self, at_ms: u64, signer: u8, action: Action) {
        assert_eq!(self.one(at_ms, signer, action.clone()), Outcome::Success, "{action:?}");
    }

    pub fn balance(&self, who: Address, asset: AssetId) -> u128 {
        self.state.account(&who).map_or(0, |a| a.balance(asset).0)
    }

    pub fn spendable(&self, who: Address, asset: AssetId) -> u128 {
        self.state.spendable(&who, asset).0
    }

    pub fn tranche(&self, offering: u64, t: u16) -> TrancheState {
        match self.state.object(&ObjKey::Tranche(offering, t)) {
            Some(Object::Tranche(ts)) => ts.clone(),
            _ => TrancheState::default(),
        }
    }

    pub fn offering_status(&self, id: u64) -> OfferingStatus {
        match self.state.object(&ObjKey::Offering(id)) {
            Some(Object::Offering(o)) => o.status,
            other => panic!("no offering {id}: {other:?}"),
        }
    }

    /// Attests investor `i` (entity `i`) with `f` applied to a clean non-US retail
    /// attestation, and binds its wallet.
    pub fn verify_investor(&mut self, i: u8, f: impl FnOnce(&mut Attestation)) {
        let mut a = Attestation {
            jurisdiction: Region::new("DE").unwrap(),
            us_person: false,
            class: InvestorClass::Retail,
            accreditation: None,
            kyc_expires_ms: T0 + 365 * DAY,
            screening: Screening::Clear,
            screening_list: "ofac-2026-11-20".into(),
            regcf_limit: None,
        };
        f(&mut a);
        self.block(
            T0,
            vec![
                (COMPLIANCE, Action::AttestEntity { entity: entity(i), attestation: a }),
                (COMPLIANCE, Action::BindWallet { entity: entity(i), wallet: addr(i) }),
            ],
        )
        .iter()
        .for_each(|o| assert_eq!(*o, Outcome::Success));
    }
}
