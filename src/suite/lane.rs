//! A lane: one lab with its services (and, for a container target, the
//! holder of its gateway's namespace), in which scenarios run one after
//! another; lanes run side by side. How many a run gets.

use std::time::Duration;

use super::SuiteError;
use crate::lab::services::{LabKeys, LabServices};
use crate::lab::wgserver::ProviderKind;
use crate::lab::{Lab, netns};
use crate::profile::Profile;

/// One lab with its services (and, for a container target, its holder):
/// scenarios run one after another in a lane; lanes run side by side.
pub struct Lane {
    pub lab: Lab,
    pub services: LabServices,
    pub holder: Option<crate::target::container::Holder>,
}

impl Lane {
    /// Builds a lane under the claimed run id `lock`.
    pub async fn build(
        lock: netns::RunLock,
        holder_image: Option<&str>,
        provider: ProviderKind,
        profile: &Profile,
    ) -> Result<Lane, SuiteError> {
        let run_id = lock.id().to_string();
        let holder = match holder_image {
            Some(image) => Some(
                crate::target::container::Holder::start(&run_id, image)
                    .await
                    .map_err(SuiteError::Holder)?,
            ),
            None => None,
        };
        let adopt = holder
            .iter()
            .map(|h| (crate::model::topology::host::GW, h.pid))
            .collect();
        let lab = Lab::build_adopting(profile.topology.clone(), lock, adopt)
            .await
            .map_err(SuiteError::BuildLab)?;
        let mut services =
            LabServices::start_with(&lab, LabKeys::generate(), provider, &profile.stand_ins)
                .await
                .map_err(SuiteError::Services)?;
        if !profile.real.is_empty() {
            services
                .start_apps(&lab, &profile.real)
                .await
                .map_err(SuiteError::RealDependents)?;
        }
        Ok(Lane {
            lab,
            services,
            holder,
        })
    }

    /// Stops the services and removes the lab; the teardown time.
    pub fn teardown(self) -> Duration {
        let Lane {
            mut lab,
            services,
            holder,
        } = self;
        services.stop();
        drop(services);
        let t = lab.teardown();
        drop(lab);
        drop(holder);
        t
    }
}

/// How many labs run side by side when `--jobs` does not say. The
/// scenarios mostly wait (rounds, timeouts, the far end): on this 2-core
/// machine 8 lanes run the default suite in 25.7 s against 40.8 s with 4
/// (median of 3 each), with no false alarm in `ci/repeat-suite.sh`.
pub const DEFAULT_JOBS: usize = 8;

/// How many labs run side by side: `jobs`, else [`DEFAULT_JOBS`], or 1
/// with a container target (each lane would need its own holder
/// container); never more than there is `work`, never none.
pub fn lane_count(jobs: Option<usize>, containers: bool, work: usize) -> usize {
    let n = jobs.unwrap_or(if containers { 1 } else { DEFAULT_JOBS });
    n.clamp(1, work.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eight_lanes_unless_told_or_a_container_or_little_work() {
        assert_eq!(lane_count(None, false, 30), DEFAULT_JOBS);
        assert_eq!(lane_count(None, true, 30), 1);
        assert_eq!(lane_count(Some(8), false, 30), 8);
        assert_eq!(lane_count(Some(3), true, 30), 3);
        // Never more lanes than work, never none.
        assert_eq!(lane_count(None, false, 2), 2);
        assert_eq!(lane_count(Some(8), false, 5), 5);
        assert_eq!(lane_count(Some(0), false, 5), 1);
        assert_eq!(lane_count(None, false, 0), 1);
    }
}
