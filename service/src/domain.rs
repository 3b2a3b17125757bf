//! Values that can only hold valid contents (parse, don't validate).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A Bittensor hotkey: an SS58 address with prefix 42 and a good checksum.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Hotkey {
    address: String,
    #[serde(skip)]
    public_key: [u8; 32],
}

impl Hotkey {
    /// An SS58 address of a key that can sign. The identity point is refused: with it, the
    /// constant signature `00…00 ‖ 00…0080` verifies for any message. (Ristretto255 is a
    /// prime-order group, so the identity is the only low-order point there is.)
    pub fn parse(address: &str) -> Result<Self, wire::ss58::Ss58Error> {
        let public_key = wire::ss58::decode(address)?;
        if crate::auth::signature::is_identity(&public_key) {
            return Err(wire::ss58::Ss58Error::IdentityKey);
        }
        Ok(Hotkey { address: address.to_owned(), public_key })
    }

    pub fn as_str(&self) -> &str {
        &self.address
    }

    pub fn public_key(&self) -> &[u8; 32] {
        &self.public_key
    }

    /// A short form for pages and logs: `5Grwva...utQY`.
    pub fn short(&self) -> String {
        let a = &self.address;
        if a.len() > 12 { format!("{}...{}", &a[..6], &a[a.len() - 4..]) } else { a.clone() }
    }
}

impl<'de> Deserialize<'de> for Hotkey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Hotkey::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Hotkey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.address)
    }
}

impl fmt::Debug for Hotkey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hotkey({})", self.address)
    }
}

/// What a signed-in caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Miner,
    Validator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Miner => "miner",
            Role::Validator => "validator",
        }
    }
}

/// Who is calling, once their signature or session has been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub hotkey: Hotkey,
    pub is_validator: bool,
}

impl Caller {
    /// The role this caller acts in.
    pub fn role(&self) -> Role {
        if self.is_validator { Role::Validator } else { Role::Miner }
    }
}
