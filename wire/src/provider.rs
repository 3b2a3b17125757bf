use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An inference provider a miner can connect. The wire names are ORO's.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Chutes,
    #[serde(rename = "openrouter")]
    OpenRouter,
}

impl Provider {
    pub const ALL: [Provider; 2] = [Provider::Chutes, Provider::OpenRouter];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Chutes => "chutes",
            Provider::OpenRouter => "openrouter",
        }
    }

    /// The name a person reads.
    pub fn display_name(self) -> &'static str {
        match self {
            Provider::Chutes => "Chutes",
            Provider::OpenRouter => "OpenRouter",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown provider {0:?}: expected \"chutes\" or \"openrouter\"")]
pub struct UnknownProvider(pub String);

impl FromStr for Provider {
    type Err = UnknownProvider;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "chutes" => Ok(Provider::Chutes),
            "openrouter" => Ok(Provider::OpenRouter),
            _ => Err(UnknownProvider(s.chars().take(64).collect())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for p in Provider::ALL {
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.as_str()));
            assert_eq!(serde_json::from_str::<Provider>(&json).unwrap(), p);
            assert_eq!(p.as_str().parse::<Provider>().unwrap(), p);
        }
        assert_eq!("OpenRouter".parse::<Provider>().unwrap(), Provider::OpenRouter);
        assert!("anthropic".parse::<Provider>().is_err());
    }
}
