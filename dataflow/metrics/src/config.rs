//! Where `/metrics` is served: the `[metrics]` TOML table and the `--metrics-listen` / `--no-metrics` flags.
//!
//! ```toml
//! [metrics]
//! enabled = true               # serve /metrics
//! listen = "127.0.0.1:9464"    # the OpenTelemetry Prometheus exporter's conventional port; loopback only
//! ```

use std::net::SocketAddr;

use serde::Deserialize;

use crate::MetricsError;

/// The default listen address: loopback, port 9464 (the port OpenTelemetry's Prometheus exporters use).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";

/// `[metrics]`: whether and where to serve `/metrics`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve `/metrics` (default true). When false the [`crate::Metrics`] handle still counts; nothing listens.
    pub enabled: bool,
    /// `IP:port` to bind, e.g. `127.0.0.1:9464` or `[::1]:9464`; port 0 picks a free port. Default
    /// [`DEFAULT_LISTEN`]. Binding a non-loopback address exposes the metrics to the network: do it only
    /// behind a firewall or a scraping proxy.
    pub listen: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { enabled: true, listen: DEFAULT_LISTEN.to_owned() }
    }
}

impl MetricsConfig {
    /// The parsed listen address. Pure: no I/O.
    ///
    /// Errors: [`MetricsError::Config`] with key `metrics.listen` when it is not `IP:port` (host names are
    /// not resolved, so validation never touches the network).
    pub fn listen_addr(&self) -> Result<SocketAddr, MetricsError> {
        self.listen.parse::<SocketAddr>().map_err(|e| MetricsError::Config {
            key: "metrics.listen".to_owned(),
            reason: format!("`{}` is not IP:port ({e}); e.g. 127.0.0.1:9464 or [::1]:9464", self.listen),
        })
    }

    /// Checks every value (see [`MetricsConfig::listen_addr`]).
    pub fn validate(&self) -> Result<(), MetricsError> {
        self.listen_addr().map(|_| ())
    }
}

/// Command-line overrides of [`MetricsConfig`], to flatten into a subcommand's clap `Args`.
#[derive(Clone, Debug, Default, PartialEq, Eq, clap::Args)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics on this IP:port (overrides `metrics.listen`; default 127.0.0.1:9464).
    #[arg(long = "metrics-listen", value_name = "IP:PORT")]
    pub metrics_listen: Option<String>,
    /// Do not serve /metrics (overrides `metrics.enabled`).
    #[arg(long = "no-metrics")]
    pub no_metrics: bool,
}

impl MetricsArgs {
    /// `config` with these flags applied, validated.
    ///
    /// Errors: [`MetricsError::Config`] naming `--metrics-listen` when the flag's value is not `IP:port`,
    /// or `metrics.listen` when the file's value is not.
    pub fn apply(&self, mut config: MetricsConfig) -> Result<MetricsConfig, MetricsError> {
        if let Some(listen) = &self.metrics_listen {
            config.listen = listen.clone();
            config.validate().map_err(|e| match e {
                MetricsError::Config { reason, .. } => {
                    MetricsError::Config { key: "--metrics-listen".to_owned(), reason }
                }
                other => other,
            })?;
        }
        if self.no_metrics {
            config.enabled = false;
        }
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_loopback_9464() {
        let c = MetricsConfig::default();
        assert!(c.enabled);
        assert_eq!(c.listen_addr().ok(), Some(SocketAddr::from(([127, 0, 0, 1], 9464))));
    }

    #[test]
    fn bad_listen_names_the_key() {
        let c = MetricsConfig { enabled: true, listen: "localhost:9464".to_owned() };
        let err = c.validate().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.starts_with("config key `metrics.listen`: `localhost:9464` is not IP:port"), "{err}");
        let args = MetricsArgs { metrics_listen: Some("9464".to_owned()), no_metrics: false };
        let err = args.apply(MetricsConfig::default()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.starts_with("config key `--metrics-listen`: `9464` is not IP:port"), "{err}");
    }

    #[test]
    fn flags_override_file() {
        let args = MetricsArgs { metrics_listen: Some("[::1]:0".to_owned()), no_metrics: true };
        let c = args.apply(MetricsConfig::default()).ok();
        assert_eq!(c, Some(MetricsConfig { enabled: false, listen: "[::1]:0".to_owned() }));
        assert_eq!(MetricsArgs::default().apply(MetricsConfig::default()).ok(), Some(MetricsConfig::default()));
    }

    #[test]
    fn unknown_keys_are_rejected() {
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct Wrapper {
            metrics: MetricsConfig,
        }
        let err =
            serde_json::from_value::<Wrapper>(serde_json::json!({"metrics": {"listen": "127.0.0.1:1", "port": 3}}))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
        assert!(err.contains("unknown field `port`"), "{err}");
    }
}
