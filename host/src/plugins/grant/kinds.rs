//! kinds: the closed sets a grant talks about: the four plugin kinds (one per WIT world, with
//! their default limits and the capabilities their world may import) and the host
//! capabilities (one per `stasis:host` interface).
//!
//! Pure data; it decides nothing about a particular plugin (decisions.rs does).

use std::fmt;
use std::time::Duration;

/// The four kinds of plugin, one per WIT world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PluginKind {
    ReleaseFormatter,
    MissionRule,
    TestStrategy,
    DeployTarget,
}

/// A host capability: one `stasis:host` interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Capability {
    Log,
    Process,
    Http,
    Template,
    Upload,
    /// Build contexts in the delivery tree (`write_dirs`).
    Context,
    /// Piped programs with file redirections (`allow_commands`).
    Pipeline,
}

impl Capability {
    pub const ALL: [Capability; 7] = [
        Capability::Log,
        Capability::Process,
        Capability::Http,
        Capability::Template,
        Capability::Upload,
        Capability::Context,
        Capability::Pipeline,
    ];

    /// The WIT interface name inside `stasis:host`.
    pub fn interface(self) -> &'static str {
        match self {
            Capability::Log => "log",
            Capability::Process => "process",
            Capability::Http => "http",
            Capability::Template => "template",
            Capability::Upload => "upload",
            Capability::Context => "context",
            Capability::Pipeline => "pipeline",
        }
    }

    /// `log` and `template` are harmless and need no grant.
    pub fn needs_grant(self) -> bool {
        matches!(
            self,
            Capability::Process
                | Capability::Http
                | Capability::Upload
                | Capability::Context
                | Capability::Pipeline
        )
    }

    pub fn from_interface(name: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.interface() == name)
    }
}

impl PluginKind {
    pub const ALL: [PluginKind; 4] = [
        PluginKind::ReleaseFormatter,
        PluginKind::MissionRule,
        PluginKind::TestStrategy,
        PluginKind::DeployTarget,
    ];

    /// The `kind` value in ini and the WIT world name (they are the same word).
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::ReleaseFormatter => "release-formatter",
            PluginKind::MissionRule => "mission-rule",
            PluginKind::TestStrategy => "test-strategy",
            PluginKind::DeployTarget => "deploy-target",
        }
    }

    pub fn parse(s: &str) -> Option<PluginKind> {
        PluginKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The `stasis:plugin` interface this kind's world exports.
    pub fn export_interface(self) -> &'static str {
        match self {
            PluginKind::ReleaseFormatter => "formatter",
            PluginKind::MissionRule => "rule",
            PluginKind::TestStrategy => "strategy",
            PluginKind::DeployTarget => "deployer",
        }
    }

    pub fn from_export_interface(name: &str) -> Option<PluginKind> {
        PluginKind::ALL
            .into_iter()
            .find(|k| k.export_interface() == name)
    }

    /// The host capabilities the world imports: the most this kind may ask for.
    pub fn world_capabilities(self) -> &'static [Capability] {
        match self {
            PluginKind::ReleaseFormatter | PluginKind::MissionRule => {
                &[Capability::Log, Capability::Template]
            }
            PluginKind::TestStrategy => {
                &[Capability::Log, Capability::Process, Capability::Template]
            }
            PluginKind::DeployTarget => &[
                Capability::Log,
                Capability::Http,
                Capability::Upload,
                Capability::Process,
                Capability::Template,
                Capability::Context,
                Capability::Pipeline,
            ],
        }
    }

    /// Default memory limit when the declaration sets none.
    pub fn default_memory(self) -> u64 {
        match self {
            PluginKind::ReleaseFormatter | PluginKind::MissionRule => 64 << 20,
            PluginKind::TestStrategy | PluginKind::DeployTarget => 256 << 20,
        }
    }

    /// Default wall-clock limit per invocation when the declaration sets none.
    pub fn default_timeout(self) -> Duration {
        match self {
            PluginKind::ReleaseFormatter | PluginKind::MissionRule => Duration::from_secs(2),
            PluginKind::TestStrategy => Duration::from_secs(5 * 60),
            PluginKind::DeployTarget => Duration::from_secs(15 * 60),
        }
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_words_round_trip() {
        for k in PluginKind::ALL {
            assert_eq!(PluginKind::parse(k.as_str()), Some(k));
            assert_eq!(
                PluginKind::from_export_interface(k.export_interface()),
                Some(k)
            );
            assert_eq!(k.to_string(), k.as_str());
        }
        assert_eq!(PluginKind::parse("rule"), None);
        assert_eq!(
            Capability::from_interface("process"),
            Some(Capability::Process)
        );
        assert_eq!(Capability::from_interface("filesystem"), None);
    }

    #[test]
    fn every_world_imports_the_ungranted_capabilities() {
        for k in PluginKind::ALL {
            let caps = k.world_capabilities();
            assert!(caps.contains(&Capability::Log) && caps.contains(&Capability::Template));
        }
        assert!(!Capability::Log.needs_grant() && !Capability::Template.needs_grant());
        assert!(Capability::Upload.needs_grant());
        assert!(
            !PluginKind::MissionRule
                .world_capabilities()
                .contains(&Capability::Process),
            "a mission rule's world has no process import"
        );
        assert!(
            PluginKind::MissionRule.default_timeout() < PluginKind::DeployTarget.default_timeout()
        );
    }
}
