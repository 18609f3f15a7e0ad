//! The paying side of payment channels, for any client that calls providers (the gateway,
//! the evaluator): one channel per provider, opened and topped up from the payer's account,
//! and vouchers that cover what the provider has billed plus the worst case of the payer's
//! other calls in flight on the channel, so many calls may run on one channel at once.

use anyhow::{anyhow, bail, Context, Result};
use api_types::ProviderView;
use primitives::{Action, Address, Amount, Transaction};
use provider::VoucherHeader;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use wallet::client::Client;

/// One channel as the payer tracks it.
#[derive(Debug)]
pub struct Channel {
    pub id: u64,
    state: parking_lot::Mutex<ChannelState>,
}

#[derive(Debug, Clone)]
struct ChannelState {
    nonce: u64,
    /// What the provider has billed at this nonce, as far as the payer knows.
    owed: u128,
    /// Σ worst-case bounds of calls in flight.
    in_flight: u128,
    escrowed: u128,
    /// After a streamed call the bill is only known to the provider: ask it next time.
    stale: bool,
}

/// A call's claim on the channel: release it with [`Payer::finish`].
#[must_use]
pub struct Reservation {
    pub voucher: VoucherHeader,
    bound: u128,
}

pub struct Payer {
    key: crypto::SigningKey,
    client: Client,
    http: reqwest::Client,
    chain_id: String,
    fee: Amount,
    /// Escrow per channel, and added when the free part runs low.
    channel_amount: u128,
    channel_blocks: u64,
    /// The channel to each provider (read on every call: a short synchronous lock).
    channels: parking_lot::RwLock<BTreeMap<Address, Arc<Channel>>>,
    /// One lock per provider for opening, topping up and re-reading its channel, so a slow
    /// round trip to the node for one provider never holds up calls to the others.
    opening: parking_lot::Mutex<BTreeMap<Address, Arc<tokio::sync::Mutex<()>>>>,
}

impl Payer {
    pub async fn new(
        key: crypto::SigningKey,
        client: Client,
        channel_amount: u128,
        channel_blocks: u64,
    ) -> Result<Self> {
        let chain = client.chain().await.context("reading the chain's parameters")?;
        Ok(Payer {
            key,
            client,
            http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?,
            chain_id: chain.chain_id,
            fee: chain.fee,
            channel_amount,
            channel_blocks,
            channels: Default::default(),
            opening: Default::default(),
        })
    }

    pub fn address(&self) -> Address {
        self.key.address()
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Signs, submits and waits for one transaction of the payer's.
    pub async fn send(&self, action: Action) -> Result<()> {
        let nonce = self.client.account(&self.address()).await?.next_nonce;
        let stx = self.key.sign_tx(Transaction {
            chain_id: self.chain_id.clone(),
            signer: self.address(),
            nonce,
            fee: self.fee,
            expiry_height: None,
            action,
        });
        let hash = stx.id();
        self.client.submit(&stx).await?;
        let view = self.client.wait_committed(&hash, Duration::from_secs(30)).await?;
        match view.receipt {
            Some(r) if r.status == "success" => Ok(()),
            Some(r) => bail!("{}: {}", r.code.unwrap_or_default(), r.message.unwrap_or_default()),
            None => bail!("committed without a receipt"),
        }
    }

    /// The channel to `p` with at least `room` free (escrow minus billed minus in flight):
    /// opened, topped up or re-read from the node as needed.
    pub async fn channel(&self, p: &ProviderView, room: u128) -> Result<Arc<Channel>> {
        if let Some(c) = self.ready(&p.address, room) {
            return Ok(c);
        }
        let lock = self.opening.lock().entry(p.address).or_default().clone();
        let _opening = lock.lock().await;
        // Another call may have done it while this one waited.
        if let Some(c) = self.ready(&p.address, room) {
            return Ok(c);
        }
        let current = self.channels.read().get(&p.address).cloned();
        let height = self.client.chain().await?.height.0;
        let mine = self.client.account_channels(&self.address()).await?;
        let live = mine
            .iter()
            .filter(|c| c.recipient == p.address && c.expiry_height > height + 100)
            .max_by_key(|c| c.id)
            .cloned();
        let amount = self.channel_amount.max(room.saturating_mul(2));
        let c = match live {
            Some(c) => c,
            None => {
                self.send(Action::OpenChannel {
                    recipient: p.address,
                    voucher_signer: None,
                    amount: Amount(amount),
                    expiry_height: height + self.channel_blocks,
                })
                .await
                .context("opening a channel")?;
                let mine = self.client.account_channels(&self.address()).await?;
                mine.into_iter()
                    .filter(|c| c.recipient == p.address)
                    .max_by_key(|c| c.id)
                    .ok_or_else(|| anyhow!("the channel just opened is missing"))?
            }
        };
        let previous = current.as_ref().filter(|t| t.id == c.id).map(|t| t.state.lock().clone());
        let owed = match &previous {
            Some(s) if s.nonce == c.nonce && !s.stale => s.owed,
            _ => self.provider_owed(p, c.id).await.unwrap_or(0).min(c.escrowed.0),
        };
        let in_flight = previous.as_ref().map_or(0, |s| s.in_flight);
        let mut escrowed = c.escrowed.0;
        if escrowed.saturating_sub(owed + in_flight) < room {
            self.send(Action::FundChannel { channel: c.id, amount: Amount(amount) }).await.context("topping up")?;
            escrowed += amount;
        }
        let chan = match current.filter(|t| t.id == c.id) {
            Some(t) => {
                // Calls that began meanwhile keep their reservations.
                let mut s = t.state.lock();
                *s = ChannelState { nonce: c.nonce, owed, in_flight: s.in_flight, escrowed, stale: false };
                drop(s);
                t
            }
            None => Arc::new(Channel {
                id: c.id,
                state: parking_lot::Mutex::new(ChannelState {
                    nonce: c.nonce,
                    owed,
                    in_flight,
                    escrowed,
                    stale: false,
                }),
            }),
        };
        self.channels.write().insert(p.address, chan.clone());
        Ok(chan)
    }

    /// The channel to `p` if it is known, fresh and has `room` free.
    fn ready(&self, p: &Address, room: u128) -> Option<Arc<Channel>> {
        let c = self.channels.read().get(p).cloned()?;
        let s = c.state.lock();
        (!s.stale && s.escrowed.saturating_sub(s.owed + s.in_flight) >= room).then(|| c.clone())
    }

    /// What the provider has billed on the channel at its nonce, as the payer knows it.
    pub fn owed(&self, chan: &Channel) -> u128 {
        chan.state.lock().owed
    }

    /// Marks the channel to `p` for re-reading (a stale nonce, a voucher found short).
    pub async fn invalidate(&self, p: &Address) {
        if let Some(c) = self.channels.read().get(p) {
            c.state.lock().stale = true;
        }
    }

    async fn provider_owed(&self, p: &ProviderView, channel: u64) -> Result<u128> {
        let url = format!("{}/tessera/claims", p.endpoint.trim_end_matches('/'));
        let v: serde_json::Value = self.http.get(url).send().await?.json().await?;
        Ok(provider::owed_in_claims(&v, channel).map_err(|e| anyhow!(e))?.0)
    }

    /// Signs the voucher for a call whose cost is at most `bound`: it covers what is owed and
    /// the other calls in flight; this call is on credit until it settles.
    pub fn begin(&self, chan: &Channel, bound: u128) -> Reservation {
        let mut s = chan.state.lock();
        let amount = Amount(s.owed + s.in_flight);
        s.in_flight += bound;
        Reservation { voucher: provider::sign_voucher(&self.key, &self.chain_id, chan.id, s.nonce, amount), bound }
    }

    /// Releases a call's reservation. `owed` is the provider's `x-tessera-channel-owed` after
    /// it (None when unknown, e.g. a stream: the next call re-reads it).
    pub fn finish(&self, chan: &Channel, r: Reservation, owed: Option<u128>) {
        let mut s = chan.state.lock();
        s.in_flight = s.in_flight.saturating_sub(r.bound);
        match owed {
            Some(o) if o <= s.escrowed => s.owed = s.owed.max(o),
            _ => s.stale = true,
        }
    }
}
