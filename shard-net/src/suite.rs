//! The Noise protocols a node speaks (XX for sessions between paired nodes, XXpsk3 for
//! pairing with a one-time code), and the builder for them: below both the node's identity
//! (whose key is made for them) and the channel.

use snow::Builder;
use snow::resolvers::{DefaultResolver, FallbackResolver, RingResolver};

use crate::Result;

const SESSION: &str = "Noise_XX_25519_AESGCM_SHA256";
const PAIRING: &str = "Noise_XXpsk3_25519_AESGCM_SHA256";

/// A Noise builder for sessions or pairing, preferring ring's primitives.
pub(crate) fn builder(pairing: bool) -> Result<Builder<'static>> {
    let params = if pairing { PAIRING } else { SESSION }.parse()?;
    let resolver = FallbackResolver::new(Box::new(RingResolver), Box::new(DefaultResolver));
    Ok(Builder::with_resolver(params, Box::new(resolver)))
}
