//! Talking to the running node's control API, with errors that say what to do.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;
use shard_node::home::Home;

/// Largest answer read from the node.
const MAX_ANSWER: u64 = 1 << 30;

/// A client for the node of one home.
pub struct ApiClient {
    base: String,
    addr: std::net::SocketAddr,
    token: String,
    agent: ureq::Agent,
}

impl ApiClient {
    /// The client of the node running from `home`; explains how to start one if none runs.
    pub fn for_home(home: &Home) -> Result<Self> {
        let root = home.root().display();
        if !home.is_initialized() {
            bail!("no node at {root}\n  hint: create one with `shard init --home {root}`");
        }
        let Some(addr) = home.api_addr() else {
            bail!(
                "no node is running from {root}\n  hint: start it with `shard serve --home {root}`"
            );
        };
        let token = home.token().context("reading the control API token")?;
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .new_agent();
        let client = Self {
            base: format!("http://{addr}"),
            addr,
            token,
            agent,
        };
        client.check_server(home)?;
        Ok(client)
    }

    /// Asks whoever answers at the address for proof that it holds this home's token, before
    /// anything secret is sent there (see `shard_http::proof`): after a crash, `api.addr` is
    /// stale and any program may listen on its port.
    fn check_server(&self, home: &Home) -> Result<()> {
        let mut nonce = [0u8; shard_http::proof::NONCE_LEN];
        shard_crypto::fill_random(&mut nonce).context("drawing a nonce")?;
        let response = self
            .agent
            .get(format!(
                "{}/v1/proof?nonce={}",
                self.base,
                hex::encode(nonce)
            ))
            .call();
        let answer = self.finish(response);
        let proven = answer.as_ref().ok().and_then(|a| a["proof"].as_str());
        if proven.is_some_and(|p| shard_http::proof::check(&self.token, &nonce, self.addr, p)) {
            return Ok(());
        }
        let root = home.root().display();
        match answer {
            // Nothing answers: the usual "is it running?" from `finish`.
            Err(e) if e.to_string().contains("does not answer") => Err(e),
            _ => bail!(
                "the program answering at {} is not the node of {root}: it could not prove it holds the home's API token, so nothing was sent to it\n  hint: the node probably stopped without cleaning up; start it again with `shard serve --home {root}`",
                self.base.trim_start_matches("http://")
            ),
        }
    }

    /// GET `path`.
    pub fn get(&self, path: &str) -> Result<Value> {
        let response = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .call();
        self.finish(response)
    }

    /// POST `path` with a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> Result<Value> {
        let response = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .send_json(body);
        self.finish(response)
    }

    fn finish(
        &self,
        response: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value> {
        let mut response = response.map_err(|e| {
            anyhow!(
                "the node at {} does not answer ({e})\n  hint: is `shard serve` still running? Start it again if not",
                self.base
            )
        })?;
        let status = response.status();
        // Results can be large (a check of 100 000 files): read well past ureq's 10 MB default,
        // and say so when the answer cannot be read, rather than taking it for empty.
        let body: Value = match response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_json()
        {
            Ok(v) => v,
            Err(e) if status.is_success() => {
                bail!("the node's answer could not be read ({e})")
            }
            Err(_) => Value::Null,
        };
        if status.is_success() {
            return Ok(body);
        }
        let error = body["error"]
            .as_str()
            .unwrap_or("the node reported an error");
        match body["hint"].as_str() {
            Some(hint) => bail!("{error}\n  hint: {hint}"),
            None => bail!("{error} (HTTP {status})"),
        }
    }
}
