//! A miner's agents and their versions, as oro-sdk's `GET /v1/miner/agents` family shows them:
//! each submission is one version, evaluated by one run, so a version's state is its run's.

use wire::api::{AgentVersionEntry, AgentVersionState, AgentVersionStatus, MinerAgent, MinerAgents};

use crate::clock;
use crate::domain::Hotkey;
use crate::runs::{RunError, RunStatus};
use crate::services::Services;
use crate::store;

fn state_of(run_status: Option<RunStatus>) -> AgentVersionState {
    match run_status {
        Some(RunStatus::Running) => AgentVersionState::Running,
        Some(RunStatus::Succeeded) => AgentVersionState::Eligible,
        Some(RunStatus::Failed) => AgentVersionState::Discarded,
        Some(RunStatus::Queued) | None => AgentVersionState::Queued,
    }
}

/// agent id, version id, submitted at, run status, score: every version of one miner, oldest first.
struct Version {
    agent_id: String,
    entry: AgentVersionEntry,
    run_status: Option<RunStatus>,
    /// Unix seconds (the entry carries the same instant as text).
    created: i64,
}

impl Services {
    async fn versions_of(&self, hotkey: &Hotkey) -> Result<Vec<Version>, RunError> {
        let rows = store::agents::versions_of_miner(&mut *self.db.pool().acquire().await?, hotkey.as_str()).await?;
        let mut counts = std::collections::HashMap::<String, i64>::new();
        Ok(rows
            .into_iter()
            .map(|v| {
                let number = counts.entry(v.agent_id.clone()).or_default();
                *number += 1;
                Version {
                    entry: AgentVersionEntry {
                        agent_version_id: v.id,
                        version_number: *number,
                        submitted_at: clock::rfc3339(v.created_at),
                        state: state_of(v.status),
                        final_score: v.score,
                    },
                    agent_id: v.agent_id,
                    run_status: v.status,
                    created: v.created_at,
                }
            })
            .collect())
    }

    /// `GET /v1/miner/agents`.
    pub async fn miner_agents(&self, hotkey: &Hotkey) -> Result<MinerAgents, RunError> {
        let agents = store::agents::of_miner(&mut *self.db.pool().acquire().await?, hotkey.as_str()).await?;
        let versions = self.versions_of(hotkey).await?;
        // Oldest first: the last version is the last submission, which starts the cooldown.
        let next_allowed = versions.last().map(|v| v.created + self.settings.submit_cooldown_secs).filter(|at| *at > self.clock.now());
        Ok(MinerAgents {
            agents: agents
                .into_iter()
                .map(|agent| MinerAgent {
                    latest_version: versions.iter().rev().find(|v| v.agent_id == agent.id).map(|v| v.entry.clone()),
                    agent_id: agent.id,
                    miner_hotkey: hotkey.to_string(),
                    agent_name: agent.agent_name,
                    created_at: clock::rfc3339(agent.created_at),
                })
                .collect(),
            can_submit: next_allowed.is_none(),
            next_allowed_at: next_allowed.map(clock::rfc3339),
        })
    }

    /// `GET /v1/miner/agents/{agent_id}/versions`, oldest first; only the caller's own agents.
    pub async fn agent_versions(&self, hotkey: &Hotkey, agent_id: &str) -> Result<Vec<AgentVersionEntry>, RunError> {
        if store::agents::owned_name(&mut *self.db.pool().acquire().await?, agent_id, hotkey.as_str()).await?.is_none() {
            return Err(RunError::AgentNotFound);
        }
        Ok(self.versions_of(hotkey).await?.into_iter().filter(|v| v.agent_id == agent_id).map(|v| v.entry).collect())
    }

    /// `GET /v1/miner/agent-versions/{id}`: only the caller's own versions.
    pub async fn agent_version_status(&self, hotkey: &Hotkey, agent_version_id: &str) -> Result<AgentVersionStatus, RunError> {
        let versions = self.versions_of(hotkey).await?;
        let version = versions.into_iter().find(|v| v.entry.agent_version_id == agent_version_id).ok_or(RunError::AgentVersionNotFound)?;
        // The version is the miner's, and so its agent.
        let agent_name = store::agents::owned_name(&mut *self.db.pool().acquire().await?, &version.agent_id, hotkey.as_str())
            .await?
            .ok_or(RunError::AgentVersionNotFound)?;
        let status = version.run_status;
        Ok(AgentVersionStatus {
            agent_version_id: version.entry.agent_version_id,
            agent_name,
            miner_hotkey: hotkey.to_string(),
            version_number: version.entry.version_number,
            submitted_at: version.entry.submitted_at,
            state: version.entry.state,
            suite_id: crate::runs::CURRENT_SUITE_ID,
            required_successes: 1,
            success_count: i64::from(status == Some(RunStatus::Succeeded)),
            active_count: i64::from(status == Some(RunStatus::Running)),
            is_closed: status.is_some_and(RunStatus::is_final),
            final_score: version.entry.final_score,
        })
    }
}
