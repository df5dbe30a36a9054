//! `millionx snowflake schema [--apply] [--dry-run]`: prints or applies `ops/snowflake/schema-setup.sql`.

use std::io::Write;
use std::sync::Arc;

use crate::config::SnowflakeConfig;
use crate::metrics::Metrics;
use crate::sql::client::SqlClient;

/// The schema script, embedded at build time from `ops/snowflake/schema-setup.sql`.
pub const SCHEMA_SQL: &str = include_str!("../../../ops/snowflake/schema-setup.sql");

/// `snowflake schema` arguments.
#[derive(Clone, Debug, Default, clap::Args, PartialEq, Eq)]
pub struct SchemaArgs {
    /// Run the statements against the account in the `[snowflake]` config (default: print them).
    #[arg(long)]
    pub apply: bool,
    /// With --apply: validate the config and list what would run, without connecting.
    #[arg(long)]
    pub dry_run: bool,
}

/// Splits a SQL script into statements at `;` outside quotes and comments. Comment-only chunks are dropped;
/// each statement is returned trimmed, without its `;`.
pub fn split_statements(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut has_code = false;
    let mut chars = script.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                has_code = true;
                current.push(c);
                while let Some(d) = chars.next() {
                    current.push(d);
                    if d == c {
                        // A doubled quote is an escaped quote inside the literal.
                        if chars.peek() == Some(&c) {
                            current.push(c);
                            chars.next();
                        } else {
                            break;
                        }
                    } else if d == '\\' && c == '\'' {
                        if let Some(e) = chars.next() {
                            current.push(e);
                        }
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        current.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for d in chars.by_ref() {
                    if prev == '*' && d == '/' {
                        break;
                    }
                    prev = d;
                }
                current.push(' ');
            }
            ';' => {
                if has_code {
                    out.push(current.trim().to_owned());
                }
                current.clear();
                has_code = false;
            }
            _ => {
                if !c.is_whitespace() {
                    has_code = true;
                }
                current.push(c);
            }
        }
    }
    if has_code {
        out.push(current.trim().to_owned());
    }
    out
}

/// First line of a statement, for progress output.
fn headline(stmt: &str) -> &str {
    stmt.lines().next().unwrap_or(stmt)
}

/// Applies every statement of [`SCHEMA_SQL`] in order on one session; stops at the first failure.
/// Returns the number of statements run.
///
/// # Errors
/// The failing statement's first line and Snowflake's code and message.
pub async fn apply_schema(client: &SqlClient, mut progress: impl Write) -> Result<usize, String> {
    let statements = split_statements(SCHEMA_SQL);
    for (i, stmt) in statements.iter().enumerate() {
        client.execute(stmt, None).await.map_err(|e| format!("statement {} ({}): {e}", i + 1, headline(stmt)))?;
        let _ = writeln!(progress, "ok {:>2}/{} {}", i + 1, statements.len(), headline(stmt));
    }
    Ok(statements.len())
}

/// Entry point of `millionx snowflake schema`: prints the script (no flags), lists the statements that
/// would run (`--apply --dry-run`, config validated, no connection), or applies them (`--apply`).
/// Progress goes to `out`.
///
/// # Errors
/// A message naming the bad config key, the unreadable secret, or the failing statement.
pub fn run_schema(args: &SchemaArgs, config: Option<&SnowflakeConfig>, mut out: impl Write) -> Result<(), String> {
    if !args.apply {
        out.write_all(SCHEMA_SQL.as_bytes()).map_err(|e| e.to_string())?;
        return Ok(());
    }
    let config = config.ok_or("snowflake schema --apply needs a [snowflake] section in the config")?;
    config.validate().map_err(|e| e.to_string())?;
    let statements = split_statements(SCHEMA_SQL);
    if args.dry_run {
        for (i, stmt) in statements.iter().enumerate() {
            writeln!(out, "would run {:>2}/{} {}", i + 1, statements.len(), headline(stmt))
                .map_err(|e| e.to_string())?;
        }
        return Ok(());
    }
    let credentials =
        config.resolve_credentials(&millionx_dataflow::config::Env::process()).map_err(|e| e.to_string())?;
    let client = SqlClient::new(config, credentials, Arc::new(Metrics::default())).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let n = runtime.block_on(apply_schema(&client, &mut out))?;
    writeln!(out, "applied {n} statements to {}.{}", config.database, config.schema).map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use millionx_dataflow::config::ConnectorConfig as _;

    #[test]
    fn splits_at_semicolons_outside_quotes_and_comments() {
        let s = "-- a; comment\nCREATE X COMMENT = 'a;b''c';\n/* x; y */ SELECT \"q;\" FROM t;\n-- tail only\n";
        assert_eq!(split_statements(s), vec!["CREATE X COMMENT = 'a;b''c'", "SELECT \"q;\" FROM t"]);
    }

    #[test]
    fn the_script_has_every_object() {
        let stmts = split_statements(SCHEMA_SQL);
        let count = |prefix: &str| stmts.iter().filter(|s| s.starts_with(prefix)).count();
        assert_eq!(count("CREATE TABLE IF NOT EXISTS"), 4);
        assert_eq!(count("CREATE OR REPLACE VIEW"), 8);
        assert_eq!(count("CREATE WAREHOUSE IF NOT EXISTS MILLIONX_WH"), 1);
        assert!(stmts.iter().any(|s| s.contains("WAREHOUSE_SIZE = 'XSMALL'") && s.contains("AUTO_SUSPEND = 60")));
        assert_eq!(count("CREATE ROLE IF NOT EXISTS"), 2);
        assert!(count("GRANT ") >= 10);
        // Re-runnable: nothing is created without IF NOT EXISTS / OR REPLACE, nothing is dropped.
        for s in &stmts {
            assert!(!s.starts_with("DROP") && !s.contains("CREATE OR REPLACE TABLE"), "{s}");
            if s.starts_with("CREATE") {
                assert!(s.contains("IF NOT EXISTS") || s.starts_with("CREATE OR REPLACE VIEW"), "{s}");
            }
        }
    }

    #[test]
    fn prints_without_apply_and_lists_with_dry_run() {
        let mut out = Vec::new();
        run_schema(&SchemaArgs::default(), None, &mut out).expect("print");
        assert_eq!(out, SCHEMA_SQL.as_bytes());
        let config = SnowflakeConfig::from_toml(
            "account = \"a\"\nuser = \"u\"\n[auth]\ntype = \"password\"\npassword = { env = \"X\" }\n",
        )
        .expect("config");
        let mut out = Vec::new();
        run_schema(&SchemaArgs { apply: true, dry_run: true }, Some(&config), &mut out).expect("dry run");
        let text = String::from_utf8(out).expect("utf8");
        assert_eq!(text.lines().count(), split_statements(SCHEMA_SQL).len());
        assert!(text.contains("CREATE WAREHOUSE IF NOT EXISTS MILLIONX_WH"));
        let e = run_schema(&SchemaArgs { apply: true, dry_run: false }, None, Vec::new()).expect_err("rejected");
        assert!(e.contains("[snowflake]"));
    }
}
