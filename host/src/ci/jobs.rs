//! The job layout of a pipeline: a setup job (environments solved once), one job per test block
//! or group of `--group-size` blocks (blocks with different runners never share a job), one
//! job holding every serial block after them (upstream's setup → parallel → serial order), a
//! report job and a deploy job. Also what one job performs: the Plan with the other jobs' stages
//! skipped and only its test blocks selected ([`job_plan`]), so the stage engine runs it
//! unchanged. Pure: the same Plan and options always give the same layout.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::CiError;
use crate::plan::ci::{DeployOn, Runner};
use crate::plan::{Plan, StageKind, StageStatus};

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobRole {
    /// Layout and the environment stages; writes the CI plan and the environment locks.
    Setup,
    /// A group of parallel test blocks.
    Tests,
    /// Every serial test block, after all parallel jobs.
    Serial,
    /// Merges every job's fragment; always runs.
    Report,
    /// The stages after the tests, on protected refs and tags.
    Deploy,
}

impl JobRole {
    /// The stages a job of this role performs (the others are skipped, naming the job that
    /// performs them). Test jobs repeat the environment stages: the test environment must exist
    /// on their runner; they install it from the setup job's lock, unsolved (`bundle::run_job`).
    pub fn stages(self) -> &'static [StageKind] {
        use StageKind::*;
        match self {
            JobRole::Setup => &[Layout, Conda, Defer, Environments],
            JobRole::Tests | JobRole::Serial => &[Layout, Conda, Defer, Environments, Tests],
            JobRole::Report => &[],
            JobRole::Deploy => &[
                Layout,
                Conda,
                Defer,
                Environments,
                CondaRecipes,
                Wheels,
                ReleaseEnvironment,
                Templates,
                Docker,
                Rewrite,
                Deploy,
            ],
        }
    }
}

/// One job of the pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CiJob {
    /// The job's name in the pipeline (`setup`, `test:NAME`, `tests:003`, `tests:serial`, …).
    pub name: String,
    /// A file-name-safe form of the name: the job's directory under `stasis-ci/jobs/` and its
    /// artifact name.
    pub slug: String,
    pub role: JobRole,
    /// The test blocks it runs, in delivery order.
    pub blocks: Vec<String>,
    pub runner: Runner,
    /// The mapping rules that gave the runner.
    pub mappings: Vec<String>,
}

/// Every job of a pipeline, in run order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    pub group_size: usize,
    pub deploy_on: DeployOn,
    pub jobs: Vec<CiJob>,
}

#[derive(Debug, Clone, Copy)]
pub struct LayoutOptions {
    /// Test blocks per job (at least 1).
    pub group_size: usize,
    /// Overrides the Plan's `[ci] deploy_on`.
    pub deploy_on: Option<DeployOn>,
}

impl Default for LayoutOptions {
    fn default() -> Self {
        LayoutOptions {
            group_size: 1,
            deploy_on: None,
        }
    }
}

/// The job's directory and artifact name: `job-` + the name with every character other than
/// ASCII letters, digits, `.`, `_` and `-` replaced by `-`.
pub fn slug(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '_' | '-' => c,
            _ => '-',
        })
        .collect();
    format!("job-{s}")
}

fn job(name: String, role: JobRole, blocks: Vec<String>, runner: Runner) -> CiJob {
    CiJob {
        slug: slug(&name),
        name,
        role,
        blocks,
        runner,
        mappings: Vec::new(),
    }
}

/// The layout of `plan`'s pipeline.
pub fn layout(plan: &Plan, opts: &LayoutOptions) -> Result<Layout, CiError> {
    let group_size = opts.group_size.max(1);
    let selected =
        crate::stages::tests::selected(plan).map_err(|e| CiError::Usage(e.to_string()))?;
    let ci = &plan.ci;
    let default = ci.runner.clone();
    let mut jobs = vec![job(
        "setup".into(),
        JobRole::Setup,
        Vec::new(),
        default.clone(),
    )];

    // Parallel blocks grouped by runner (in order of first appearance), then chunked.
    let mut groups: Vec<(Runner, Vec<String>, Vec<String>)> = Vec::new();
    let mut serial: Vec<String> = Vec::new();
    let mut serial_runner: Option<(Runner, Vec<String>)> = None;
    for t in &selected {
        let (runner, used) = ci.runner_for(t);
        let used: Vec<String> = used.into_iter().map(String::from).collect();
        if t.parallel && plan.settings.parallel {
            match groups.iter_mut().find(|(r, _, _)| *r == runner) {
                Some((_, names, _)) => names.push(t.name.clone()),
                None => groups.push((runner, vec![t.name.clone()], used)),
            }
        } else {
            serial.push(t.name.clone());
            // One serial job: the first serial block's runner carries it.
            serial_runner.get_or_insert((runner, used));
        }
    }
    let chunks: Vec<(Runner, Vec<String>, Vec<String>)> = groups
        .into_iter()
        .flat_map(|(runner, names, used)| {
            names
                .chunks(group_size)
                .map(|c| (runner.clone(), c.to_vec(), used.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let width = chunks.len().to_string().len().max(3);
    for (i, (runner, blocks, used)) in chunks.into_iter().enumerate() {
        let name = if group_size == 1 {
            format!("test:{}", blocks[0])
        } else {
            format!("tests:{:0width$}", i + 1)
        };
        let mut j = job(name, JobRole::Tests, blocks, runner);
        j.mappings = used;
        jobs.push(j);
    }
    if let Some((runner, used)) = serial_runner {
        let mut j = job("tests:serial".into(), JobRole::Serial, serial, runner);
        j.mappings = used;
        jobs.push(j);
    }
    jobs.push(job(
        "report".into(),
        JobRole::Report,
        Vec::new(),
        default.clone(),
    ));
    let deploy_on = opts.deploy_on.unwrap_or(ci.deploy_on);
    if deploy_on != DeployOn::Never {
        jobs.push(job("deploy".into(), JobRole::Deploy, Vec::new(), default));
    }
    // Two names may slug alike (`test:a b`, `test:a-b`): jobs would share a directory.
    let mut slugs: Vec<&str> = jobs.iter().map(|j| j.slug.as_str()).collect();
    slugs.sort_unstable();
    if let Some(w) = slugs.windows(2).find(|w| w[0] == w[1]) {
        return Err(CiError::Usage(format!(
            "two CI jobs would share the directory {CI}/jobs/{}; rename one of their test blocks",
            w[0],
            CI = super::CI_DIR
        )));
    }
    Ok(Layout {
        group_size,
        deploy_on,
        jobs,
    })
}

impl Layout {
    /// A short digest of the jobs and their blocks: the setup job refuses to run a pipeline
    /// generated for another layout.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        for j in &self.jobs {
            h.update(j.name.as_bytes());
            h.update([0]);
            for b in &j.blocks {
                h.update(b.as_bytes());
                h.update([1]);
            }
            h.update([2]);
        }
        hex::encode(&h.finalize()[..8])
    }

    /// The jobs of a role.
    pub fn of(&self, role: JobRole) -> impl Iterator<Item = &CiJob> {
        self.jobs.iter().filter(move |j| j.role == role)
    }

    /// The jobs whose fragments the report job merges.
    pub fn recorded(&self) -> impl Iterator<Item = &CiJob> {
        self.jobs
            .iter()
            .filter(|j| matches!(j.role, JobRole::Setup | JobRole::Tests | JobRole::Serial))
    }
}

/// The Plan one job performs: the stages of other jobs skipped (the reason names the job that
/// performs them) and, for a test job, only its blocks selected.
pub fn job_plan(plan: &Plan, layout: &Layout, job: &CiJob) -> Plan {
    let mut p = plan.clone();
    let wanted = job.role.stages();
    for st in &mut p.stages {
        if st.status == StageStatus::Run && !wanted.contains(&st.name) {
            let by = layout
                .jobs
                .iter()
                .find(|j| j.role.stages().contains(&st.name))
                .map(|j| j.name.as_str())
                .unwrap_or("none");
            st.status = StageStatus::Skip;
            st.reason = format!("CI job {}: performed by job {by}", job.name);
        }
    }
    if matches!(job.role, JobRole::Tests | JobRole::Serial) {
        p.settings.test_filters = job.blocks.iter().map(|b| globset::escape(b)).collect();
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::TestBlock;

    fn plan(n: usize, serial_every: usize) -> Plan {
        let mut p = Plan::default();
        p.settings.parallel = true;
        p.settings.testing = true;
        p.tests = (0..n)
            .map(|i| TestBlock {
                name: format!("b{i:02}"),
                parallel: serial_every == 0 || i % serial_every != 0,
                ..TestBlock::default()
            })
            .collect();
        crate::stages::schedule(&mut p);
        p
    }

    #[test]
    fn setup_then_groups_then_serial_then_report_and_deploy() {
        let p = plan(7, 3);
        let l = layout(
            &p,
            &LayoutOptions {
                group_size: 2,
                ..LayoutOptions::default()
            },
        )
        .unwrap();
        let names: Vec<&str> = l.jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "setup",
                "tests:001",
                "tests:002",
                "tests:serial",
                "report",
                "deploy"
            ]
        );
        assert_eq!(l.jobs[1].blocks, ["b01", "b02"]);
        assert_eq!(l.jobs[2].blocks, ["b04", "b05"]);
        assert_eq!(l.jobs[3].blocks, ["b00", "b03", "b06"]);
        let one = layout(&p, &LayoutOptions::default()).unwrap();
        assert_eq!(one.jobs[1].name, "test:b01");
        assert_eq!(one.jobs[1].slug, "job-test-b01");
        assert_ne!(one.fingerprint(), l.fingerprint());
        assert_eq!(
            one.fingerprint(),
            layout(&p, &LayoutOptions::default()).unwrap().fingerprint()
        );
    }

    #[test]
    fn a_job_plan_skips_other_jobs_stages_and_selects_its_blocks() {
        let p = plan(4, 0);
        let l = layout(&p, &LayoutOptions::default()).unwrap();
        let j = &l.jobs[2];
        let jp = job_plan(&p, &l, j);
        let tests = jp
            .stages
            .iter()
            .find(|s| s.name == StageKind::Tests)
            .unwrap();
        assert_eq!(tests.status, StageStatus::Run);
        let selected = crate::stages::tests::selected(&jp).unwrap();
        assert_eq!(selected.len(), 1);
        assert_eq!(selected[0].name, j.blocks[0]);
        let setup = job_plan(&p, &l, &l.jobs[0]);
        let tests = setup
            .stages
            .iter()
            .find(|s| s.name == StageKind::Tests)
            .unwrap();
        assert_eq!(tests.status, StageStatus::Skip);
        assert!(
            tests.reason.contains("performed by job test:b00"),
            "{}",
            tests.reason
        );
    }
}
