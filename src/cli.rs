//! Command-line types only (clap derive). The contract is DESIGN §3: flags may be added, never
//! renamed. Secrets are never argument values: only the names of environment variables, files,
//! stdin, or a prompt.

use crate::auth::AuthMode;
use crate::report::Format;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "ews-probe",
    version,
    about = "Tells whether a mailbox can be used over Exchange Web Services, feature by feature, and why not.",
    after_help = "Exit codes (Nagios/Icinga): 0 ok, 1 warning, 2 critical, 3 unknown.\nStart with: ews-probe demo"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Probe one mailbox: connectivity, each feature's EWS operations, diagnosis.
    Probe(Box<ProbeArgs>),
    /// Find the mailbox's EWS endpoint and account kind (realm discovery, Autodiscover); no credentials are ever sent.
    Discover(Box<DiscoverArgs>),
    /// Re-run the diagnosis on a bundle recorded with --record (offline).
    Replay(ReplayArgs),
    /// Built-in recorded scenarios; no mailbox, no network. Without SCENARIO: runs all as a self-check.
    Demo(DemoArgs),
    /// Remove every cached OAuth token, refresh tokens included (OS keyring and the cache file).
    Logout,
    /// Probe many mailboxes (CSV or one address per line): NDJSON reports, a summary, the worst exit code.
    Fleet(Box<FleetArgs>),
    /// Reproduce the logout-on-switch symptom: sign in and probe FROM, switch to TO, as a timeline.
    Switch(Box<SwitchArgs>),
}

#[derive(Debug, Args, Clone)]
pub struct OutputArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Write the report to this file instead of standard output.
    #[arg(long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// More detail on standard error: -v each HTTP exchange, -vv headers and bodies (redacted).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Warning threshold on each step's latency in ms, Nagios range syntax ([@]start:end, ~ = -inf).
    #[arg(short = 'w', long, value_name = "RANGE", allow_hyphen_values = true)]
    pub warning: Option<crate::report::range::Range>,
    /// Critical threshold on each step's latency in ms, same syntax as --warning.
    #[arg(short = 'c', long, value_name = "RANGE", allow_hyphen_values = true)]
    pub critical: Option<crate::report::range::Range>,
}

impl OutputArgs {
    /// `-w/-c` as thresholds.
    pub fn thresholds(&self) -> crate::report::range::Thresholds {
        crate::report::range::Thresholds {
            warning: self.warning.clone(),
            critical: self.critical.clone(),
        }
    }
}

/// How every command that talks to servers reaches them, and how long it may take.
#[derive(Debug, Args, Clone)]
pub struct NetworkArgs {
    /// Deadline in seconds: for the whole run, or for each mailbox's probe (fleet, switch).
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0, value_parser = parse_timeout)]
    pub timeout: f64,
    /// Trust the CA certificates in this PEM file too (corporate TLS inspection).
    #[arg(long, value_name = "PATH")]
    pub ca_file: Option<PathBuf>,
    /// Send requests through this proxy.
    #[arg(long, value_name = "URL")]
    pub proxy: Option<String>,
    /// Pin HOST to ADDR without DNS (curl's HOST:PORT:ADDR form; the URL's port is used).
    #[arg(long, value_name = "HOST:PORT:ADDR")]
    pub resolve: Vec<crate::transport::resolve::Pin>,
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The mailbox's SMTP address.
    pub mailbox: String,
    /// The EWS endpoint, e.g. https://outlook.office365.com/EWS/Exchange.asmx.
    #[arg(long, value_name = "URL")]
    pub ews_url: Option<String>,
    /// How to authenticate.
    #[arg(long, value_enum, default_value = "none")]
    pub auth: AuthMode,
    /// User name for basic/ntlm (UPN or DOMAIN\user); defaults to the mailbox address.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Read the password from this environment variable.
    #[arg(long, value_name = "VAR", group = "password")]
    pub password_env: Option<String>,
    /// Read the password from this file (first line).
    #[arg(long, value_name = "PATH", group = "password")]
    pub password_file: Option<PathBuf>,
    /// Read the password from standard input (first line).
    #[arg(long, group = "password")]
    pub password_stdin: bool,
    /// Read the access token from this environment variable.
    #[arg(long, value_name = "VAR", group = "token")]
    pub token_env: Option<String>,
    /// Read the access token from this file.
    #[arg(long, value_name = "PATH", group = "token")]
    pub token_file: Option<PathBuf>,
    /// Entra ID tenant (device-code, client-credentials).
    #[arg(long, value_name = "ID")]
    pub tenant: Option<String>,
    /// Application (client) id (device-code, client-credentials).
    #[arg(long, value_name = "ID")]
    pub client_id: Option<String>,
    /// Read the client secret from this environment variable (client-credentials).
    #[arg(long, value_name = "VAR")]
    pub client_secret_env: Option<String>,
    /// PEM file with the certificate and its private key (client-credentials).
    #[arg(long, value_name = "PATH")]
    pub client_cert: Option<PathBuf>,
    /// The identity platform's root for device-code and client-credentials; the tool appends
    /// /{tenant}/oauth2/v2.0/devicecode and /token.
    #[arg(long, value_name = "URL", env = "EWS_PROBE_LOGIN_AUTHORITY", default_value = crate::auth::oauth::DEFAULT_AUTHORITY)]
    pub login_authority: String,
    /// Neither read nor write the OAuth token cache (access or refresh tokens): fetch a fresh token.
    #[arg(long)]
    pub no_token_cache: bool,
    /// Act for the mailbox with ExchangeImpersonation and X-AnchorMailbox.
    #[arg(long)]
    pub impersonate: bool,
    /// Also run the write checks (CreateItem SaveOnly into Drafts, then HardDelete). Never sends mail.
    #[arg(long)]
    pub write: bool,
    /// RequestServerVersion to send (a value of the EWS schema).
    #[arg(long, value_name = "VERSION", default_value = "Exchange2013_SP1")]
    pub server_version: crate::ews::ServerVersion,
    /// Record every exchange, redacted, into this directory (replay it with `ews-probe replay DIR`).
    #[arg(long, value_name = "DIR")]
    pub record: Option<PathBuf>,
    /// Also trust this host with credentials (redirect policy).
    #[arg(long, value_name = "HOST")]
    pub trust_host: Vec<String>,
    #[command(flatten)]
    pub net: NetworkArgs,
    #[command(flatten)]
    pub discovery: DiscoveryArgs,
    #[command(flatten)]
    pub out: OutputArgs,
}

/// Where discovery asks, and network routing that only discovery needs.
#[derive(Debug, Args, Clone)]
pub struct DiscoveryArgs {
    /// Send requests for HOST:PORT to ADDR:PORT2 (URL, Host and TLS name unchanged), like curl's --connect-to.
    #[arg(long, value_name = "HOST:PORT:ADDR:PORT2")]
    pub connect_to: Vec<crate::transport::resolve::ConnectTo>,
    /// Base URL of the unauthenticated Autodiscover v2 (JSON) service [default: https://outlook.office365.com].
    #[arg(long, value_name = "URL", env = "EWS_PROBE_AUTODISCOVER_V2_URL")]
    pub autodiscover_v2_url: Option<String>,
    /// Base URL of Microsoft's realm discovery (getuserrealm.srf) [default: https://login.microsoftonline.com].
    #[arg(long, value_name = "URL", env = "EWS_PROBE_REALM_URL")]
    pub realm_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct DiscoverArgs {
    /// The mailbox's SMTP address.
    pub mailbox: String,
    /// Also trust this host (redirect policy).
    #[arg(long, value_name = "HOST")]
    pub trust_host: Vec<String>,
    #[command(flatten)]
    pub net: NetworkArgs,
    #[command(flatten)]
    pub discovery: DiscoveryArgs,
    #[command(flatten)]
    pub out: OutputArgs,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// A directory written by `probe --record DIR`.
    pub dir: PathBuf,
    #[command(flatten)]
    pub out: OutputArgs,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// One scenario (see `ews-probe demo` for the list).
    pub scenario: Option<String>,
    #[command(flatten)]
    pub out: OutputArgs,
}

/// `ews-probe fleet`: every flag of `probe` applies to all mailboxes (the positional MAILBOX
/// is replaced by `--input`); the output format defaults to NDJSON (`--format json`).
#[derive(Debug, Args)]
#[command(
    mut_arg("mailbox", |a| a.required(false).hide(true).default_value("")),
    mut_arg("format", |a| a.default_value("json"))
)]
pub struct FleetArgs {
    /// Mailboxes: a CSV with a header `mailbox[,ews_url]`, or one address per line; `-` for stdin.
    /// A mailbox without ews_url (and no --ews-url) is discovered on its own, as probe does.
    #[arg(long, value_name = "FILE")]
    pub input: String,
    /// Mailboxes probed at once, overall.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: u32,
    /// Mailboxes probed at once per EWS endpoint (Exchange's default per-user EWS concurrency is 10).
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub per_endpoint: u32,
    /// Skip mailboxes already present in --output (after an interrupted run).
    #[arg(long, requires = "output")]
    pub resume: bool,
    /// Run only share I of N (1-based) of the input, chosen by a stable hash of the address.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<crate::fleet::shard::Shard>,
    /// No progress bar even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
    #[command(flatten)]
    pub probe: ProbeArgs,
}

/// Where one side of `switch` gets its credentials (--from-* / --to-*).
#[derive(Debug, Clone, Default)]
pub struct SideCreds {
    pub ews_url: Option<String>,
    pub auth: Option<crate::auth::AuthMode>,
    pub user: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<PathBuf>,
    pub token_env: Option<String>,
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SwitchArgs {
    /// The mailbox the integration signs in to first.
    #[arg(required_unless_present = "replay")]
    pub from: Option<String>,
    /// The mailbox it switches to.
    #[arg(required_unless_present = "replay")]
    pub to: Option<String>,
    /// Re-run the timeline on a bundle written by `switch --record DIR` (offline).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["from", "to", "record"])]
    pub replay: Option<PathBuf>,
    /// EWS endpoint for both mailboxes (unless --from-ews-url / --to-ews-url).
    #[arg(long, value_name = "URL")]
    pub ews_url: Option<String>,
    #[arg(long, value_name = "URL")]
    pub from_ews_url: Option<String>,
    #[arg(long, value_name = "URL")]
    pub to_ews_url: Option<String>,
    /// How FROM authenticates.
    #[arg(long, value_enum, value_name = "MODE")]
    pub from_auth: Option<crate::auth::AuthMode>,
    /// How TO authenticates.
    #[arg(long, value_enum, value_name = "MODE")]
    pub to_auth: Option<crate::auth::AuthMode>,
    #[arg(long, value_name = "NAME")]
    pub from_user: Option<String>,
    #[arg(long, value_name = "NAME")]
    pub to_user: Option<String>,
    #[arg(long, value_name = "VAR", conflicts_with = "from_password_file")]
    pub from_password_env: Option<String>,
    #[arg(long, value_name = "PATH")]
    pub from_password_file: Option<PathBuf>,
    #[arg(long, value_name = "VAR", conflicts_with = "to_password_file")]
    pub to_password_env: Option<String>,
    #[arg(long, value_name = "PATH")]
    pub to_password_file: Option<PathBuf>,
    #[arg(long, value_name = "VAR", conflicts_with = "from_token_file")]
    pub from_token_env: Option<String>,
    #[arg(long, value_name = "PATH")]
    pub from_token_file: Option<PathBuf>,
    #[arg(long, value_name = "VAR", conflicts_with = "to_token_file")]
    pub to_token_env: Option<String>,
    #[arg(long, value_name = "PATH")]
    pub to_token_file: Option<PathBuf>,
    /// FROM's settings from a JSON profile (ews_url, auth, user, password_env|password_file,
    /// token_env|token_file; never a secret itself); --from-* flags win.
    #[arg(long, value_name = "PATH")]
    pub from_profile: Option<PathBuf>,
    /// TO's settings from a JSON profile; --to-* flags win.
    #[arg(long, value_name = "PATH")]
    pub to_profile: Option<PathBuf>,
    /// Record both probes, redacted, into DIR/from and DIR/to (replay with `switch --replay DIR`).
    #[arg(long, value_name = "DIR")]
    pub record: Option<PathBuf>,
    #[command(flatten)]
    pub net: NetworkArgs,
    #[command(flatten)]
    pub out: OutputArgs,
}

impl SwitchArgs {
    pub fn side(&self, to: bool) -> SideCreds {
        if to {
            SideCreds {
                ews_url: self.to_ews_url.clone().or_else(|| self.ews_url.clone()),
                auth: self.to_auth,
                user: self.to_user.clone(),
                password_env: self.to_password_env.clone(),
                password_file: self.to_password_file.clone(),
                token_env: self.to_token_env.clone(),
                token_file: self.to_token_file.clone(),
            }
        } else {
            SideCreds {
                ews_url: self.from_ews_url.clone().or_else(|| self.ews_url.clone()),
                auth: self.from_auth,
                user: self.from_user.clone(),
                password_env: self.from_password_env.clone(),
                password_file: self.from_password_file.clone(),
                token_env: self.from_token_env.clone(),
                token_file: self.from_token_file.clone(),
            }
        }
    }
}

fn parse_timeout(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if !(v > 0.0 && v <= 3600.0) {
        return Err("the timeout must be more than 0 and at most 3600 seconds".into());
    }
    Ok(v)
}
