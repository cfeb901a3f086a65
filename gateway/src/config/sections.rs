//! Checks of the process-wide sections: `[server]`, `[log]`, `[revocation]`, `[redis]`.

use super::*;

impl Checker<'_> {
    pub(super) fn revocation(
        &mut self,
        r: &file::Revocation,
        redis: Option<&file::Redis>,
    ) -> RevocationSettings {
        let keys = KeyScheme {
            token_prefix: r.token_prefix.clone(),
            family_prefix: r.family_prefix.clone(),
            subject_prefix: r.subject_prefix.clone(),
            once_prefix: r.once_prefix.clone(),
        };
        for (name, p) in [
            ("token_prefix", &r.token_prefix),
            ("family_prefix", &r.family_prefix),
            ("subject_prefix", &r.subject_prefix),
            ("once_prefix", &r.once_prefix),
        ] {
            if p.is_empty() || p.len() > 64 || !p.bytes().all(|b| b.is_ascii_graphic()) {
                self.err(
                    format!("revocation.{name}"),
                    "must be 1 to 64 visible ASCII characters",
                );
            }
        }
        if r.max_entries == 0 {
            self.err("revocation.max_entries", "must be at least 1");
        }
        let default_ttl = self
            .duration("revocation.default_ttl".into(), &r.default_ttl)
            .unwrap_or_default();
        let redis = redis.map(|x| {
            if x.urls.is_empty() {
                self.err("redis.urls", "at least one redis:// or rediss:// URL is required");
            }
            if !x.cluster && x.urls.len() > 1 {
                self.err("redis.urls", "several URLs need cluster = true");
            }
            for (i, u) in x.urls.iter().enumerate() {
                if u.starts_with("rediss://") {
                    self.err(format!("redis.urls[{i}]"), "TLS to Redis (rediss://) is not built in yet: use redis:// on a private network or a TLS sidecar");
                } else if !u.starts_with("redis://") {
                    self.err(format!("redis.urls[{i}]"), "must start with redis://");
                }
            }
            let timeout = self.duration("redis.timeout".into(), &x.timeout).unwrap_or_default();
            if timeout.is_zero() || timeout > Duration::from_secs(5) {
                self.err("redis.timeout", "must be more than 0s and at most 5s");
            }
            RedisSettings {
                urls: x.urls.clone(),
                cluster: x.cluster,
                timeout,
                connect_timeout: self.duration("redis.connect_timeout".into(), &x.connect_timeout).unwrap_or_default(),
            }
        });
        RevocationSettings {
            keys,
            max_entries: r.max_entries,
            default_ttl,
            redis,
        }
    }

    pub(super) fn server(&mut self, s: &file::Server) -> ServerSettings {
        let listen = self.addr("server.listen".into(), &s.listen);
        let admin_listen = s
            .admin_listen
            .as_deref()
            .and_then(|a| self.addr("server.admin_listen".into(), a));
        let threads = s
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        if threads == 0 || threads > 256 {
            self.err("server.threads", "must be between 1 and 256");
        }
        let max_token_bytes = self.size("server.max_token_size".into(), &s.max_token_size);
        if !(256..=64 * 1024).contains(&max_token_bytes) {
            self.err("server.max_token_size", "must be between 256B and 64KiB");
        }
        let max_header_bytes = self.size("server.max_header_size".into(), &s.max_header_size);
        if !(1024..=512 * 1024).contains(&max_header_bytes) {
            self.err("server.max_header_size", "must be between 1KiB and 512KiB");
        } else if max_header_bytes <= max_token_bytes {
            self.err(
                "server.max_header_size",
                "must be larger than server.max_token_size (the token travels in a header)",
            );
        }
        if !(1..=4096).contains(&s.max_claims) {
            self.err("server.max_claims", "must be between 1 and 4096");
        }
        if !(2..=64).contains(&s.max_claims_depth) {
            self.err("server.max_claims_depth", "must be between 2 and 64");
        }
        if !(8..=256).contains(&s.max_header_count) {
            self.err(
                "server.max_header_count",
                "must be between 8 and 256 (Pingora's own cap)",
            );
        }
        ServerSettings {
            listen: listen.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))),
            admin_listen,
            threads,
            // One thread has nothing to steal from: its single-threaded scheduler is cheaper
            // per request (BENCHMARKS.md). With several, balance stays Tokio's by default.
            work_stealing: s.work_stealing.unwrap_or(threads > 1),
            grace_period: self
                .duration("server.grace_period".into(), &s.grace_period)
                .unwrap_or_default(),
            shutdown_timeout: self
                .duration("server.shutdown_timeout".into(), &s.shutdown_timeout)
                .unwrap_or_default(),
            max_token_bytes,
            max_header_bytes,
            max_header_count: s.max_header_count,
            max_claims: s.max_claims,
            max_claims_depth: s.max_claims_depth,
            upgrade_sock: s.upgrade_sock.clone(),
            pid_file: s.pid_file.clone(),
        }
    }

    pub(super) fn log(&mut self, l: &file::Log) -> LogSettings {
        if tracing_subscriber::EnvFilter::try_new(&l.level).is_err() {
            self.err(
                "log.level",
                format!("{:?} is not a log level or filter (e.g. \"info\")", l.level),
            );
        }
        let json = match l.format.as_str() {
            "json" => true,
            "text" => false,
            other => {
                self.err(
                    "log.format",
                    format!("{other:?}: expected \"json\" or \"text\""),
                );
                true
            }
        };
        LogSettings {
            level: l.level.clone(),
            json,
            access_log: l.access_log,
        }
    }
}
