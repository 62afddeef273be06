//! The ordered stage list: the catalogue with each stage's status (run, skip, not performed)
//! and the reason, decided from the settings and the sections present.

use crate::plan::{
    CondaEngine, Deploy, Settings, Stage, StageStatus, TemplateJob, TestBlock, stage,
};

pub(super) fn stages(
    settings: &Settings,
    tests: &[TestBlock],
    deploy: &Deploy,
    templates: &[TemplateJob],
) -> Vec<Stage> {
    stage::CATALOGUE
        .iter()
        .map(|(name, _, implemented)| {
            let (status, reason) = match *name {
                "conda" | "environments" | "defer" | "conda_recipes" | "wheels" | "rewrite"
                    if settings.conda_engine == CondaEngine::System =>
                {
                    (
                        StageStatus::Skip,
                        "conda_engine = system: the current environment is used".to_string(),
                    )
                }
                "rewrite" if !settings.rewrite => (StageStatus::Skip, "--no-rewrite".into()),
                "tests" if !settings.testing => (StageStatus::Skip, "--no-testing".into()),
                "tests" if tests.is_empty() => (StageStatus::Skip, "no [test:*] sections".into()),
                "templates" if templates.is_empty() => (
                    StageStatus::Skip,
                    "the mission has no [template:*] sections".into(),
                ),
                "docker" if deploy.docker.is_none() => {
                    (StageStatus::Skip, "no [deploy:docker] section".into())
                }
                "docker" if !settings.docker => (StageStatus::Skip, "--no-docker".into()),
                "deploy" if deploy.artifactory.is_empty() && deploy.targets.is_empty() => {
                    (StageStatus::Skip, "no [deploy:*] upload sections".into())
                }
                "deploy" if deploy.targets.is_empty() => (
                    StageStatus::NotPerformed,
                    "Artifactory uploads are not available in this version of stasis".into(),
                ),
                _ if !implemented => (
                    StageStatus::NotPerformed,
                    "not available in this version of stasis".into(),
                ),
                _ => (StageStatus::Run, String::new()),
            };
            Stage::new(name, status, reason)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::fixture::World;
    use crate::plan::{Plan, StageStatus};

    fn status(plan: &Plan, name: &str) -> (StageStatus, String) {
        let s = plan.stage(name).unwrap();
        (s.status, s.reason.clone())
    }

    #[test]
    fn the_stage_list_is_the_catalogue_in_order() {
        let plan = World::new().plan();
        let names: Vec<&str> = plan.stages.iter().map(|s| s.name.as_str()).collect();
        let catalogue: Vec<&str> = crate::plan::stage::CATALOGUE.iter().map(|c| c.0).collect();
        assert_eq!(names, catalogue);
    }

    #[test]
    fn stages_are_skipped_for_what_the_delivery_lacks_or_the_settings_refuse() {
        let plan = World::new().plan();
        assert_eq!(status(&plan, "conda").0, StageStatus::Run);
        assert_eq!(
            status(&plan, "tests"),
            (StageStatus::Skip, "no [test:*] sections".into())
        );
        assert_eq!(status(&plan, "docker").0, StageStatus::Skip);
        assert_eq!(status(&plan, "deploy").0, StageStatus::Skip);

        let mut w = World::new()
            .with_system("[default]\nconda_engine = system\n")
            .with_delivery("\n[test:a]\nrepository = x\nscript = true\n\n[deploy:artifactory:x]\nfiles = a\ndest = b\n");
        w.input.settings.testing = false;
        let plan = w.plan();
        for env_stage in ["conda", "environments", "defer", "wheels", "rewrite"] {
            assert_eq!(status(&plan, env_stage).0, StageStatus::Skip, "{env_stage}");
        }
        assert_eq!(
            status(&plan, "tests"),
            (StageStatus::Skip, "--no-testing".into())
        );
        assert_eq!(status(&plan, "deploy").0, StageStatus::NotPerformed);
    }
}
