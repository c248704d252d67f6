//! The real applications the torrent and usenet steps drive: where their
//! WebUIs are, why one did not start, and why a scenario that needs one
//! cannot run in this lab.

use crate::lab::LabError;
use crate::lab::apps::App;
use crate::lab::netns::Netns;
use crate::lab::swarm;
use crate::lab::webui::Qbittorrent;
use crate::model::topology::host;
use crate::model::verdict::Outcome;
use crate::scenario::runner::{Runner, fail};

impl Runner<'_> {
    /// The failed step of a scenario whose application does not run: why
    /// it did not start (with its log tail), or that the run has none.
    pub(crate) fn no_app(&self, app: App) -> Outcome {
        match self.app_failure(app) {
            Some(why) => fail(format!("{} did not start", app.name()), why),
            None => fail(format!("no real {} runs in this lab", app.name()), ""),
        }
    }

    /// The WebUI port of a real application this lab runs.
    pub(crate) fn app_port(&self, app: App) -> Option<u16> {
        self.services.apps.as_ref().and_then(|a| a.port_of(app))
    }

    /// Why a real application this run asked for did not start.
    pub(crate) fn app_failure(&self, app: App) -> Option<&str> {
        self.services.apps.as_ref().and_then(|a| a.failure(app))
    }

    /// Why a scenario driving `app` cannot run in this lab: the run has
    /// none. One that was asked for and did not start is not a skip: the
    /// scenario runs and its first step fails with the reason.
    pub(crate) fn app_unfit(&self, app: App) -> Option<String> {
        (self.app_port(app).is_none() && self.app_failure(app).is_none()).then(|| {
            format!(
                "it drives the real {}, and this run has none (run with --dependents real or auto where {} is installed)",
                app.name(),
                app.program()
            )
        })
    }

    /// The gateway's namespace and `app`'s WebUI port there, or the failed
    /// step when it does not run.
    pub(crate) fn app_at(&self, app: App) -> Result<Result<(&Netns, u16), Outcome>, LabError> {
        Ok(match self.app_port(app) {
            Some(port) => Ok((self.lab.ns(host::GW)?, port)),
            None => Err(self.no_app(app)),
        })
    }

    /// The real qBittorrent's WebUI, or the failed step.
    pub(crate) fn qbittorrent(&self) -> Result<Result<Qbittorrent<'_>, Outcome>, LabError> {
        Ok(self
            .app_at(App::Qbittorrent)?
            .map(|(ns, port)| Qbittorrent { ns, port }))
    }

    /// Why a swarm scenario cannot run in this lab, if it cannot.
    pub(crate) fn swarm_unfit(&self) -> Option<String> {
        self.app_unfit(App::Qbittorrent).or_else(|| {
            self.app_port(App::Qbittorrent).and_then(|_| {
                swarm::installed()
                    .err()
                    .map(|why| format!("the lab's swarm cannot start: {why}"))
            })
        })
    }
}
