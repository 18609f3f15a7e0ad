//! The node's HTTP API end to end, through a real devnet process: every bad input gets
//! its own error and changes nothing; receipts carry stable codes; events, metrics and
//! the OpenAPI document are served.

mod common;

use common::Devnet;
use primitives::{Action, Address, Amount, AssetId, Hash, SignedTransaction};
use serde_json::Value;

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.http.get(format!("{}{path}", self.base)).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn post_json(&self, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/v1/txs", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn submit(&self, stx: &SignedTransaction) -> (u16, Value) {
        self.post_json(serde_json::to_vec(stx).unwrap()).await
    }

    async fn account(&self, a: &Address) -> Value {
        self.get(&format!("/v1/accounts/{a}")).await.1
    }

    async fn wait_committed(&self, id: &Hash) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let (status, v) = self.get(&format!("/v1/txs/{id}")).await;
            if status == 200 && v["status"] == "committed" {
                return v;
            }
            assert!(std::time::Instant::now() < deadline, "{id} not committed: {v}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

use common::devnet_tx as tx;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_are_refused_with_their_own_codes_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = Devnet::start(dir.path(), &["--no-gateway"]);
    let api = Api { base: devnet.api.clone(), http: reqwest::Client::new() };
    let dev = devnet.signing_key();
    let other = crypto::SigningKey::from_seed([42; 32]);
    let usd = AssetId::new("USD").unwrap();
    let transfer = |amount: u128| Action::Transfer { to: other.address(), asset: AssetId::TSR, amount: Amount(amount) };

    // Fund `other` so it can pay fees, and wait for it.
    let (status, v) = api.submit(&tx(&dev, 0, transfer(1_000_000))).await;
    assert_eq!(status, 202, "{v}");
    api.wait_committed(&v["tx_hash"].as_str().unwrap().parse().unwrap()).await;
    let before_dev = api.account(&dev.address()).await;
    let before_other = api.account(&other.address()).await;

    // Submission-time refusals: (description, status, code).
    let mut bad_sig = tx(&dev, 1, transfer(1));
    bad_sig.signature.0[0] ^= 1;
    let mut wrong_chain = tx(&dev, 1, transfer(1));
    wrong_chain.tx.chain_id = "other-chain".into();
    let wrong_chain = dev.sign_tx(wrong_chain.tx);
    let mut low_fee = tx(&dev, 1, transfer(1));
    low_fee.tx.fee = Amount(999);
    let low_fee = dev.sign_tx(low_fee.tx);
    let replay = tx(&dev, 0, transfer(1));
    let far_future = tx(&dev, 5_000, transfer(1));
    let zero = tx(&dev, 1, transfer(0));
    let poor = tx(&crypto::SigningKey::from_seed([7; 32]), 0, transfer(1));
    let mut overflowing = serde_json::to_value(tx(&dev, 1, transfer(1))).unwrap();
    overflowing["tx"]["action"]["amount"] = Value::String(format!("{}0", u128::MAX));
    let overflowing_amount = serde_json::to_vec(&overflowing).unwrap();
    let cases: Vec<(&str, u16, &str, Vec<u8>)> = vec![
        ("not json", 400, "malformed_json", b"{not json".to_vec()),
        ("wrong shape", 400, "malformed_json", br#"{"tx":{},"signature":"00"}"#.to_vec()),
        ("bad signature", 400, "bad_signature", serde_json::to_vec(&bad_sig).unwrap()),
        ("wrong chain id", 400, "wrong_chain", serde_json::to_vec(&wrong_chain).unwrap()),
        ("fee below the flat fee", 400, "fee_too_low", serde_json::to_vec(&low_fee).unwrap()),
        ("replayed nonce", 409, "nonce_too_low", serde_json::to_vec(&replay).unwrap()),
        ("far-future nonce", 422, "nonce_too_high", serde_json::to_vec(&far_future).unwrap()),
        ("zero amount", 400, "zero_amount", serde_json::to_vec(&zero).unwrap()),
        ("no TSR for the fee", 422, "insufficient_fee_balance", serde_json::to_vec(&poor).unwrap()),
        ("amount overflowing u128", 400, "malformed_json", overflowing_amount.clone()),
        ("oversize body", 413, "body_too_large", vec![b' '; 70 * 1024]),
    ];
    for (what, status, code, body) in cases {
        let (got_status, v) = api.post_json(body).await;
        assert_eq!((got_status, v["code"].as_str().unwrap_or("")), (status, code), "{what}: {v}");
        assert!(!v["message"].as_str().unwrap_or("").is_empty(), "{what}: message");
    }
    // Duplicate: submit the same valid transaction twice quickly.
    let ok = tx(&dev, 1, transfer(1));
    assert_eq!(api.submit(&ok).await.0, 202);
    let (status, v) = api.submit(&ok).await;
    assert!(status == 409 && (v["code"] == "duplicate_tx" || v["code"] == "nonce_too_low"), "{v}");
    api.wait_committed(&ok.id()).await;

    // Bad batch bodies.
    let r = api
        .http
        .post(format!("{}/v1/txs/batch", api.base))
        .header("content-type", "application/octet-stream")
        .body(vec![1, 2, 3])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "malformed_batch");
    let r = api.http.post(format!("{}/v1/txs/batch", api.base)).body(vec![0, 0, 0, 0]).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 415);
    assert_eq!(api.get("/v1/accounts/tsr1notanaddress").await.0, 400);
    assert_eq!(api.get("/v1/txs/xyz").await.1["code"], "bad_hash");
    assert_eq!(api.get("/v1/blocks/999999999").await.1["code"], "block_not_found");

    // Refusals changed nothing: only the one good transfer (amount 1 + fee) moved funds.
    let after_dev = api.account(&dev.address()).await;
    assert_eq!(after_dev["nonce"], "2");
    let dev_tsr = |v: &Value| v["balances"][0]["balance"].as_str().unwrap().parse::<u128>().unwrap();
    assert_eq!(dev_tsr(&before_dev) - dev_tsr(&after_dev), 1, "dev paid the fee to itself (treasury) and sent 1");
    assert_eq!(dev_tsr(&api.account(&other.address()).await), dev_tsr(&before_other) + 1);

    // Included but rejected actions: receipts with stable codes; only fee and nonce move.
    let before = api.account(&other.address()).await;
    let rejected = [
        (
            tx(&other, 0, Action::Transfer { to: dev.address(), asset: AssetId::TSR, amount: Amount(10_000_000) }),
            "insufficient_funds",
        ),
        (
            tx(
                &other,
                1,
                Action::Transfer { to: dev.address(), asset: AssetId::new("NOPE").unwrap(), amount: Amount(1) },
            ),
            "unknown_asset",
        ),
        (tx(&other, 2, Action::Mint { asset: usd, to: other.address(), amount: Amount(5) }), "not_asset_issuer"),
        (
            tx(&other, 3, Action::SetRole { role: primitives::Role::Treasury, address: other.address() }),
            "not_genesis_issuer",
        ),
    ];
    for (stx, _) in &rejected {
        assert_eq!(api.submit(stx).await.0, 202);
    }
    for (stx, code) in &rejected {
        let v = api.wait_committed(&stx.id()).await;
        assert_eq!(v["receipt"]["status"], "rejected", "{v}");
        assert_eq!(v["receipt"]["code"], *code, "{v}");
    }
    let after = api.account(&other.address()).await;
    assert_eq!(after["nonce"], "4");
    assert_eq!(dev_tsr(&before) - dev_tsr(&after), 4 * 1000, "only the four fees");
    // Minting past u128 by the issuer is an amount_overflow receipt.
    let overflow = tx(&dev, 2, Action::Mint { asset: usd, to: dev.address(), amount: Amount(u128::MAX) });
    api.submit(&overflow).await;
    let overflow2 = tx(&dev, 3, Action::Mint { asset: usd, to: dev.address(), amount: Amount(1) });
    api.submit(&overflow2).await;
    assert_eq!(api.wait_committed(&overflow2.id()).await["receipt"]["code"], "amount_overflow");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_metrics_and_openapi_are_served() {
    use futures_util::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let devnet = Devnet::start(dir.path(), &["--no-gateway"]);
    let api = Api { base: devnet.api.clone(), http: reqwest::Client::new() };
    let dev = devnet.signing_key();
    let events = api.http.get(format!("{}/v1/events", api.base)).send().await.unwrap();
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let stx = tx(&dev, 0, Action::Transfer { to: Address([9; 32]), asset: AssetId::TSR, amount: Amount(5) });
    api.submit(&stx).await;
    let mut stream = events.bytes_stream();
    let mut buf = String::new();
    let found = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while let Some(Ok(chunk)) = stream.next().await {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            if buf.contains(&stx.id().to_string()) {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(found, "block event with our receipt: {buf}");
    assert!(buf.contains("event: block"));

    let metrics = api.http.get(format!("{}/metrics", api.base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("tessera_height"), "{metrics}");
    assert!(metrics.contains("tessera_txs_committed_total"), "{metrics}");
    assert!(metrics.contains("tessera_signatures_checked_total 1"), "{metrics}");

    let (status, doc) = api.get("/v1/openapi.json").await;
    assert_eq!(status, 200);
    for path in [
        "/v1/health",
        "/v1/chain",
        "/v1/txs",
        "/v1/txs/batch",
        "/v1/txs/{hash}",
        "/v1/accounts/{address}",
        "/v1/blocks/{height}",
        "/v1/events",
        "/metrics",
        "/v1/offerings",
        "/v1/offerings/{id}",
        "/v1/offerings/{id}/report",
        "/v1/offerings/{id}/tranches/{tranche}/commitments/{entity}",
        "/v1/entities/{id}",
        "/v1/grants/{id}",
        "/v1/accounts/{address}/grants",
        "/v1/reports/captable",
        "/v1/reports/audit",
        "/v1/dev/clock",
        "/v1/providers",
        "/v1/providers/{address}",
        "/v1/channels/{id}",
        "/v1/accounts/{address}/channels",
        "/v1/network",
        "/v1/network/neurons/{uid}",
        "/v1/accounts/{address}/stake",
    ] {
        assert!(doc["paths"][path].is_object(), "openapi lacks {path}");
    }
    let (status, v) = api.get("/v1/blocks/latest").await;
    assert_eq!(status, 200);
    assert!(v["header"]["state_root"].is_string());

    // An open event stream does not hold up a stop: the node ends it (cleanly: the body's
    // end, not a dropped connection) and exits.
    let started = std::time::Instant::now();
    let mut devnet = devnet;
    let status = tokio::task::spawn_blocking(move || devnet.stop()).await.unwrap();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(15), "stopping took {took:?}");
    let ended = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            match stream.next().await {
                Some(Ok(_)) => {}
                Some(Err(e)) => break Err(format!("{e:?}")),
                None => break Ok(()),
            }
        }
    })
    .await;
    assert!(matches!(ended, Ok(Ok(()))), "the event stream should end cleanly with the node: {ended:?}");
}

/// Every compliance check of a purchase, through the HTTP API with JSON transactions:
/// each refusal is its own receipt code, and it changes nothing but the fee and nonce.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_compliance_check_rejects_through_the_api_and_changes_nothing() {
    use primitives::sale::*;
    let dir = tempfile::tempdir().unwrap();
    let devnet = Devnet::start(dir.path(), &["--no-provider", "--no-gateway"]);
    let api = Api { base: devnet.api.clone(), http: reqwest::Client::new() };
    let dev = devnet.signing_key();
    let usd = AssetId::new("USD").unwrap();
    let mut dev_nonce = 0u64;
    let run = |stx: SignedTransaction| {
        let api = &api;
        async move {
            let (status, v) = api.submit(&stx).await;
            assert_eq!(status, 202, "{v}");
            api.wait_committed(&stx.id()).await
        }
    };
    let chain = api.get("/v1/chain").await.1;
    let now: u64 = chain["latest_timestamp_ms"].as_str().unwrap().parse().unwrap();
    let day = 86_400_000u64;
    let region = |r: &str| Region::new(r).unwrap();
    // (investor seed, attestation tweak, tranche, expected code)
    type Tweak = fn(&mut Attestation, u64);
    let cases: Vec<(u8, Tweak, u16, &str)> = vec![
        (
            1,
            |a, _| {
                a.jurisdiction = Region::new("US").unwrap();
                a.us_person = true;
            },
            0,
            "investor_class_not_allowed",
        ),
        (
            2,
            |a, n| {
                a.jurisdiction = Region::new("US").unwrap();
                a.us_person = true;
                a.class = InvestorClass::Accredited;
                a.accreditation =
                    Some(Accreditation { method: AccreditationMethod::SelfCertified, expires_ms: n + 86_400_000 });
            },
            0,
            "accreditation_required",
        ),
        (
            3,
            |a, n| {
                a.jurisdiction = Region::new("US").unwrap();
                a.us_person = true;
                a.class = InvestorClass::Accredited;
                a.accreditation = Some(Accreditation { method: AccreditationMethod::Income, expires_ms: n - 1 });
            },
            0,
            "accreditation_expired",
        ),
        (4, |_, _| {}, 0, "us_persons_only"),
        (
            5,
            |a, _| {
                a.jurisdiction = Region::new("US").unwrap();
                a.us_person = true;
            },
            1,
            "us_person_excluded",
        ),
        (6, |a, _| a.jurisdiction = Region::new("IR").unwrap(), 1, "jurisdiction_blocked"),
        (7, |a, _| a.jurisdiction = Region::new("UA-43").unwrap(), 1, "jurisdiction_blocked"),
        (8, |a, _| a.screening = Screening::Hit, 1, "sanctioned"),
        (9, |a, n| a.kyc_expires_ms = n - 1, 1, "kyc_expired"),
        (10, |_, _| {}, 1, "success"),
    ];
    let investor = |seed: u8| crypto::SigningKey::from_seed([100 + seed; 32]);
    for (seed, tweak, _, _) in &cases {
        let k = investor(*seed);
        let entity = EntityId::from_reference(&format!("api-case-{seed}"));
        let mut a = Attestation {
            jurisdiction: region("DE"),
            us_person: false,
            class: InvestorClass::Retail,
            accreditation: None,
            kyc_expires_ms: now + 365 * day,
            screening: Screening::Clear,
            screening_list: "ofac-test".into(),
            regcf_limit: None,
        };
        tweak(&mut a, now);
        for action in [
            Action::Transfer { to: k.address(), asset: AssetId::TSR, amount: Amount(1_000_000) },
            Action::Mint { asset: usd, to: k.address(), amount: Amount(5_000) },
            Action::AttestEntity { entity, attestation: a },
            Action::BindWallet { entity, wallet: k.address() },
        ] {
            let v = run(tx(&dev, dev_nonce, action)).await;
            assert_eq!(v["receipt"]["status"], "success", "{v}");
            dev_nonce += 1;
        }
    }
    let tranche =
        |name: &str, exemption, us_persons, classes: Vec<InvestorClass>, blocked: Vec<Region>| TrancheConfig {
            name: name.into(),
            exemption,
            eligibility: Eligibility { allowed: vec![], blocked, us_persons, classes },
            supply: Amount(1_000_000),
            mechanism: Mechanism::FixedPrice { price: Amount(1), fill: Fill::ProRata },
            min_per_entity: Amount(1),
            max_per_entity: Amount(1_000_000),
            opens_ms: now.saturating_sub(day),
            closes_ms: now + day,
            cancel_until_ms: None,
            lot: LotRule::default(),
        };
    let config = OfferingConfig {
        name: "api sale".into(),
        asset: AssetId::TSR,
        quote: usd,
        price_per: Amount(1),
        soft_cap: Amount::ZERO,
        tranches: vec![
            tranche("Reg D", Exemption::RegD506c, UsPersons::Only, vec![InvestorClass::Accredited], vec![]),
            tranche(
                "Reg S",
                Exemption::RegS { dcp_ms: 40 * day },
                UsPersons::Excluded,
                vec![],
                vec![region("IR"), region("UA-43")],
            ),
        ],
    };
    let v = run(tx(&dev, dev_nonce, Action::CreateOffering { config })).await;
    assert_eq!(v["receipt"]["status"], "success", "{v}");
    for (seed, _, tranche, code) in &cases {
        let k = investor(*seed);
        let before = api.account(&k.address()).await;
        let v = run(tx(&k, 0, Action::Commit { offering: 1, tranche: *tranche, amount: Amount(1_000) })).await;
        let after = api.account(&k.address()).await;
        let bal = |acct: &Value, asset: &str| {
            acct["balances"]
                .as_array()
                .unwrap()
                .iter()
                .find(|b| b["asset"] == asset)
                .map(|b| b["balance"].as_str().unwrap().parse::<u128>().unwrap())
                .unwrap_or(0)
        };
        if *code == "success" {
            assert_eq!(v["receipt"]["status"], "success", "{v}");
            assert_eq!(after["locks"][0]["kind"], "sale_escrow");
            continue;
        }
        assert_eq!(
            (v["receipt"]["status"].as_str(), v["receipt"]["code"].as_str()),
            (Some("rejected"), Some(*code)),
            "investor {seed}: {v}"
        );
        assert!(!v["receipt"]["message"].as_str().unwrap().is_empty());
        assert_eq!(bal(&after, "USD"), bal(&before, "USD"), "investor {seed}: USD moved");
        assert_eq!(after["locks"], before["locks"], "investor {seed}: locks changed");
        assert_eq!(bal(&after, "TSR"), bal(&before, "TSR") - 1_000, "investor {seed}: only the fee");
        assert_eq!(after["nonce"], "1");
    }
    // An unbound wallet is refused too.
    let stranger = crypto::SigningKey::from_seed([99; 32]);
    run(tx(
        &dev,
        dev_nonce + 1,
        Action::Transfer { to: stranger.address(), asset: AssetId::TSR, amount: Amount(10_000) },
    ))
    .await;
    let v = run(tx(&stranger, 0, Action::Commit { offering: 1, tranche: 1, amount: Amount(1) })).await;
    assert_eq!(v["receipt"]["code"], "wallet_not_verified", "{v}");
    let offering = api.get("/v1/offerings/1").await.1;
    assert_eq!(offering["tranches"][1]["commitments"], "1", "only the eligible investor committed");
}
