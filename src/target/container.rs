//! A gateway image run as a container whose network namespace is the lab's
//! `gw` host (work in progress: see the targets issue).

use std::collections::BTreeSet;
use std::path::PathBuf;

use async_trait::async_trait;

use super::{GatewayHandle, GatewayTarget, StartContext, TargetError};
use crate::model::scenario::Capability;

/// A container image under test.
#[derive(Debug)]
pub struct Container {
    name: String,
    image: String,
    _exe: PathBuf,
    caps: BTreeSet<Capability>,
}

impl Container {
    pub fn new(name: &str, image: String, exe: PathBuf, caps: BTreeSet<Capability>) -> Self {
        Container {
            name: name.to_string(),
            image,
            _exe: exe,
            caps,
        }
    }
}

#[async_trait]
impl GatewayTarget for Container {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "container"
    }
    fn capabilities(&self) -> &BTreeSet<Capability> {
        &self.caps
    }
    fn describe(&self) -> String {
        format!("image {}", self.image)
    }
    async fn preflight(&self) -> Result<(), TargetError> {
        Err(TargetError::Unusable {
            target: self.name.clone(),
            what: "the container target is not built yet".into(),
        })
    }
    async fn start(&self, _: StartContext<'_>) -> Result<Box<dyn GatewayHandle>, TargetError> {
        Err(TargetError::Unusable {
            target: self.name.clone(),
            what: "the container target is not built yet".into(),
        })
    }
}
