//! The command line, as clap structs only. `commands` carries them out.
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "mamori",
    version,
    about = "A generative-AI usage gateway: only non-training providers, every output logged"
)]
pub struct Cli {
    /// Configuration file.
    #[arg(
        long,
        global = true,
        env = "MAMORI_CONFIG",
        default_value = "config.toml"
    )]
    pub config: PathBuf,
    /// Machine-readable output for lists and shows.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve,
    /// Validate the configuration and the provider catalogue without serving.
    Check {
        /// Extra registration files to validate.
        files: Vec<PathBuf>,
    },
    /// Registered AI services.
    #[command(subcommand)]
    Provider(ProviderCmd),
    /// Contracts (案件) whose data is handled.
    #[command(subcommand)]
    Contract(ContractCmd),
    /// Staff (従事者) and their training.
    #[command(subcommand)]
    Staff(StaffCmd),
    /// Gateway keys for staff.
    #[command(subcommand)]
    Key(KeyCmd),
    /// The output log.
    #[command(subcommand)]
    Log(LogCmd),
    /// The AI-use disclosure of a deliverable (第8-2); `disclose verify FILE` checks an export.
    Disclose(DiscloseArgs),
    /// The notification form 機密データの保存等に関する届出書 (別記様式); `form status` lists
    /// contracts whose filed form is out of date.
    Form(FormArgs),
    /// Find the passages of deliverables (.txt, .md, .docx) that came from a contract's logged outputs.
    Scan {
        #[arg(long)]
        contract: String,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// The log's integrity and keys.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Run a local mock provider (OpenAI and Anthropic wire formats) for trying mamori out.
    MockProvider {
        #[arg(long, default_value = "127.0.0.1:9999")]
        listen: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProviderCmd {
    /// Register (or update) a provider from a registration file; a new version when it changed.
    Register {
        file: PathBuf,
    },
    List,
    Show {
        id: String,
    },
    /// Every version and every suspension of a registration.
    History {
        id: String,
    },
    /// Stop routing to a provider at once, on every running gateway.
    Suspend {
        id: String,
        #[arg(long)]
        reason: String,
    },
    Resume {
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ContractCmd {
    Create(ContractCreate),
    List,
    Show {
        id: String,
    },
    /// Terms (client names, code names, people) redacted for this contract.
    Terms {
        id: String,
        #[command(subcommand)]
        action: TermsAction,
    },
    /// Extra field names (besides the shipped 氏名, 住所…) whose values are redacted for this contract.
    Fields {
        id: String,
        #[command(subcommand)]
        action: TermsAction,
    },
    /// Close a contract: revoke its keys; nothing more can be sent under it.
    Close {
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct ContractCreate {
    pub id: String,
    #[arg(long)]
    pub title: String,
    #[arg(long)]
    pub client: String,
    /// Only these provider ids (comma-separated); default: every approved provider.
    #[arg(long, value_delimiter = ',')]
    pub providers: Option<Vec<String>>,
    /// Only providers that store data in Japan.
    #[arg(long)]
    pub japan_only: bool,
    /// Allow images, audio and files (they cannot be redacted).
    #[arg(long)]
    pub allow_non_text: bool,
    /// Last day of the contract (YYYY-MM-DD).
    #[arg(long)]
    pub ends: Option<String>,
    #[arg(long)]
    pub retention_days: Option<i64>,
    /// Date of the contract (契約日), printed on the notification form (YYYY-MM-DD).
    #[arg(long)]
    pub contract_date: Option<String>,
    /// What generative AI is used for under this contract (repeatable), e.g. "議事録の要約".
    #[arg(long = "purpose")]
    pub purposes: Vec<String>,
    /// A subcontractor (再委託先) as "NAME=WORK" (repeatable).
    #[arg(long = "subcontractor")]
    pub subcontractors: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum TermsAction {
    Add { terms: Vec<String> },
    Remove { terms: Vec<String> },
    List,
}

#[derive(Debug, Subcommand)]
pub enum StaffCmd {
    Add {
        id: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        email: Option<String>,
        /// Date of the last security training (YYYY-MM-DD).
        #[arg(long)]
        trained_on: Option<String>,
    },
    /// Record a completed security training.
    Train {
        id: String,
        #[arg(long)]
        on: String,
    },
    List,
}

#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// Issue a key; it is printed once and stored only as a hash.
    Issue {
        #[arg(long)]
        staff: String,
        #[arg(long)]
        contract: String,
        /// Last day the key works (YYYY-MM-DD).
        #[arg(long)]
        expires: Option<String>,
        /// Default deliverable for requests made with this key.
        #[arg(long)]
        deliverable: Option<String>,
        /// Default purpose (利用する業務) for requests made with this key.
        #[arg(long)]
        purpose: Option<String>,
    },
    List,
    Revoke {
        key_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum LogCmd {
    List {
        #[arg(long)]
        contract: Option<String>,
        #[arg(long)]
        deliverable: Option<String>,
        /// Only records at or after this time (YYYY-MM-DD, midnight UTC, or RFC 3339 with offset).
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    Show {
        request_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Prove no record was changed, removed, inserted or reordered; exits non-zero otherwise.
    Verify {
        /// Checkpoints kept outside the database (an auditor's copy); default: the
        /// installation's checkpoint file (audit.checkpoint_file), if it exists.
        #[arg(long)]
        checkpoints: Vec<PathBuf>,
        /// The checkpoint signing public key (base64); default: derived from the signing key file.
        #[arg(long)]
        public_key: Option<String>,
        /// Skip decrypting bodies to compare them with their hashes.
        #[arg(long)]
        no_bodies: bool,
    },
    /// Sign a checkpoint of the current chain head now, and append it to the checkpoint file.
    Checkpoint,
    /// Print the checkpoint signing public key, for auditors.
    PublicKey,
    /// Create a new random key file (mode 0600) for a master or signing key.
    NewKey { file: PathBuf },
    /// Re-wrap every contract's data key with a new master key; then switch the config to it.
    RotateMaster {
        /// The new master key file (make one with `mamori audit new-key`).
        #[arg(long)]
        new_key_file: PathBuf,
    },
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct DiscloseArgs {
    #[command(subcommand)]
    pub command: Option<DiscloseCmd>,
    #[arg(long, required = true)]
    pub contract: Option<String>,
    /// The deliverable (as sent in X-Mamori-Deliverable); default: the whole contract.
    #[arg(long)]
    pub deliverable: Option<String>,
    /// md, html, csv or json.
    #[arg(long, default_value = "md")]
    pub format: String,
    /// ja or en.
    #[arg(long, default_value = "ja")]
    pub lang: String,
    /// Also include records that `mamori scan` finds in these deliverable files.
    #[arg(long)]
    pub scan: Vec<PathBuf>,
    /// Write to this file instead of standard output.
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// Fix the generation time (RFC 3339), for reproducible exports.
    #[arg(long, hide = true)]
    pub generated_at: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum DiscloseCmd {
    /// Check an exported disclosure against the log; exits non-zero if it no longer matches.
    Verify { file: PathBuf },
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct FormArgs {
    #[command(subcommand)]
    pub command: Option<FormCmd>,
    #[arg(long, required = true)]
    pub contract: Option<String>,
    /// md, html (print-ready A4) or json.
    #[arg(long, default_value = "md")]
    pub format: String,
    /// Record this form as filed with the client, so later changes are flagged.
    #[arg(long)]
    pub mark_filed: bool,
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// The filing date printed on the form (YYYY-MM-DD); default today.
    #[arg(long)]
    pub date: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum FormCmd {
    /// Contracts whose registrations or settings changed since their last filing (再度の届出).
    Status,
}
