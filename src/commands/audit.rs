//! `mamori audit …`: verification, checkpoints and keys.
use crate::audit::{self, checkpoint, crypto, verify, DataKeys};
use crate::cli::AuditCmd;
use crate::config::Config;
use crate::store::Store;
use anyhow::{bail, Context};

pub async fn run(config: &Config, cmd: AuditCmd, json: bool) -> anyhow::Result<()> {
    match cmd {
        AuditCmd::NewKey { file } => {
            crypto::create_key_file(&file)?;
            println!(
                "created {} (mode 0600); back it up somewhere safe",
                file.display()
            );
            Ok(())
        }
        AuditCmd::PublicKey => {
            let keys = audit::load_keys(&config.audit)?;
            println!(
                "{}",
                checkpoint::public_key_text(&keys.signing.verifying_key())
            );
            Ok(())
        }
        AuditCmd::Checkpoint => {
            let store = Store::connect(&config.database_url).await?;
            let keys = audit::load_keys(&config.audit)?;
            let (seq, hash) = store.chain_head().await?;
            let c = checkpoint::sign(&keys.signing, seq, &hash, &crate::store::now_text());
            store.insert_checkpoint(&c).await?;
            checkpoint::append_file(&config.audit.checkpoint_file, std::slice::from_ref(&c))?;
            println!("{}", serde_json::to_string(&c)?);
            Ok(())
        }
        AuditCmd::Verify {
            checkpoints,
            public_key,
            no_bodies,
        } => {
            let store = Store::connect(&config.database_url).await?;
            let keys = if public_key.is_some() && no_bodies {
                None
            } else {
                Some(audit::load_keys(&config.audit)?)
            };
            let public = match (&public_key, &keys) {
                (Some(text), _) => checkpoint::parse_public_key(text)?,
                (None, Some(k)) => k.signing.verifying_key(),
                (None, None) => bail!("give --public-key or a signing key file"),
            };
            // By default, the checkpoint file this installation writes: the database's own
            // checkpoint rows can be rewritten together with the records, that file cannot.
            let default_file = &config.audit.checkpoint_file;
            let checkpoints = if checkpoints.is_empty() && default_file.exists() {
                vec![default_file.clone()]
            } else {
                checkpoints
            };
            let mut external = Vec::new();
            for f in &checkpoints {
                external.extend(checkpoint::read_file(f)?);
            }
            let dk = match (&keys, no_bodies) {
                (Some(k), false) => Some(DataKeys::new(store.clone(), k.master.clone())),
                _ => None,
            };
            let report = verify::verify(&store, &public, &external, dk.as_ref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else if report.ok() {
                println!(
                    "ok: {} records, chain head seq {} {}, {} checkpoints matched, {} bodies matched their hashes",
                    report.records, report.head_seq, &report.head_hash[..16], report.checkpoints_checked, report.bodies_checked
                );
                match checkpoints.as_slice() {
                    [] => println!("note: no checkpoint file was given and {} does not exist; only the database's own checkpoints were checked", default_file.display()),
                    files => {
                        let names: Vec<_> = files.iter().map(|f| f.display().to_string()).collect();
                        println!("checked against the checkpoints in {}", names.join(", "));
                    }
                }
            }
            match &report.problem {
                None => Ok(()),
                Some(p) => bail!("audit verify FAILED: {p}"),
            }
        }
        AuditCmd::RotateMaster { new_key_file } => {
            let store = Store::connect(&config.database_url).await?;
            let keys = audit::load_keys(&config.audit)?;
            let new = crypto::read_key_file(&new_key_file)?;
            let mut n = 0;
            for row in store.data_keys().await? {
                let (Some(old_id), Some(wrapped)) =
                    (row.master_key_id.as_deref(), row.wrapped.as_deref())
                else {
                    continue;
                };
                if old_id == new.id() {
                    continue;
                }
                let old = keys.master.by_id(old_id).with_context(|| {
                    format!(
                        "contract `{}` is wrapped by master key {old_id}, which is not configured",
                        row.contract_id
                    )
                })?;
                let dk = old.unwrap_key(wrapped, &row.contract_id)?;
                if store
                    .rewrap_data_key(
                        &row.contract_id,
                        old_id,
                        &new.id(),
                        &new.wrap(&dk, &row.contract_id)?,
                    )
                    .await?
                {
                    n += 1;
                }
            }
            println!(
                "re-wrapped {n} data key(s) with master key {}. Now point audit.master_key_file (or MAMORI_MASTER_KEY) at the new key on every instance, keeping the old one in audit.previous_master_key_files until all have restarted; then destroy the old key.",
                new.id()
            );
            Ok(())
        }
    }
}
