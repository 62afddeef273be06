//! @NAME@: a deploy target uploading the delivery's files with HTTP PUT.

use stasis_sdk::prelude::*;
use stasis_sdk::upload::Upload;

struct @TYPE@;

fn files(delivery: &Delivery) -> Result<Vec<String>, PluginError> {
    let dir = delivery
        .storage("delivery_dir")
        .ok_or_else(|| PluginError::Failed("no delivery_dir".into()))?;
    let entries = std::fs::read_dir(dir).map_err(|e| PluginError::Failed(format!("{dir}: {e}")))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| format!("{dir}/{}", e.file_name().to_string_lossy()))
        .collect();
    names.sort();
    Ok(names)
}

impl DeployTarget for @TYPE@ {
    fn plan(section: &Section, delivery: &Delivery) -> Result<Vec<Action>, PluginError> {
        let url = section.require("url")?;
        Ok(files(delivery)?
            .into_iter()
            .map(|path| Action {
                verb: "upload".into(),
                destination: format!("{url}/{}", path.rsplit('/').next().unwrap_or_default()),
                subject: path,
            })
            .collect())
    }

    fn deploy(section: &Section, delivery: &Delivery) -> Result<DeployReport, PluginError> {
        let mut items = Vec::new();
        for action in Self::plan(section, delivery)? {
            let receipt = Upload::new(&action.subject, &action.destination).send()?;
            items.push(DeployedItem {
                subject: action.subject,
                location: receipt.location,
                sha256: Some(receipt.sha256),
            });
        }
        Ok(DeployReport {
            summary: format!("{} file(s) uploaded", items.len()),
            items,
        })
    }
}

stasis_sdk::export_deploy_target!(@TYPE@);
