/// The fleet schema on PostgreSQL: the same tables and columns as the SQLite file's (``StoreSchema``
/// after all its migrations), so a query means the same on both and an operator's SQL reads either.
///
/// Migrations are append-only and recorded in `regwatch_migrations`. Several aggregators may start at
/// once against one database: each migrates inside a transaction holding an advisory lock, so exactly
/// one applies a migration and the others then see it applied. DDL is transactional in PostgreSQL, so a
/// failed migration leaves nothing half-made.
///
/// Types follow the SQLite conventions: times are `DOUBLE PRECISION` unix seconds, sequence numbers and
/// generations `BIGINT` by bit pattern, structured values JSON text with sorted keys (read by the same
/// Swift code as on SQLite), flags `BOOLEAN`. Identifiers are unquoted, so PostgreSQL folds `hostId` to
/// `hostid`; the SQL is written with the SQLite names and means the same.
enum PostgresSchema {
    /// `pg_advisory_xact_lock` key held while migrating ("RgWt", then 1).
    /// Statements are split at `;` (``PostgresSession/execute(_:sql:)``): none may hold one otherwise.
    static let migrationLock: Int64 = 0x5267_5774_0000_0001

    static let migrations: [(id: String, sql: String)] = [("v1", v1), ("v2-leader-term", v2), ("v3-enrollment-documents", v3)]

    /// The enrollment documents (agents, tokens, pending joins), which an SQLite setup keeps as files in
    /// `keys.dir`: PostgreSQL only (``PostgresDocuments``).
    private static let v3 = """
        CREATE TABLE regwatch_document (
            name TEXT PRIMARY KEY,
            content TEXT NOT NULL,
            version BIGINT NOT NULL
        )
        """

    /// The leadership term (one row), as SQLite's `v7-leader-term`.
    private static let v2 = """
        CREATE TABLE leader_term (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            epoch BIGINT NOT NULL,
            holder TEXT NOT NULL,
            since DOUBLE PRECISION NOT NULL
        )
        """

    private static let v1 = """
        CREATE TABLE store_meta (
            key TEXT PRIMARY KEY,
            value DOUBLE PRECISION
        );

        CREATE TABLE host (
            id TEXT PRIMARY KEY,
            labels TEXT NOT NULL DEFAULT '{}',
            zone TEXT,
            egress TEXT,
            agentVersion TEXT NOT NULL DEFAULT '',
            intervalSeconds DOUBLE PRECISION NOT NULL DEFAULT 30,
            appliedGeneration BIGINT NOT NULL DEFAULT 0,
            mirrorPools TEXT NOT NULL DEFAULT '{}',
            eventSources TEXT NOT NULL DEFAULT '[]',
            firstSeen DOUBLE PRECISION NOT NULL,
            lastSeen DOUBLE PRECISION NOT NULL,
            lastCycleStartedAt DOUBLE PRECISION NOT NULL,
            connected BOOLEAN NOT NULL DEFAULT false,
            lastReportSeq BIGINT NOT NULL DEFAULT 0,
            runtimeCount INTEGER NOT NULL DEFAULT 0,
            probes TEXT NOT NULL DEFAULT '[]',
            probesObservedAt DOUBLE PRECISION,
            spoolPending BIGINT,
            spoolDropped BIGINT
        );
        CREATE INDEX host_zone ON host(zone);
        CREATE INDEX host_egress ON host(egress);

        CREATE TABLE probe_report (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            hostId TEXT NOT NULL,
            observedAt DOUBLE PRECISION NOT NULL,
            probes TEXT NOT NULL
        );
        CREATE INDEX probe_report_observedAt ON probe_report(observedAt);

        CREATE TABLE probe_minute (
            registry TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            minute DOUBLE PRECISION NOT NULL,
            samples INTEGER NOT NULL,
            failures INTEGER NOT NULL,
            timedSamples INTEGER NOT NULL,
            sumMs DOUBLE PRECISION NOT NULL,
            minMs DOUBLE PRECISION,
            maxMs DOUBLE PRECISION,
            buckets TEXT NOT NULL,
            failureClasses TEXT NOT NULL,
            PRIMARY KEY (registry, endpoint, minute)
        );
        CREATE INDEX probe_minute_minute ON probe_minute(minute);

        CREATE TABLE runtime_state (
            hostId TEXT NOT NULL REFERENCES host(id) ON DELETE CASCADE,
            runtime TEXT NOT NULL,
            mirrors TEXT NOT NULL,
            valid BOOLEAN NOT NULL,
            detail TEXT NOT NULL DEFAULT '',
            hash TEXT NOT NULL DEFAULT '',
            observedAt DOUBLE PRECISION NOT NULL,
            cycleStartedAt DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (hostId, runtime)
        );

        CREATE TABLE pull_event (
            hostId TEXT NOT NULL,
            seq BIGINT NOT NULL,
            at DOUBLE PRECISION NOT NULL,
            image TEXT NOT NULL,
            registry TEXT NOT NULL,
            endpoint TEXT,
            result TEXT NOT NULL,
            class TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '',
            source TEXT NOT NULL,
            receivedAt DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (hostId, seq)
        );
        CREATE INDEX pull_event_at ON pull_event(at);

        CREATE TABLE outage (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            kind TEXT NOT NULL,
            state TEXT NOT NULL,
            endpoint TEXT,
            zone TEXT,
            host TEXT,
            egress TEXT,
            errorClass TEXT,
            affectedHosts INTEGER NOT NULL DEFAULT 0,
            totalHosts INTEGER NOT NULL DEFAULT 0,
            evidence TEXT NOT NULL DEFAULT '{}',
            startedAt DOUBLE PRECISION NOT NULL,
            endedAt DOUBLE PRECISION,
            registry TEXT,
            engineState TEXT
        );
        CREATE INDEX outage_state ON outage(state);
        CREATE INDEX outage_started ON outage(startedAt);

        CREATE TABLE failover_plan (
            generation BIGINT PRIMARY KEY,
            state TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            mirrors TEXT NOT NULL DEFAULT '{}',
            createdAt DOUBLE PRECISION NOT NULL,
            updatedAt DOUBLE PRECISION NOT NULL,
            kind TEXT NOT NULL DEFAULT 'failover'
        );

        CREATE TABLE failover_ack (
            generation BIGINT NOT NULL REFERENCES failover_plan(generation) ON DELETE CASCADE,
            hostId TEXT NOT NULL,
            outcome TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '',
            at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (generation, hostId)
        );

        CREATE TABLE failover_state (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            state TEXT NOT NULL,
            updatedAt DOUBLE PRECISION NOT NULL
        );

        CREATE TABLE failover_last_ack (
            hostId TEXT PRIMARY KEY,
            generation BIGINT NOT NULL,
            outcome TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '',
            at DOUBLE PRECISION NOT NULL
        );

        CREATE TABLE headroom_minute (
            egress TEXT NOT NULL,
            minute DOUBLE PRECISION NOT NULL,
            remaining BIGINT NOT NULL,
            PRIMARY KEY (egress, minute)
        );
        CREATE INDEX headroom_minute_minute ON headroom_minute(minute);

        -- The SQLite file's views, for an operator's SQL: one row per host x endpoint, one per sample.
        CREATE VIEW endpoint_state AS
            SELECT h.id AS hostId,
                   p.value ->> 0 AS registry, p.value ->> 1 AS endpoint, p.value ->> 2 AS role, p.value ->> 3 AS class,
                   (p.value ->> 4)::double precision AS classSince, p.value ->> 5 AS detail,
                   (p.value ->> 6)::double precision AS dnsMs, (p.value ->> 7)::double precision AS connectMs,
                   (p.value ->> 8)::double precision AS tlsMs, (p.value ->> 9)::double precision AS ttfbMs,
                   (p.value ->> 10)::double precision AS totalMs, p.value ->> 11 AS tlsTrusted,
                   p.value ->> 12 AS tlsDaysLeft, p.value ->> 13 AS tlsExpiresAt,
                   p.value ->> 14 AS rateLimitLimit, p.value ->> 15 AS rateLimitRemaining,
                   p.value ->> 16 AS rateLimitWindowSeconds, p.value ->> 17 AS rateLimitSource,
                   p.value ->> 18 AS manifestReference, p.value ->> 19 AS manifestStatus, p.value ->> 20 AS manifestDigest,
                   (p.value ->> 21)::double precision AS checkedAt,
                   h.probesObservedAt AS observedAt, h.lastCycleStartedAt AS cycleStartedAt
            FROM host h, json_array_elements(h.probes::json) AS p(value);
        CREATE VIEW probe_sample AS
            SELECT r.id AS reportId, r.hostId,
                   s.value ->> 0 AS registry, s.value ->> 1 AS endpoint, s.value ->> 2 AS class,
                   (s.value ->> 3)::double precision AS totalMs, (s.value ->> 4)::integer AS bucket, r.observedAt
            FROM probe_report r, json_array_elements(r.probes::json) AS s(value);
        """
}
